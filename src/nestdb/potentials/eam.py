"""Embedded-atom method: LAMMPS table files and a vectorised ASE calculator.

E = sum_i F_a(rho_i) + 1/2 sum_{i != j} phi_ab(r_ij),
rho_i = sum_{j != i} rho_{b->a}(r_ij), a the element of atom i, b of atom j.

File formats (LAMMPS ``pair_style eam``, ``eam/alloy``, ``eam/fs``):

- ``eam/fs`` (Finnis-Sinclair): per element a line ``Z mass a0 lattice``,
  F(rho) on ``Nrho`` points, then one density table per element *b* read as
  the density that an atom of this element contributes at an atom of element
  *b* (LAMMPS's ``rhor[i][j]``, ASE's ``electron_density[i, j]``); then r*phi
  for every pair (a, b) with b <= a.
- ``eam/alloy`` (setfl): as eam/fs with one density table per element,
  felt the same by every host element.
- ``eam`` (funcfl, single element): F, an effective charge Z(r) with
  r*phi = 27.2 * 0.529 * Z(r)^2 (LAMMPS's conversion), and rho(r).

Tables are interpolated by not-a-knot cubic splines (pair functions from
phi = (r*phi)/r on r >= dr), the same curves as ``ase.calculators.eam.EAM``.
Beyond the tabulated density F continues linearly, as in LAMMPS.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from ase.calculators.calculator import Calculator, all_changes
from ase.data import atomic_numbers, chemical_symbols

from nestdb.errors import DataError
from nestdb.potentials import eam_kernel, neighbours, splines
from nestdb.potentials.neighbours import half_neighbour_list, inverse_and_volume
from nestdb.potentials.results import remember_atoms, store_results

EAM_KINDS: tuple[str, ...] = ("eam", "eam/alloy", "eam/fs")
#: LAMMPS's Hartree * Bohr used for funcfl effective charges (eV A).
FUNCFL_CHARGE_FACTOR = 27.2 * 0.529


@dataclass
class EAMTables:
    """Raw tables of an EAM file on uniform grids (r_k = k dr, rho_k = k drho).

    ``density[b, a]`` is the density an atom of element b contributes at an
    atom of element a; ``rphi[a, b]`` (symmetric) is r * phi_ab(r) in eV A.
    """

    elements: list[str]
    masses: np.ndarray  # (E,) amu
    drho: float
    dr: float
    cutoff: float
    embedding: np.ndarray  # (E, Nrho) eV
    density: np.ndarray  # (E, E, Nr)
    rphi: np.ndarray  # (E, E, Nr) eV A

    @property
    def n_elements(self) -> int:
        return len(self.elements)


def guess_kind(path: str | Path) -> str:
    """LAMMPS pair style from the file name: ``*.fs`` eam/fs, ``*.alloy``/``*.setfl``
    eam/alloy, anything else eam/fs if it parses as such (see :func:`read_eam_file`)."""
    suffix = Path(path).suffix.lower()
    if suffix == ".fs":
        return "eam/fs"
    if suffix in (".alloy", ".setfl"):
        return "eam/alloy"
    if suffix in (".eam", ".funcfl"):
        return "eam"
    return "eam/fs"


def _expected_tokens(kind: str, n_elements: int, nrho: int, nr: int) -> int:
    per_element = 4 + nrho + (n_elements if kind == "eam/fs" else 1) * nr
    return n_elements * per_element + n_elements * (n_elements + 1) // 2 * nr


def _floats(tokens: list[str], start: int, count: int, path: Path, what: str) -> np.ndarray:
    try:
        return np.array(tokens[start : start + count], dtype=float)
    except ValueError as err:
        raise DataError(f"EAM file {path}: non-numeric entry in {what} ({err})") from None


def read_eam_file(path: str | Path, kind: str | None = None) -> EAMTables:
    """Read a LAMMPS ``eam``, ``eam/alloy`` or ``eam/fs`` potential file.

    Parameters
    ----------
    path : str or Path
    kind : {"eam", "eam/alloy", "eam/fs"}, optional
        Guessed from the file name when None (:func:`guess_kind`).

    Raises
    ------
    DataError
        Unreadable file, or numbers that do not add up to the given kind
        (the message says which kind the counts would fit).
    """
    path = Path(path)
    kind = kind or guess_kind(path)
    if kind not in EAM_KINDS:
        raise DataError(f"EAM file {path}: kind {kind!r} unknown; use one of {', '.join(EAM_KINDS)}")
    try:
        lines = path.read_text().splitlines()
    except (OSError, UnicodeDecodeError) as err:
        raise DataError(f"EAM file {path} cannot be read: {err}") from None
    if kind == "eam":
        return _read_funcfl(path, lines)
    if len(lines) < 6:
        raise DataError(f"EAM file {path}: too short for {kind} (3 comment lines, element and grid lines, tables)")
    try:
        element_line = lines[3].split()
        n_elements = int(element_line[0])
        elements = element_line[1 : 1 + n_elements]
        nrho, drho, nr, dr, cutoff = lines[4].split()[:5]
        nrho, nr, drho, dr, cutoff = int(nrho), int(nr), float(drho), float(dr), float(cutoff)
    except (ValueError, IndexError) as err:
        raise DataError(
            f"EAM file {path}: line 4 must be 'N el1 .. elN' and line 5 'Nrho drho Nr dr cutoff' for {kind} ({err})"
        ) from None
    if len(elements) != n_elements or n_elements < 1 or min(nrho, nr) < 4 or min(drho, dr, cutoff) <= 0:
        raise DataError(
            f"EAM file {path}: bad header (elements {elements}, Nrho={nrho}, drho={drho}, "
            f"Nr={nr}, dr={dr}, cutoff={cutoff})"
        )
    tokens = " ".join(lines[5:]).split()
    expected = _expected_tokens(kind, n_elements, nrho, nr)
    if len(tokens) != expected:
        fits = [
            other for other in ("eam/fs", "eam/alloy") if _expected_tokens(other, n_elements, nrho, nr) == len(tokens)
        ]
        hint = f"; the counts fit kind {fits[0]!r}" if fits else ""
        raise DataError(
            f"EAM file {path}: {len(tokens)} numbers after the header, {kind} with "
            f"{n_elements} element(s), Nrho={nrho}, Nr={nr} needs {expected}{hint}"
        )
    n_density = n_elements if kind == "eam/fs" else 1
    masses = np.zeros(n_elements)
    embedding = np.zeros((n_elements, nrho))
    density = np.zeros((n_elements, n_elements, nr))
    rphi = np.zeros((n_elements, n_elements, nr))
    pos = 0
    for a in range(n_elements):
        masses[a] = _floats(tokens, pos + 1, 1, path, f"mass of {elements[a]}")[0]
        pos += 4
        embedding[a] = _floats(tokens, pos, nrho, path, f"F(rho) of {elements[a]}")
        pos += nrho
        tables = _floats(tokens, pos, n_density * nr, path, f"rho(r) of {elements[a]}").reshape(n_density, nr)
        density[a] = tables  # broadcasts the single alloy table to every host
        pos += n_density * nr
    for a in range(n_elements):
        for b in range(a + 1):
            rphi[a, b] = rphi[b, a] = _floats(tokens, pos, nr, path, f"r*phi({elements[a]}-{elements[b]})")
            pos += nr
    for symbol in elements:
        if symbol not in atomic_numbers:
            raise DataError(f"EAM file {path}: element {symbol!r} on line 4 is not a chemical symbol")
    return EAMTables(elements, masses, drho, dr, cutoff, embedding, density, rphi)


def _read_funcfl(path: Path, lines: list[str]) -> EAMTables:
    try:
        z_number, mass = int(lines[1].split()[0]), float(lines[1].split()[1])
        nrho, drho, nr, dr, cutoff = lines[2].split()[:5]
        nrho, nr, drho, dr, cutoff = int(nrho), int(nr), float(drho), float(dr), float(cutoff)
    except (ValueError, IndexError) as err:
        raise DataError(
            f"EAM file {path}: funcfl ('eam') needs line 2 'Z mass a0 lattice' and line 3 "
            f"'Nrho drho Nr dr cutoff' ({err})"
        ) from None
    tokens = " ".join(lines[3:]).split()
    if len(tokens) != nrho + 2 * nr or not 0 < z_number < len(chemical_symbols):
        raise DataError(
            f"EAM file {path}: funcfl ('eam') with Nrho={nrho}, Nr={nr} needs {nrho + 2 * nr} "
            f"numbers after line 3, found {len(tokens)}; is it an eam/alloy or eam/fs file?"
        )
    values = _floats(tokens, 0, len(tokens), path, "tables")
    charge = values[nrho : nrho + nr]
    return EAMTables(
        [chemical_symbols[z_number]],
        np.array([mass]),
        drho,
        dr,
        cutoff,
        values[None, :nrho],
        values[None, None, nrho + nr :],
        FUNCFL_CHARGE_FACTOR * (charge * charge)[None, None, :],
    )


class FastEAM(Calculator):
    """Fast EAM calculator (compiled kernel or numpy): energy, per-atom energies, forces, stress.

    Forces and stress are computed only when asked for (``calculate`` with
    "forces" or "stress" in ``properties``, as ASE's getters do), so an
    energy-only call costs about half as much.

    Any periodic cell shape and size (the cutoff may exceed half the cell:
    all images are counted), several elements, non-periodic systems too.

    Parameters
    ----------
    potential : str, Path or EAMTables
        A LAMMPS potential file or already-read tables.
    kind : {"eam", "eam/alloy", "eam/fs"}, optional
        File format; guessed from the file name when None.
    compiled : bool, optional
        Use the numba kernel (:mod:`nestdb.potentials.eam_kernel`) for periodic
        cells; default: whenever numba is installed. The numpy path (also used
        for non-periodic and very large systems) gives the same numbers.
    """

    implemented_properties = ["energy", "free_energy", "energies", "forces", "stress"]

    def __init__(
        self, potential: str | Path | EAMTables, kind: str | None = None, compiled: bool | None = None, **kwargs: Any
    ) -> None:
        super().__init__(**kwargs)
        if compiled and not eam_kernel.AVAILABLE:
            raise DataError("FastEAM(compiled=True) needs numba; install it (requirements.txt pins it)")
        self.compiled = eam_kernel.AVAILABLE if compiled is None else bool(compiled)
        tables = potential if isinstance(potential, EAMTables) else read_eam_file(potential, kind)
        self.tables = tables
        self.elements = list(tables.elements)
        self.cutoff = tables.cutoff
        n_el = tables.n_elements
        nr, nrho = tables.rphi.shape[-1], tables.embedding.shape[-1]
        self._dr, self._drho = tables.dr, tables.drho
        self._n_r_int, self._n_rho_int = nr - 1, nrho - 1
        self._rho_max = tables.drho * (nrho - 1)
        # One row per (host a, neighbour b, r interval): the density a b-atom gives
        # at an a-atom, the density an a-atom gives at a b-atom (only where the
        # two differ: eam/alloy with several elements, eam/fs), and phi_ab.
        self._symmetric = bool(np.array_equal(tables.density, tables.density.transpose(1, 0, 2)))
        pair_rows = []
        radii = tables.dr * np.arange(1, nr)
        for a in range(n_el):
            for b in range(n_el):
                functions = [splines.interval_coefficients(0.0, tables.dr, tables.density[b, a], self._n_r_int)]
                if not self._symmetric:
                    functions.append(splines.interval_coefficients(0.0, tables.dr, tables.density[a, b], self._n_r_int))
                functions.append(
                    splines.interval_coefficients(tables.dr, tables.dr, tables.rphi[a, b, 1:] / radii, self._n_r_int)
                )
                pair_rows.append(np.hstack(functions))
        self._pair_table = np.concatenate(pair_rows)
        self._embed_table = np.concatenate(
            [splines.interval_coefficients(0.0, tables.drho, tables.embedding[a], self._n_rho_int) for a in range(n_el)]
        )
        self._index_of = {symbol: k for k, symbol in enumerate(self.elements)}
        self._types_key: bytes | None = None  # atomic numbers of the last call, and their types
        self._types = np.zeros(0, dtype=np.int64)

    def element_indices(self, symbols: list[str]) -> np.ndarray:
        """Index into :attr:`elements` of each symbol; DataError for elements the file lacks."""
        missing = sorted(set(symbols) - set(self._index_of))
        if missing:
            raise DataError(f"EAM potential has elements {self.elements}; no parameters for {missing}")
        return np.array([self._index_of[s] for s in symbols], dtype=np.intp)

    def compute(
        self,
        positions: np.ndarray,
        cell: np.ndarray,
        pbc,
        types: np.ndarray,
        per_atom: bool = True,
        forces: bool = True,
    ) -> tuple[float, np.ndarray | None, np.ndarray | None, np.ndarray | None]:
        """Energy, per-atom energies, forces and the stress (3x3, ASE sign) from plain arrays.

        Parameters
        ----------
        positions : (N, 3) array
        cell : (3, 3) array
        pbc : sequence of 3 bool
        types : (N,) int array
            Indices into :attr:`elements` (see :meth:`element_indices`).
        per_atom : bool
            False skips the per-atom energies (returned as None).
        forces : bool
            False skips forces and stress (returned as None): about half the
            cost of a small cell with the compiled kernel.

        Coinciding atoms give an infinite energy and NaN forces (a move there
        must be rejected); a cell of zero volume gives stress None.
        """
        n_atoms = len(positions)
        cell = np.asarray(cell, dtype=float)
        if self.compiled and all(pbc):
            status, energy, energies, force_array, virial, volume = eam_kernel.eam_kernel(
                np.ascontiguousarray(positions, dtype=float),
                cell,
                types.astype(np.int64, copy=False),
                len(self.elements),
                self._symmetric,
                self.cutoff,
                self._pair_table,
                self._n_r_int,
                self._dr,
                self._embed_table,
                self._n_rho_int,
                self._drho,
                self._rho_max,
                forces,
                neighbours.MAX_DENSE_CANDIDATES,
            )
            if status == eam_kernel.COINCIDING:
                return self._coinciding(n_atoms, forces)
            if status == eam_kernel.OK:
                if not forces:
                    return energy, energies if per_atom else None, None, None
                return energy, energies if per_atom else None, force_array, virial / volume
        inverse, volume = inverse_and_volume(cell)
        first, second, vectors, distances = half_neighbour_list(positions, cell, pbc, self.cutoff, inverse)
        if len(distances) and distances.min() <= 0.0:
            return self._coinciding(n_atoms, forces)
        interval = (distances * (1.0 / self._dr)).astype(np.intp)
        np.minimum(interval, self._n_r_int - 1, out=interval)
        offset = distances - interval * self._dr
        n_el = len(self.elements)
        if n_el > 1:
            interval += (types.take(first) * n_el + types.take(second)) * self._n_r_int
        value, slope = splines.evaluate(self._pair_table.take(interval, axis=0), offset)
        at_second = 0 if self._symmetric else 1  # column of the density felt by `second`
        density = np.bincount(first, weights=value[:, 0], minlength=n_atoms) + np.bincount(
            second, weights=value[:, at_second], minlength=n_atoms
        )
        embed, embed_slope = self._embedding(density, types)
        energy = float(embed.sum() + value[:, -1].sum())
        energies = None
        if per_atom:
            pair_half = 0.5 * value[:, -1]
            energies = (
                embed
                + np.bincount(first, weights=pair_half, minlength=n_atoms)
                + np.bincount(second, weights=pair_half, minlength=n_atoms)
            )
        if not forces:
            return energy, energies, None, None
        # dE/dr of each pair: the pair term and both atoms' embedding terms
        de_dr = slope[:, -1] + embed_slope.take(first) * slope[:, 0] + embed_slope.take(second) * slope[:, at_second]
        pair_forces = (de_dr / distances)[:, None] * vectors  # force on `first`; minus it on `second`
        force_array = np.empty((n_atoms, 3))
        for axis in range(3):
            force_array[:, axis] = np.bincount(first, weights=pair_forces[:, axis], minlength=n_atoms) - np.bincount(
                second, weights=pair_forces[:, axis], minlength=n_atoms
            )
        stress = pair_forces.T @ vectors / volume if volume > 0 else None
        return energy, energies, force_array, stress

    @staticmethod
    def _coinciding(n_atoms: int, forces: bool):
        if not forces:
            return np.inf, np.full(n_atoms, np.inf), None, None
        return np.inf, np.full(n_atoms, np.inf), np.full((n_atoms, 3), np.nan), np.full((3, 3), np.nan)

    def _embedding(self, density: np.ndarray, types: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        clipped = np.minimum(density, self._rho_max)
        interval = (clipped * (1.0 / self._drho)).astype(np.intp)
        np.clip(interval, 0, self._n_rho_int - 1, out=interval)
        offset = clipped - interval * self._drho
        if len(self.elements) > 1:
            interval += types * self._n_rho_int
        value, slope = splines.evaluate(self._embed_table.take(interval, axis=0), offset)
        value, slope = value[:, 0], slope[:, 0]
        # LAMMPS: F continues linearly above the largest tabulated density
        return value + slope * (density - clipped), slope

    def calculate(self, atoms=None, properties=("energy",), system_changes=all_changes) -> None:
        """ASE calculate(): forces and stress only when ``properties`` asks for
        either (``get_potential_energy()`` alone skips them)."""
        atoms = remember_atoms(self, atoms)
        numbers = atoms.numbers
        key = numbers.tobytes()
        if key != self._types_key:  # the same atoms call after call in nested sampling
            self._types = self.element_indices(atoms.get_chemical_symbols()).astype(np.int64)
            self._types_key = key
        with_forces = "forces" in properties or "stress" in properties
        energy, energies, forces, stress = self.compute(
            atoms.positions,
            atoms.cell.array,
            atoms.pbc,
            self._types,
            per_atom="energies" in properties,
            forces=with_forces,
        )
        store_results(self, energy, energies, forces, stress)
