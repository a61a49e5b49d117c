"""The P–T phase diagram from NS runs at several pressures: melting line and other C_p peaks."""

from __future__ import annotations

import numpy as np
import pandas as pd
from ase import Atoms
from matplotlib.figure import Figure

from nestdb.plotting import save, subplots
from nestdb.structures.steinhardt import order_parameters
from nestdb.thermo.transitions import detect_transitions, melting_transition

#: Columns of a melting transition copied into the melting line (``temperature`` becomes ``melting_T``).
_MELTING_KEYS = ("temperature", "fwhm", "low", "high", "cp_peak", "volume_jump")


def melting_line(
    tables: dict[float, pd.DataFrame], n_atoms: int, finals: dict[float, list[Atoms]] | None = None
) -> tuple[pd.DataFrame, dict[str, list[dict]]]:
    """Melting temperature at each pressure from the C_p peaks of NS runs.

    Uses :func:`nestdb.thermo.transitions.melting_transition` (the
    highest-temperature C_p peak with its full width at half maximum) and
    :func:`nestdb.thermo.transitions.detect_transitions` for the solid–solid
    peaks below it. Cost: no calculator calls.

    Parameters
    ----------
    tables
        ``{pressure_gpa: thermo table}`` of :func:`nestdb.thermo.stage.analyse_run`.
    n_atoms
        Atoms per NS cell.
    finals
        ``{pressure_gpa: final live set}``: the solid phase at the lowest
        temperature is the Steinhardt classification
        (:func:`nestdb.structures.steinhardt.order_parameters`) of the
        lowest-enthalpy final walker, in the column ``solid_phase``.

    Returns
    -------
    (pandas.DataFrame, dict)
        One row per pressure: ``pressure_gpa``, ``found``, ``melting_T``,
        ``fwhm``, ``low``, ``high``, ``cp_peak``, ``volume_jump`` (and
        ``solid_phase``); and every C_p peak per pressure (``"<P>"``:
        ``temperature``, ``fwhm``, ``kind``, ``cp_peak``).
    """
    rows, others = [], {}
    for pressure, table in sorted(tables.items()):
        melting = melting_transition(table, n_atoms) if len(table) else None
        found = melting is not None
        rows.append(
            {
                "pressure_gpa": float(pressure),
                "found": found,
                **{
                    key: (float(getattr(melting, key)) if found and getattr(melting, key) is not None else float("nan"))
                    for key in _MELTING_KEYS
                },
            }
        )
        transitions = detect_transitions(table, n_atoms) if len(table) else []
        others[f"{pressure:g}"] = [
            {
                "temperature": float(t.temperature),
                "fwhm": float(t.fwhm),
                "kind": str(t.kind),
                "cp_peak": float(t.cp_peak),
            }
            for t in transitions
        ]
    line = pd.DataFrame(rows).rename(columns={"temperature": "melting_T"})
    if finals:
        phases = {}
        for pressure, walkers in finals.items():
            lowest = min(walkers, key=lambda atoms: atoms.info.get("ns_energy", np.inf))
            phases[float(pressure)] = order_parameters(lowest)["phase"]
        line["solid_phase"] = line.pressure_gpa.map(phases)
    return line, others


def plot_phase_diagram(line: pd.DataFrame, others: dict[str, list[dict]], n_atoms: int, path) -> Figure:
    """P–T diagram: the melting line with the FWHM as error bars, other C_p peaks as open squares."""
    fig, ax = subplots(figsize=(5.5, 4))
    ok = line[line.found]
    ax.errorbar(
        ok.pressure_gpa.to_numpy(),
        ok.melting_T.to_numpy(),
        yerr=[(ok.melting_T - ok.low).to_numpy(), (ok.high - ok.melting_T).to_numpy()],
        fmt="-o",
        color="C3",
        capsize=3,
        label="melting (C_p peak, FWHM)",
    )
    labelled = False
    for pressure, transitions in others.items():
        for t in transitions:
            if t["kind"] != "melting":
                ax.plot(
                    float(pressure),
                    t["temperature"],
                    "s",
                    mfc="none",
                    color="C0",
                    label=None if labelled else "other C_p peaks",
                )
                labelled = True
    if "solid_phase" in line:
        for pressure, phase in zip(line.pressure_gpa, line.solid_phase, strict=True):
            ax.annotate(
                str(phase),
                (pressure, 0),
                textcoords="offset points",
                xytext=(0, 5),
                ha="center",
                fontsize=8,
                xycoords=("data", "axes fraction"),
            )
    ax.set_xlabel("pressure (GPa)")
    ax.set_ylabel("temperature (K)")
    ax.set_title(f"NS phase diagram, {n_atoms} atoms")
    ax.legend(fontsize=8)
    return save(fig, path, dpi=130)
