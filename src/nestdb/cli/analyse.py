"""``nestdb analyse`` (also ``nestdb-analyse``): thermodynamics of an ``.energies`` file.

Like pymatnest's ``ns_analyse``.
"""

from __future__ import annotations

import argparse
import math
import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from nestdb.errors import ConfigError, NestdbError
from nestdb.thermo.analysis import analyse, bootstrap
from nestdb.thermo.energies import NSEnergies, read_energies
from nestdb.thermo.plots import plot_analysis
from nestdb.thermo.transitions import Transition, detect_transitions
from nestdb.units import KB_EV_PER_K

__all__ = ["main", "add_arguments", "run", "format_table", "temperature_grid"]


_HEADER = (
    "#   T     log_Z(T)      F(T)        U(T)       Cvp(T)    low_pct_i(T) mode_i(T) high_pct_i(T) "
    "low_pct_iter(T)  mode_iter(T)   high_pct_iter(T) Z_fract(T)   V(T)   thermal_exp(T)"
)


def format_table(table: pd.DataFrame, energies: NSEnergies) -> str:
    """The table in ns_analyse's layout (same columns and number formats)."""
    log_alpha = math.log(energies.n_walkers) - math.log(energies.n_walkers + energies.n_cull)
    out = [f"# n_walkers  {energies.n_walkers}  n_cull  {energies.n_cull}  simple log(alpha)  {log_alpha!r}", _HEADER]
    p = energies.n_cull
    for row in table.itertuples(index=False):
        out.append(
            f"{row.T:7g} {row.log_Z:11g} {row.F:11g} {row.U:11g} {row.Cp:11g} "
            f"{row.low_pct_i:8d} {row.mode_i:8d} {row.high_pct_i:8d} "
            f"{row.low_pct_i // p:15d} {row.mode_i // p:15d} {row.high_pct_i // p:15d} "
            f"{row.Z_fract:6g} {row.V:8g} {row.thermal_exp:14g}"
        )
    return "\n".join(out)


def format_transitions(transitions: list[Transition]) -> str:
    """Comment lines listing C_p peaks (per atom) after the table."""
    out = [
        "# transitions (C_p peaks; FWHM from the baseline of the lower-prominence tail)",
        "#   kind          T(K)   FWHM(K)    low(K)   high(K)  Cp_peak(kB/atom)  prominence  dV(A^3/atom)",
    ]
    for t in transitions:
        out.append(
            f"# {t.kind:<11s} {t.temperature:8.1f} {t.fwhm:9.1f} {t.low:9.1f} {t.high:9.1f} "
            f"{t.cp_peak:17.4g} {t.prominence:11.4g} {t.volume_jump:13.4g}"
        )
    if not transitions:
        out.append("# none found")
    return "\n".join(out)


def format_bootstrap(errors: pd.DataFrame, n_atoms: int) -> str:
    """Comment lines with bootstrap error bars of C_p (kB/atom) and <V> (A^3/atom)."""
    kB = errors.attrs.get("kB", KB_EV_PER_K)
    n = max(n_atoms, 1)
    out = [
        f"# bootstrap over the NS shrinkage factors ({errors.attrs.get('n_boot')} realisations), per atom",
        "#   T      Cp(kB)   Cp_err       V(A^3)    V_err",
    ]
    for row in errors.itertuples(index=False):
        out.append(
            f"# {row.T:7g} {row.Cp / (n * kB):9.4g} {row.Cp_err / (n * kB):8.2g} {row.V / n:11.6g} {row.V_err / n:8.2g}"
        )
    return "\n".join(out)


