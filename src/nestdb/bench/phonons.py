"""Phonon dispersions by finite displacements with phonopy, model against reference."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from ase import Atoms
from phonopy import Phonopy
from phonopy.structure.atoms import PhonopyAtoms

from nestdb.errors import ConfigError, DataError
from nestdb.relax import relax_cell
from nestdb.structures.crystals import build_structure

#: Diagonal supercells (multiples of the primitive cell) used when none is configured.
DEFAULT_SUPERCELLS = {"hcp": (3, 3, 2), "dhcp": (3, 3, 1), "bcc": (4, 4, 4), "fcc": (3, 3, 3)}
#: Frequencies below this (THz, negative = imaginary) flag a dynamical instability.
IMAGINARY_TOLERANCE_THZ = -0.1


def _to_phonopy(atoms: Atoms):
    return PhonopyAtoms(
        symbols=atoms.get_chemical_symbols(), cell=np.array(atoms.cell), scaled_positions=atoms.get_scaled_positions()
    )


def _to_ase(cell) -> Atoms:
    return Atoms(cell.symbols, cell=cell.cell, scaled_positions=cell.scaled_positions, pbc=True)


def phonon_dispersion(
    name: str,
    calculator_for: Callable[[str, Atoms], object],
    element: str,
    supercell=None,
    displacement: float = 0.05,
    npoints: int = 60,
    pressure_gpa: float = 0.0,
    relax: bool = True,
    fmax: float = 5e-3,
    max_steps: int = 40,
) -> dict:
    """Phonon band structure of one structure along ASE's standard band path.

    The primitive cell is first relaxed at ``pressure_gpa`` (volume only,
    ideal ratios kept, as for the enthalpy curves), then phonopy displaces
    the symmetry-distinct atoms of the supercell by ``displacement`` Å (±
    where symmetry requires), the forces give the force constants
    (symmetrised, so the acoustic sum rule holds), and the frequencies are
    evaluated at the q-points of ``atoms.cell.bandpath()`` in fractional
    coordinates (the same points for any volume, so two models compare
    point by point).

    Cost: relaxation (about ``steps + 1`` calls on the primitive cell) plus
    one supercell call per displacement: 1 for bcc/fcc, 2 for hcp, 4 for
    dhcp with the default cells (27–64 atoms each).

    Parameters
    ----------
    name
        Structure name (hcp, bcc, fcc, dhcp).
    calculator_for
        ``(label, atoms) -> calculator``; labels ``phonon_<name>_relax`` and
        ``phonon_<name>_d<k>``.
    element
        Chemical symbol.
    supercell
        Three integers (diagonal multiples of the primitive cell); default
        :data:`DEFAULT_SUPERCELLS`.
    displacement
        Finite displacement (Å); 0.05 as in the study.
    npoints
        Number of q-points along the whole path.
    pressure_gpa, relax, fmax, max_steps
        Relaxation of the primitive cell before displacing.

    Returns
    -------
    dict
        ``structure``, ``supercell``, ``n_displacements``, ``volume_per_atom``,
        ``path`` (ASE's path string), ``x`` (path coordinate, 1/Å),
        ``special_x``, ``special_labels``, ``qpoints`` (fractional),
        ``frequencies_thz`` (n_q × n_bands, negative = imaginary),
        ``gamma_acoustic_thz`` (the three lowest |ω| at Γ),
        ``min_frequency_thz``, ``imaginary`` (any frequency below
        :data:`IMAGINARY_TOLERANCE_THZ`), ``relaxation``.
    """
    size = tuple(int(n) for n in (supercell or DEFAULT_SUPERCELLS.get(name, (3, 3, 3))))
    if len(size) != 3 or min(size) < 1:
        raise ConfigError(f"bench.phonons.supercell must be three positive integers, got {supercell!r}")
    if not displacement > 0:
        raise ConfigError(f"bench.phonons.displacement must be positive (Å), got {displacement!r}")
    atoms = build_structure(name, element=element)
    relaxation = None
    if relax:
        relaxed, relaxation = relax_cell(
            atoms,
            calculator_for(f"phonon_{name}_relax", atoms),
            fmax=fmax,
            pressure_gpa=pressure_gpa,
            max_steps=max_steps,
            hydrostatic_strain=True,
        )
        if not relaxation["abandoned"]:
            atoms = relaxed
    phonon = Phonopy(_to_phonopy(atoms), supercell_matrix=np.diag(size))
    phonon.generate_displacements(distance=float(displacement))
    forces = []
    for k, displaced in enumerate(phonon.supercells_with_displacements):
        cell = _to_ase(displaced)
        cell.calc = calculator_for(f"phonon_{name}_d{k}", cell)
        forces.append(np.array(cell.get_forces()))
        cell.calc = None
    phonon.forces = np.array(forces)
    phonon.produce_force_constants()
    phonon.symmetrize_force_constants()

    bandpath = atoms.cell.bandpath(npoints=int(npoints))
    qpoints = np.array(bandpath.kpts)
    phonon.run_qpoints(qpoints)
    frequencies = np.array(phonon.get_qpoints_dict()["frequencies"])
    x, special_x, labels = bandpath.get_linear_kpoint_axis()
    gamma = np.flatnonzero(np.linalg.norm(qpoints, axis=1) < 1e-9)
    gamma_acoustic = np.sort(np.abs(frequencies[gamma[0]]))[:3] if gamma.size else np.full(3, np.nan)
    return {
        "structure": name,
        "supercell": list(size),
        "n_atoms_supercell": len(atoms) * int(np.prod(size)),
        "n_displacements": len(forces),
        "displacement": float(displacement),
        "volume_per_atom": float(atoms.get_volume()) / len(atoms),
        "path": bandpath.path,
        "x": np.asarray(x).tolist(),
        "special_x": np.asarray(special_x).tolist(),
        "special_labels": list(labels),
        "qpoints": qpoints.tolist(),
        "frequencies_thz": frequencies.tolist(),
        "gamma_acoustic_thz": gamma_acoustic.tolist(),
        "min_frequency_thz": float(frequencies.min()),
        "imaginary": bool(frequencies.min() < IMAGINARY_TOLERANCE_THZ),
        "relaxation": relaxation,
    }


def frequency_rmse(model: dict, reference: dict) -> float:
    """RMSE (THz) between two dispersions of :func:`phonon_dispersion` on the same path.

    Bands are compared sorted at each q-point.
    """
    a = np.sort(np.asarray(model["frequencies_thz"]), axis=1)
    b = np.sort(np.asarray(reference["frequencies_thz"]), axis=1)
    if a.shape != b.shape or not np.allclose(model["qpoints"], reference["qpoints"]):
        raise DataError(
            f"frequency_rmse: {model['structure']} dispersions are on different q-point paths "
            f"({a.shape} vs {b.shape}); compute both with the same npoints"
        )
    return float(np.sqrt(np.mean((a - b) ** 2)))
