"""A pacemaker committee (nonlinear ACE members) as one ASE calculator, for NS and benchmarks.

:func:`nestdb.fit.pacemaker.collect_committee` writes ``committee.json`` into
the committee folder: the member potentials (``member_<k>.yaml``), the
isolated-atom energies E0 the members were fitted against, and the active set
of member 0 (``member_0.asi``) when ``pace_activeset`` made one.  Each call
evaluates every member (K pyace evaluations, unlike the linear committee's
one), so NS with a pacemaker committee costs about K times a single model.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from ase import Atoms
from ase.calculators.calculator import Calculator, all_changes

from nestdb.errors import DataError
from nestdb.models.committee import CommitteeCalculator

#: Index of a collected pacemaker committee (members, E0, active set).
COMMITTEE_INDEX = "committee.json"


class PacemakerCommitteeCalculator(CommitteeCalculator):
    """Mean energy, forces and stress of pacemaker committee members, with their energy STD.

    Energies include E0 (DFT scale); ``results`` hold the committee's energies
    and STD (:class:`~nestdb.models.committee.CommitteeCalculator`) and, with
    an active set, ``max_gamma`` (the largest extrapolation grade of member 0
    over the atoms).

    Parameters
    ----------
    potentials
        Member potential files (pacemaker ``.yaml``).
    reference_energies
        E0 per element (eV), added to the members' energies.
    active_set
        ``.asi`` file of the first member, or None.
    """

    description = "pacemaker committee"

    def __init__(
        self,
        potentials: list[str | Path],
        reference_energies: dict[str, float],
        active_set: str | Path | None = None,
        **kwargs,
    ):
        from pyace import PyACECalculator  # optional dependency (the `ace` extra): imported only to evaluate

        if not potentials:
            raise DataError("a pacemaker committee needs at least one member potential")
        for path in potentials:
            if not Path(path).is_file():
                raise DataError(f"pacemaker committee member '{path}' is missing; rerun rule fit_pacemaker")
        super().__init__(Path(potentials[0]).parent, reference_energies, **kwargs)
        self.potentials = [Path(p) for p in potentials]
        self._members = [PyACECalculator(str(p)) for p in self.potentials]
        self.active_set = Path(active_set) if active_set else None
        if self.active_set is not None:
            self._members[0].set_active_set(str(self.active_set))

    @classmethod
    def from_folder(cls, folder: str | Path) -> PacemakerCommitteeCalculator:
        """Load the committee collected into ``folder`` (its ``committee.json``)."""
        folder = Path(folder)
        index = folder / COMMITTEE_INDEX
        if not index.is_file():
            raise DataError(
                f"'{index}' is missing: {folder} holds no collected pacemaker committee; "
                "run rule fit_pacemaker (fit.pacemaker.enabled) first"
            )
        try:
            data = json.loads(index.read_text())
            members = [folder / name for name in data["members"]]
            active_set = folder / data["active_set"] if data.get("active_set") else None
            reference_energies = data["reference_energies"]
        except (ValueError, KeyError, TypeError) as exc:
            raise DataError(f"'{index}' is not a nestdb pacemaker committee index: {exc}") from exc
        return cls(members, reference_energies, active_set)

    @property
    def size(self) -> int:
        """Number of members."""
        return len(self._members)

    def calculate(self, atoms: Atoms | None = None, properties=("energy",), system_changes=all_changes):
        Calculator.calculate(self, atoms, properties, system_changes)
        atoms = self.atoms
        e0_atoms = self.reference_energy(atoms.get_chemical_symbols())
        energies, forces, stresses, per_atom = [], [], [], []
        gamma = None
        for k, member in enumerate(self._members):
            member.calculate(atoms, properties=("energy", "forces", "stress"), system_changes=all_changes)
            result = member.results
            energies.append(float(result["energy"]))
            forces.append(np.asarray(result["forces"], dtype=float))
            per_atom.append(np.asarray(result["energies"], dtype=float))
            if "stress" in result:
                stresses.append(np.asarray(result["stress"], dtype=float))
            if k == 0 and self.active_set is not None:
                gamma = float(np.max(result["gamma"]))
        committee = np.array(energies) + e0_atoms.sum()
        energy = float(committee.mean())
        self.results = {
            "energy": energy,
            "free_energy": energy,
            "forces": np.mean(forces, axis=0),
            "energies": np.mean(per_atom, axis=0) + e0_atoms,
        }
        self.store_committee(committee, len(atoms))
        if len(stresses) == len(energies):
            self.results["stress"] = np.mean(stresses, axis=0)
        if gamma is not None:
            self.results["max_gamma"] = gamma