def temperature_grid(t_min: float, d_t: float, n_t: int | None = None, t_max: float | None = None) -> np.ndarray:
    """ns_analyse's grid ``T_min + j dT``, j < n_T, or up to ``t_max`` inclusive."""
    if not t_min > 0 or not d_t > 0:
        raise ConfigError(f"need --Tmin > 0 and --dT > 0, got {t_min} and {d_t}")
    if (n_t is None) == (t_max is None):
        raise ConfigError("give exactly one of --nT (number of temperatures) and --Tmax")
    if t_max is not None:
        if t_max < t_min:
            raise ConfigError(f"--Tmax ({t_max}) is below --Tmin ({t_min})")
        n_t = int(math.floor((t_max - t_min) / d_t + 1e-9)) + 1
    if n_t < 1:
        raise ConfigError(f"--nT must be >= 1, got {n_t}")
    return t_min + d_t * np.arange(n_t)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of the analysis command (shared by ``python -m nestdb.cli analyse``)."""
    parser.add_argument("energies", help="<prefix>.energies file (pymatnest or nestdb)")
    parser.add_argument(
        "--Tmin", "--tmin", "-M", dest="t_min", type=float, required=True, help="lowest temperature (K)"
    )
    parser.add_argument("--dT", "--dt", "-D", dest="d_t", type=float, required=True, help="temperature step (K)")
    grid = parser.add_mutually_exclusive_group(required=True)
    grid.add_argument("--nT", "--nt", "-n", dest="n_t", type=int, help="number of temperatures")
    grid.add_argument("--Tmax", "--tmax", dest="t_max", type=float, help="highest temperature (K), inclusive")
    parser.add_argument("--kB", "-k", type=float, default=KB_EV_PER_K, help="Boltzmann constant (eV/K)")
    parser.add_argument(
        "--transitions",
        action="store_true",
        help="list C_p peaks with FWHM, volume jump and kind (melting/solid-solid/fluid)",
    )
    parser.add_argument(
        "--n-atoms", type=int, default=None, help="atoms per cell, for per-atom values (default: from the file header)"
    )
    parser.add_argument(
        "--bootstrap",
        type=int,
        default=0,
        metavar="N",
        help="also print error bars of C_p and <V> from N redrawn NS processes",
    )
    parser.add_argument("--plot", help="write C_p(T) and V(T) (transitions marked) to this PNG")
    parser.add_argument("--csv", help="write the table to this CSV file")


def run(args: argparse.Namespace) -> int:
    """Run the analysis for parsed arguments; returns the exit status (2 on bad input)."""
    try:
        temps = temperature_grid(args.t_min, args.d_t, args.n_t, args.t_max)
        energies = read_energies(args.energies)
        table = analyse(energies, temps, kB=args.kB)
        n_atoms = args.n_atoms or energies.n_atoms
        if (args.transitions or args.bootstrap) and n_atoms < 1:
            raise ConfigError(f"{args.energies} has the old header without N_atoms; pass --n-atoms")
        transitions = detect_transitions(table, n_atoms) if args.transitions else None
        errors = bootstrap(energies, temps, n_boot=args.bootstrap, kB=args.kB) if args.bootstrap else None
    except NestdbError as exc:
        print(f"nestdb analyse: error: {exc}", file=sys.stderr)
        return 2
    print(format_table(table, energies))
    if transitions is not None:
        print(format_transitions(transitions))
    if errors is not None:
        print(format_bootstrap(errors, n_atoms))
        table = table.assign(U_err=errors["U_err"], Cp_err=errors["Cp_err"], V_err=errors["V_err"])
    if args.csv:
        table.to_csv(args.csv, index=False)
    if args.plot:
        plot_analysis(
            table, args.plot, title=Path(args.energies).name, n_atoms=args.n_atoms or None, transitions=transitions
        )
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """``nestdb-analyse FILE.energies -M T_min -D dT (-n n_T | --Tmax T_max)``, like ns_analyse.

    Prints the table in ns_analyse's layout; ``--transitions`` appends the C_p
    peaks, ``--bootstrap N`` error bars, ``--plot``/``--csv`` write files.
    Returns the exit status (2 on bad input).
    """
    parser = argparse.ArgumentParser(
        prog="nestdb-analyse",
        description=(
            "Thermodynamics (log Z, F, U, C_p, <V>, thermal expansion) of a nested-sampling run "
            "from its .energies file, as pymatnest's ns_analyse."
        ),
    )
    add_arguments(parser)
    return run(parser.parse_args(argv))


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
