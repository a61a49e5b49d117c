"""The base class of nestdb's committee calculators (linear ACE and pacemaker).

A committee calculator is an ASE calculator whose energy, forces and stress
are those of one model (the mean of the committee) on the DFT scale (the
isolated-atom energies E0 added back), and whose ``results`` also hold the
members' energies and their spread:

* ``energy_committee``: the K member total energies (eV, E0 included),
* ``energy_std``: their standard deviation (eV, ddof=1 like Julia's ``std``),
* ``energy_std_per_atom``: ``energy_std / n_atoms`` (eV/atom), what the NS
  committee limit and the trust window compare against.

Subclasses: :class:`nestdb.models.ace_committee.CommitteeACECalculator` and
:class:`nestdb.models.pacemaker_committee.PacemakerCommitteeCalculator`.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from ase.calculators.calculator import Calculator

from nestdb.errors import DataError


class CommitteeCalculator(Calculator):
    """Mean-model energy, forces and stress with the committee's member energies and STD.

    Parameters
    ----------
    model_dir
        The model folder (named in messages).
    reference_energies
        E0 per element (eV), added to the model's energies.
    **kwargs
        Passed to :class:`ase.calculators.calculator.Calculator`.
    """

    implemented_properties = [
        "energy",
        "free_energy",
        "forces",
        "stress",
        "energies",
        "energy_committee",
        "energy_std",
        "energy_std_per_atom",
    ]
    #: What the model is, for messages.
    description = "committee"

    def __init__(self, model_dir: str | Path, reference_energies: dict[str, float], **kwargs) -> None:
        Calculator.__init__(self, **kwargs)
        self.model_dir = Path(model_dir)
        self.reference_energies = {str(k): float(v) for k, v in reference_energies.items()}

    @property
    def size(self) -> int:
        """Number of members."""
        raise NotImplementedError

    def reference_energy(self, symbols: list[str]) -> np.ndarray:
        """Per-atom E0 of ``symbols``.

        Raises
        ------
        DataError
            An element the model was not fitted for (naming the model folder).
        """
        unknown = set(symbols) - set(self.reference_energies)
        if unknown:
            raise DataError(
                f"configuration contains {sorted(unknown)} but the {self.description} in "
                f"{self.model_dir} was fitted for {list(self.reference_energies)}"
            )
        return np.array([self.reference_energies[s] for s in symbols])

    def store_committee(self, committee_energies: np.ndarray, n_atoms: int) -> None:
        """Put the member energies and their STD (ddof=1; 0 for one member) into ``results``."""
        committee_energies = np.asarray(committee_energies, dtype=float)
        ddof = 1 if committee_energies.size > 1 else 0
        energy_std = float(np.std(committee_energies, ddof=ddof))
        self.results.update(
            energy_committee=committee_energies, energy_std=energy_std, energy_std_per_atom=energy_std / n_atoms
        )
