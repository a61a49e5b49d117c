"""The fitted committee as an ASE calculator, and batch prediction.

One pyace basis evaluation per configuration gives the mean-model energy,
forces and stress *and* the per-atom basis values (projections); the
committee energies are then a matrix product, so a committee of any size
costs about as much as the mean model alone.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from ase import Atoms
from ase.calculators.calculator import Calculator, all_changes
from ase.stress import voigt_6_to_full_3x3_stress

from nestdb.errors import DataError
from nestdb.fit.linear_ace import COMMITTEE_FILE, POTENTIAL_FILE


@dataclass
class Committee:
    """Coefficients of a fitted linear-ACE committee (contents of ``committee.npz``)."""

    model_dir: Path
    potential_path: Path
    elements: list[str]
    reference_energies: dict[str, float]
    mean_coefficients: np.ndarray  # (n_functions,)
    coefficients: np.ndarray  # (committee_size, n_functions)
    function_offsets: np.ndarray  # (n_elements,) start of each element's block
    functions_per_element: np.ndarray  # (n_elements,)
    onebody_deviation: np.ndarray  # (committee_size, n_elements) members' E0 minus the mean's (fitted E0)

    @property
    def size(self) -> int:
        """Number of committee members."""
        return int(self.coefficients.shape[0])

    def summed_projections(self, projections, symbols: list[str]) -> np.ndarray:
        """Sum per-atom basis values into one vector over all functions (the energy row)."""
        phi = np.zeros(self.mean_coefficients.size)
        if len(self.elements) == 1:
            return np.asarray(projections, dtype=float).reshape(len(symbols), -1).sum(axis=0)
        index = {e: i for i, e in enumerate(self.elements)}
        for symbol, projection in zip(symbols, projections):
            start = self.function_offsets[index[symbol]]
            phi[start:start + len(projection)] += projection
        return phi

    def reference_energy(self, symbols: list[str]) -> np.ndarray:
        """Per-atom isolated-atom energies E0."""
        return np.array([self.reference_energies[s] for s in symbols])


def load_committee(model_dir: str | Path) -> Committee:
    """Read ``committee.npz`` and locate ``potential.yaml`` in a fitted model folder.

    Raises
    ------
    DataError
        A file is missing or inconsistent; the message names it.
    """
    model_dir = Path(model_dir)
    potential_path = model_dir / POTENTIAL_FILE
    committee_path = model_dir / COMMITTEE_FILE
    for path in (potential_path, committee_path):
        if not path.is_file():
            raise DataError(f"fitted model file '{path}' is missing; run the fit step for {model_dir} first")
    try:
        with np.load(committee_path) as data:
            elements = [str(e) for e in data["elements"]]
            committee = Committee(
                model_dir=model_dir,
                potential_path=potential_path,
                elements=elements,
                reference_energies={e: float(v) for e, v in zip(elements, data["reference_energies"])},
                mean_coefficients=np.asarray(data["mean"], dtype=float),
                coefficients=np.atleast_2d(np.asarray(data["coefficients"], dtype=float)),
                function_offsets=np.asarray(data["function_offsets"], dtype=int),
                functions_per_element=np.asarray(data["functions_per_element"], dtype=int),
                onebody_deviation=(np.asarray(data["onebody_deviation"], dtype=float)
                                   if "onebody_deviation" in data.files
                                   else np.zeros((np.atleast_2d(data["coefficients"]).shape[0], len(elements)))),
            )
    except (KeyError, ValueError, OSError) as exc:
        raise DataError(f"'{committee_path}' is not a nestdb committee file: {exc}") from exc
    if committee.coefficients.shape[1] != committee.mean_coefficients.size:
        raise DataError(f"'{committee_path}': committee has {committee.coefficients.shape[1]} coefficients "
                        f"per member but the mean has {committee.mean_coefficients.size}")
    return committee


class CommitteeACECalculator(Calculator):
    """ASE calculator for a linear-ACE model fitted by :func:`nestdb.fit.fit_linear_ace`.

    Energy, forces and stress are those of the mean (posterior-mean) model,
    with the isolated-atom energies E0 added back, so energies are on the
    DFT scale.  After a calculation ``results`` also holds

    * ``energy_committee``: the K committee total energies (eV, incl. E0),
    * ``energy_std``: their standard deviation (eV, total; ddof=1 like Julia's ``std``),
    * ``energy_std_per_atom``: ``energy_std / n_atoms`` (eV/atom).

    Parameters
    ----------
    model_dir
        Folder with ``potential.yaml`` and ``committee.npz``.
    **kwargs
        Passed to :class:`ase.calculators.calculator.Calculator`.
    """

    implemented_properties = ["energy", "free_energy", "forces", "stress", "energies"]

    def __init__(self, model_dir: str | Path, **kwargs):
        from pyace import PyACECalculator

        Calculator.__init__(self, **kwargs)
        self.committee = load_committee(model_dir)
        self.model_dir = Path(model_dir)
        self._ace = PyACECalculator(str(self.committee.potential_path))

    def calculate(self, atoms: Atoms | None = None, properties=("energy",), system_changes=all_changes):
        Calculator.calculate(self, atoms, properties, system_changes)
        atoms = self.atoms
        symbols = atoms.get_chemical_symbols()
        unknown = set(symbols) - set(self.committee.elements)
        if unknown:
            raise DataError(f"configuration contains {sorted(unknown)} but the model in {self.model_dir} "
                            f"was fitted for {self.committee.elements}")
        # pyace computes energy, forces, stress and projections in one pass whatever is asked
        self._ace.calculate(atoms, properties=("energy", "forces"), system_changes=all_changes)
        ace = self._ace.results
        e0_atoms = self.committee.reference_energy(symbols)
        e0_total = float(e0_atoms.sum())
        phi = self.committee.summed_projections(self._ace.projections, symbols)
        counts = np.array([symbols.count(e) for e in self.committee.elements], dtype=float)
        committee_energies = self.committee.coefficients @ phi + e0_total + self.committee.onebody_deviation @ counts
        ddof = 1 if committee_energies.size > 1 else 0
        energy_std = float(np.std(committee_energies, ddof=ddof))
        energy = float(ace["energy"]) + e0_total
        self.results = {
            "energy": energy,
            "free_energy": energy,
            "forces": np.array(ace["forces"], dtype=float),
            "energies": np.asarray(ace["energies"], dtype=float) + e0_atoms,
            "energy_committee": committee_energies,
            "energy_std": energy_std,
            "energy_std_per_atom": energy_std / len(atoms),
        }
        if "stress" in ace:
            self.results["stress"] = np.array(ace["stress"], dtype=float)


def predict_frames(model_dir: str | Path | Calculator, frames: list[Atoms]) -> dict:
    """Mean-model and committee predictions for a list of configurations.

    Parameters
    ----------
    model_dir
        Fitted model folder, or a committee calculator that sets
        ``energy_committee`` and ``energy_std_per_atom`` (a
        :class:`CommitteeACECalculator` or a
        :class:`~nestdb.fit.pacemaker_calculator.PacemakerCommitteeCalculator`,
        whose ``max_gamma`` is returned too).
    frames
        Configurations; they are not modified (each is copied).

    Returns
    -------
    dict
        ``n_atoms`` (n,), ``energy_per_atom`` (n,, eV/atom incl. E0),
        ``energy_committee_per_atom`` (n, K), ``energy_std_per_atom`` (n,),
        ``forces`` (list of (n_atoms, 3) arrays) and ``virial`` (n, 9; eV,
        ``-stress * volume`` in the ``dft_virial`` convention, NaN without a 3D cell);
        ``max_gamma`` (n,) when the calculator reports it.
    """
    calc = model_dir if isinstance(model_dir, Calculator) else CommitteeACECalculator(model_dir)
    n = len(frames)
    out = {
        "n_atoms": np.zeros(n, dtype=int),
        "energy_per_atom": np.zeros(n),
        "energy_committee_per_atom": None,
        "energy_std_per_atom": np.zeros(n),
        "forces": [],
        "virial": np.full((n, 9), np.nan),
    }
    committees, gamma = [], []
    for i, frame in enumerate(frames):
        atoms = Atoms(frame.numbers, positions=frame.positions, cell=frame.cell, pbc=frame.pbc)
        atoms.calc = calc
        calc.calculate(atoms, properties=("energy", "forces"), system_changes=all_changes)
        n_atoms = len(atoms)
        out["n_atoms"][i] = n_atoms
        out["energy_per_atom"][i] = calc.results["energy"] / n_atoms
        committees.append(calc.results["energy_committee"] / n_atoms)
        out["energy_std_per_atom"][i] = calc.results["energy_std_per_atom"]
        if "max_gamma" in calc.results:
            gamma.append(calc.results["max_gamma"])
        out["forces"].append(calc.results["forces"].copy())
        if "stress" in calc.results:
            full = voigt_6_to_full_3x3_stress(calc.results["stress"])
            out["virial"][i] = (-full * atoms.get_volume()).reshape(9)
    out["energy_committee_per_atom"] = np.array(committees).reshape(n, -1)
    if gamma and len(gamma) == n:
        out["max_gamma"] = np.array(gamma)
    return out
