"""Reference benchmark data from the user's own DFT outputs (CASTEP, VASP, ... via ASE readers)."""

from __future__ import annotations

import glob
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
from ase.eos import EquationOfState, birchmurnaghan
from ase.io import read
from scipy.optimize import curve_fit, minimize_scalar

from nestdb.bench.enthalpy import ENTHALPY_COLUMNS
from nestdb.errors import ConfigError, DataError
from nestdb.structures.crystals import KNOWN_STRUCTURES
from nestdb.units import GPA


def read_reference_ev(files: dict[str, str], base_dir: str | Path = ".") -> pd.DataFrame:
    """E–V points of each structure from existing single-point outputs.

    ``files`` maps a structure name to a path or glob (relative paths from
    ``base_dir``), e.g. ``{"hcp": "dft/hcp_*/*.castep", "bcc": "dft/bcc/OUTCAR_*"}``;
    every matching file is read with :func:`ase.io.read` (format from the
    name or content, its last image) and contributes one point.

    Cost: no calculator calls.

    Returns
    -------
    pandas.DataFrame
        ``structure``, ``volume_scale`` (NaN), ``volume_per_atom``,
        ``energy_per_atom`` (force-consistent energy where the file has it),
        ``source`` (the file), sorted by volume within each structure.

    Raises
    ------
    ConfigError
        Unknown structure name (the known ones are listed) or a pattern
        that matches no file.
    DataError
        A file ASE cannot read or that holds no energy.
    """
    rows = []
    for name, pattern in files.items():
        if name not in KNOWN_STRUCTURES:
            raise ConfigError(
                f"bench.reference_files: unknown structure {name!r}; choose from {', '.join(KNOWN_STRUCTURES)}"
            )
        full = str(Path(base_dir) / pattern) if not Path(pattern).is_absolute() else str(pattern)
        paths = sorted(glob.glob(full))
        if not paths:
            raise ConfigError(f"bench.reference_files.{name}: {pattern!r} matches no file (looked for {full})")
        for path in paths:
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    atoms = read(path, index=-1)
            except Exception as error:  # ASE readers raise many types on foreign files
                raise DataError(
                    f"bench.reference_files.{name}: cannot read {path} with ASE ({type(error).__name__}: {error})"
                ) from error
            if atoms.calc is None:
                raise DataError(f"bench.reference_files.{name}: {path} holds no energy (not a finished calculation?)")
            try:
                energy = atoms.get_potential_energy(force_consistent=True)
            except Exception:
                energy = atoms.get_potential_energy()
            rows.append(
                {
                    "structure": name,
                    "volume_scale": float("nan"),
                    "volume_per_atom": atoms.get_volume() / len(atoms),
                    "energy_per_atom": float(energy) / len(atoms),
                    "source": path,
                }
            )
    table = pd.DataFrame(rows)
    return table.sort_values(["structure", "volume_per_atom"], ignore_index=True)


def enthalpy_from_ev(ev: pd.DataFrame, pressures_gpa) -> pd.DataFrame:
    """0 K enthalpy at fixed cell shape from an E–V curve, by an EOS fit.

    H(P) = min_V [E(V) + P V] with E(V) a Birch–Murnaghan fit; a
    minimum outside the sampled volumes is an extrapolation and gets
    ``converged=False``.

    Cost: no calculator calls.

    Parameters
    ----------
    ev
        One structure's rows (``structure``, ``volume_per_atom``, ``energy_per_atom``), ≥ 4 points.
    pressures_gpa
        Pressures (GPa).

    Returns
    -------
    pandas.DataFrame
        The columns of :func:`nestdb.bench.enthalpy.enthalpy_curve`.
    """
    if len(ev) < 4:
        raise DataError(f"enthalpy_from_ev: need at least 4 E-V points, got {len(ev)}")
    name = str(ev.structure.iloc[0])
    volumes = ev.volume_per_atom.to_numpy(dtype=float)
    energies = ev.energy_per_atom.to_numpy(dtype=float)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        v0, e0, b0 = EquationOfState(volumes, energies).fit()
        # Birch-Murnaghan with B' free, started from ASE's fit (B' = 4).
        parameters, _ = curve_fit(birchmurnaghan, volumes, energies, p0=[e0, b0, 4.0, v0], maxfev=20000)

    def energy_at(volume: float) -> float:
        return float(birchmurnaghan(volume, *parameters))

    def enthalpy_at(volume: float, p: float) -> float:
        return energy_at(volume) + p * volume

    rows = []
    for pressure in np.sort(np.asarray(pressures_gpa, dtype=float)):
        p = pressure * GPA
        best = minimize_scalar(
            enthalpy_at,
            args=(p,),
            bounds=(0.5 * volumes.min(), 1.5 * volumes.max()),
            method="bounded",
        )
        volume = float(best.x)
        energy = energy_at(volume)
        inside = bool(volumes.min() <= volume <= volumes.max())
        rows.append(
            {
                "structure": name,
                "pressure_gpa": float(pressure),
                "enthalpy_per_atom": energy + p * volume,
                "energy_per_atom": energy,
                "volume_per_atom": volume,
                "c_over_a": float("nan"),
                "converged": inside,
                "steps": 0,
                "abandoned": "" if inside else "EOS minimum outside the volumes of the reference files",
            }
        )
    return pd.DataFrame(rows, columns=list(ENTHALPY_COLUMNS))
