"""The linear-ACE committee (``committee.npz`` + ``potential.yaml``) as an ASE calculator, and batch prediction.

One pyace evaluation per configuration gives the mean-model energy, forces
and stress *and* the committee energies (see :class:`CommitteeACECalculator`),
so a committee costs little more than the mean model alone.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from ase import Atoms
from ase.calculators.calculator import Calculator, all_changes
from ase.data import chemical_symbols
from ase.stress import voigt_6_to_full_3x3_stress

from nestdb.errors import DataError
from nestdb.models.committee import CommitteeCalculator

#: The mean model of a fitted linear-ACE folder (pyace B-basis; energies exclude E0).
POTENTIAL_FILE = "potential.yaml"
#: The committee's coefficients, E0 and calibration (:func:`load_committee`).
COMMITTEE_FILE = "committee.npz"


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
        for symbol, projection in zip(symbols, projections, strict=True):
            start = self.function_offsets[index[symbol]]
            phi[start : start + len(projection)] += projection
        return phi


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
                reference_energies={e: float(v) for e, v in zip(elements, data["reference_energies"], strict=True)},
                mean_coefficients=np.asarray(data["mean"], dtype=float),
                coefficients=np.atleast_2d(np.asarray(data["coefficients"], dtype=float)),
                function_offsets=np.asarray(data["function_offsets"], dtype=int),
                functions_per_element=np.asarray(data["functions_per_element"], dtype=int),
                onebody_deviation=(
                    np.asarray(data["onebody_deviation"], dtype=float)
                    if "onebody_deviation" in data.files
                    else np.zeros((np.atleast_2d(data["coefficients"]).shape[0], len(elements)))
                ),
            )
    except (KeyError, ValueError, OSError) as exc:
        raise DataError(f"'{committee_path}' is not a nestdb committee file: {exc}") from exc
    if committee.coefficients.shape[1] != committee.mean_coefficients.size:
        raise DataError(
            f"'{committee_path}': committee has {committee.coefficients.shape[1]} coefficients "
            f"per member but the mean has {committee.mean_coefficients.size}"
        )
    return committee


class CommitteeACECalculator(CommitteeCalculator):
    """ASE calculator for a linear-ACE model fitted by :func:`nestdb.fit.fit_linear_ace`.

    Energy, forces and stress are those of the mean (posterior-mean) model,
    with the isolated-atom energies E0 added back, so energies are on the
    DFT scale; ``results`` also hold the committee's energies and STD
    (:class:`~nestdb.models.committee.CommitteeCalculator`).

    How it is evaluated (benchmarks/ace_ns_cost.py measures it): pyace's
    recursive C-tilde evaluator gives the mean model's energy and forces in
    ~40-60 % of the time of the B-basis evaluator with projections. The
    committee of a one-element model comes from the same pass: the members'
    coefficient deviations from the mean are extra densities of the basis
    (with zero weight in the embedding, so energy and forces stay the mean
    model's), and the per-atom densities summed over the atoms are the
    members' energy deviations. Several elements: the B-basis evaluator's
    per-atom projections times the coefficients (one pass, any committee size).

    Parameters
    ----------
    model_dir
        Folder with ``potential.yaml`` and ``committee.npz``.
    **kwargs
        Passed to :class:`ase.calculators.calculator.Calculator`.

    Attributes
    ----------
    std_on_request : bool
        False (default): every call evaluates the committee. True: only calls
        whose ``properties`` list ``energy_std_per_atom``, ``energy_std`` or
        ``energy_committee`` do; the others give energy, forces and stress
        alone, at the recursive evaluator's cost (nested sampling sets this
        and asks for the STD only where a move needs it).
    """

    description = "linear-ACE committee"
    _COMMITTEE_PROPERTIES = ("energy_std_per_atom", "energy_std", "energy_committee")

    def __init__(self, model_dir: str | Path, **kwargs):
        committee = load_committee(model_dir)
        super().__init__(model_dir, committee.reference_energies, **kwargs)
        self.committee = committee
        self.std_on_request = False
        self._models = _PyaceModels(self.committee)
        self._species_key: bytes | None = None

    @property
    def _ace(self):
        """pyace's B-basis calculator evaluated at the last configuration, for its per-atom
        ``projections`` (computed on access: the recursive route has none)."""
        if self.atoms is None:
            raise RuntimeError("no configuration evaluated yet")
        return self._models.projected(self.atoms)

    def _species(self, atoms: Atoms) -> None:
        """Element indices, E0 per atom and element counts of ``atoms`` (cached: NS keeps its atoms)."""
        key = atoms.numbers.tobytes()
        if key == self._species_key:
            return
        symbols = atoms.get_chemical_symbols()
        self._symbols = symbols
        self._e0_atoms = self.reference_energy(symbols)
        self._e0_total = float(self._e0_atoms.sum())
        counts = np.array([symbols.count(e) for e in self.committee.elements], dtype=float)
        self._onebody = self.committee.onebody_deviation @ counts
        self._species_key = key

    def calculate(self, atoms: Atoms | None = None, properties=("energy",), system_changes=all_changes):
        Calculator.calculate(self, atoms, properties, system_changes)
        atoms = self.atoms
        self._species(atoms)
        with_committee = not self.std_on_request or any(p in properties for p in self._COMMITTEE_PROPERTIES)
        models = self._models
        calc, deviations = models.compute(atoms, with_committee, self._symbols)
        energy = float(calc.energy) + self._e0_total
        self.results = {
            "energy": energy,
            "free_energy": energy,
            "forces": np.array(calc.forces, dtype=float),
            "energies": np.array(calc.energies, dtype=float) + self._e0_atoms,
        }
        if deviations is not None:
            self.store_committee(energy + deviations + self._onebody, len(atoms))
        if atoms.cell.rank == 3:
            # pyace's virial order xx, yy, zz, xy, xz, yz -> ASE Voigt xx, yy, zz, yz, xz, xy
            virial = np.array(calc.virial, dtype=float)
            self.results["stress"] = virial[[0, 1, 2, 5, 4, 3]] / atoms.get_volume()


class _PyaceModels:
    """The pyace evaluators of one committee (each pyace calculator keeps raw
    pointers to its evaluator and basis: they are held here)."""

    def __init__(self, committee: Committee) -> None:
        # optional: pyace is the `ace` extra, imported only where a model is built or evaluated
        from pyace.basis import ACEBBasisSet, BBasisConfiguration
        from pyace.calculator import ACECalculator
        from pyace.evaluator import ACEBEvaluator

        self.committee = committee
        config = BBasisConfiguration(str(committee.potential_path))
        self.b_basis = ACEBBasisSet(config)
        self.cutoff = float(self.b_basis.cutoffmax)
        self.element_index = {e: i for i, e in enumerate(self.b_basis.elements_name)}
        self.fast, self._fast_parts = self._recursive(self.b_basis)
        self._b_evaluator = ACEBEvaluator(self.b_basis)
        self.projections = ACECalculator(self._b_evaluator)
        blocks = config.funcspecs_blocks
        self.multi = None
        if (
            len(blocks) == 1
            and blocks[0].ndensityi == 1
            and len(committee.elements) == 1
            and np.array_equal(np.array(config.get_func_coeffs()), committee.mean_coefficients)
        ):
            self.multi, self._multi_parts = self._recursive(ACEBBasisSet(self._committee_config(config)))

    @staticmethod
    def _recursive(basis):
        # optional: pyace is the `ace` extra, imported only where a model is built or evaluated
        from pyace.calculator import ACECalculator
        from pyace.evaluator import ACERecursiveEvaluator

        ctilde = basis.to_ACECTildeBasisSet()
        evaluator = ACERecursiveEvaluator(ctilde)
        evaluator.set_recursive(True)
        return ACECalculator(evaluator), (basis, ctilde, evaluator)

    def _committee_config(self, config):
        """The basis with density 0 = the mean model and density k = member k's
        coefficients minus the mean's, the extra densities weighted 0 in the
        (linear) embedding."""
        deviations = self.committee.coefficients - self.committee.mean_coefficients
        n_density = 1 + deviations.shape[0]
        block = config.funcspecs_blocks[0]
        functions = block.funcspecs
        for k, function in enumerate(functions):
            function.coeffs = [float(function.coeffs[0])] + deviations[:, k].tolist()
        block.funcspecs = functions
        block.ndensityi = n_density
        block.fs_parameters = list(block.fs_parameters[:2]) + [0.0, 1.0] * (n_density - 1)
        config.funcspecs_blocks = [block]
        return config

    def environment(self, atoms: Atoms):
        # optional: pyace is the `ace` extra, imported only where a model is built or evaluated
        from pyace.catomicenvironment import build_atomic_env

        pbc = atoms.pbc
        if pbc.all() != pbc.any():
            raise DataError("the ACE committee supports fully periodic or non-periodic cells only")
        env = build_atomic_env(
            np.array(atoms.positions, dtype=float),
            np.array(atoms.cell.array, dtype=float),
            atoms.numbers,
            bool(pbc.all()),
            self.cutoff,
        )
        index = self.element_index
        symbols = chemical_symbols
        env.species_type = [index[symbols[z]] for z in env.species_type]
        return env

    def projected(self, atoms: Atoms):
        """The B-basis calculator after evaluating ``atoms`` with per-atom projections."""
        self.projections.compute(self.environment(atoms), compute_projections=True)
        return self.projections

    def compute(self, atoms: Atoms, with_committee: bool, symbols: list[str]):
        """Evaluate ``atoms``; returns the pyace calculator that holds energy,
        forces, energies and virial, and the members' energy deviations from
        the mean (None without ``with_committee``)."""
        env = self.environment(atoms)
        if not with_committee:
            self.fast.compute(env, compute_projections=False)
            return self.fast, None
        if self.multi is not None:
            # (pyace fills the per-atom densities only along with its projections)
            self.multi.compute(env, compute_projections=True)
            rhos = np.asarray(self.multi.rhos, dtype=float)
            return self.multi, rhos[:, 1:].sum(axis=0)
        self.projections.compute(env, compute_projections=True)
        phi = self.committee.summed_projections(self.projections.projections, symbols)
        deviations = (self.committee.coefficients - self.committee.mean_coefficients) @ phi
        return self.projections, deviations


def predict_frames(model_dir: str | Path | Calculator, frames: list[Atoms]) -> dict:
    """Mean-model and committee predictions for a list of configurations.

    Parameters
    ----------
    model_dir
        Fitted model folder, or a committee calculator that sets
        ``energy_committee`` and ``energy_std_per_atom`` (a
        :class:`CommitteeACECalculator` or a
        :class:`~nestdb.models.pacemaker_committee.PacemakerCommitteeCalculator`,
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
