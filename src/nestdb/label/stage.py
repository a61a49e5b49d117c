"""The labelling stages of the workflow (rules ``label``, ``label_isolated_atom``, ``gather_labels``).

One configuration, the isolated atom of an element, a cycle's gathering:
file paths in, files out.
"""

from __future__ import annotations

import csv
import logging
from pathlib import Path

from ase import Atoms
from ase.data import atomic_numbers, ground_state_magnetic_moments
from ase.io import read, write

from nestdb.errors import DataError
from nestdb.io import write_json
from nestdb.label.cache import LabelCache, probe_writable
from nestdb.label.core import check_label_values, record_name
from nestdb.label.driver import LabelPolicy, label_with_policy
from nestdb.label.labellers import make_labeller
from nestdb.label.launch import mpi_prefix, mpi_rank

log = logging.getLogger(__name__)


def check_output_folders(folders: dict[str, str | Path]) -> None:
    """Refuse to start a label job whose output folders cannot be written (before any calculation).

    Parameters
    ----------
    folders
        ``{what: folder}``, e.g. ``{"labelled record": "results/label/cycle0/P0GPa"}``;
        missing folders are created.

    Raises
    ------
    DataError
        Naming the folder, the reason and the fix.
    """
    for what, folder in folders.items():
        error = probe_writable(folder)
        if error is not None:
            raise DataError(
                f"cannot write the {what} folder {folder} ({type(error).__name__}: "
                f"{error.strerror or error}); no calculation was started. Make it writable "
                f"(e.g. `chmod u+w {folder}`) or free space on its disk, then rerun"
            )


def label_one(
    config_path: str | Path,
    out_path: str | Path,
    raw_dir: str | Path,
    spec: dict,
    policy: dict | None = None,
    mpi: str | None = None,
    tasks: int | None = None,
) -> Atoms:
    """Label one configuration; a failed calculation is recorded, not raised.

    Under MPI every rank runs the calculation (the DFT code parallelises
    over them) and only rank 0 writes the labelled file and the cache.
    Before any calculation the output, raw and cache folders are checked to
    be writable; after it the labelled record is written first and the
    cache (best effort: a failed write is a warning) second, so a finished
    calculation is never lost to the cache.

    Parameters
    ----------
    config_path, out_path
        Input configuration and labelled record (extended XYZ).
    raw_dir
        The code's raw output folder (kept next to the labelled file).
    spec
        Labeller spec, ``{"code": ..., <code>: settings}``.
    policy
        :class:`nestdb.label.driver.LabelPolicy` fields (cache, timeout,
        retries, limits); None: no cache, no retry, default limits.
    mpi, tasks
        MPI launcher and ranks for codes started as a separate program
        (CASTEP, VASP, Quantum ESPRESSO), from the job's resources.

    Raises
    ------
    ConfigError
        Bad settings, or a label cache folder that cannot be written.
    DataError
        An output folder that cannot be written.
    """
    atoms = read(config_path, format="extxyz")
    labeller = make_labeller(spec, base_dir=Path.cwd())
    if mpi_rank() > 0 and not labeller.shares_mpi_ranks():
        # srun -n N over a serial code (e.g. GPAW built without MPI) starts N copies of
        # the same calculation writing into one folder: let rank 0 do it alone.
        log.warning("rank %d: %s does not use these MPI ranks; only rank 0 calculates", mpi_rank(), labeller.name)
        return atoms
    labeller.set_launcher(mpi_prefix(mpi, tasks))
    policy = LabelPolicy(**(policy or {}))
    cache = LabelCache(policy.cache_dir) if policy.cache_dir else None
    check_output_folders({"labelled record": Path(out_path).parent, "raw output": raw_dir})
    if cache is not None:
        cache.check_writable(labeller.settings_hash)
    # Every rank reads the cache (all must agree to calculate or not); rank 0 writes.
    labelled = label_with_policy(atoms, labeller, Path(raw_dir), policy, store=False)
    if mpi_rank() == 0:
        write(out_path, labelled, format="extxyz")
        if cache is not None and not labelled.info.get("label_cached"):
            cache.store(labelled)
    log.info(
        "%s: %s%s %s",
        atoms.info.get("config_id"),
        labelled.info.get("label_status"),
        " (cached)" if labelled.info.get("label_cached") else "",
        labelled.info.get("label_error", ""),
    )
    return labelled


def isolated_atom_energy(
    element: str, spec: dict, out_path: str | Path, raw_dir: str | Path, box: float = 12.0, policy: dict | None = None
) -> dict:
    """Isolated-atom reference energy E0 of one element with the labelling settings.

    One atom in a cubic periodic box of edge ``box`` Å, with the element's
    ground-state magnetic moment (ASE's table) as initial moment, and the
    labeller's :meth:`~nestdb.label.Labeller.isolated_atom_overrides`: Γ point
    only, spin-polarised when the atom is magnetic, no cost guard on dilute
    cells. The cache (``policy``) makes it once per element and settings.

    Parameters
    ----------
    element
        Chemical symbol.
    spec
        Labeller spec as for :func:`label_one`.
    out_path
        JSON written: ``element``, ``energy`` (eV), ``code``, ``settings_hash``
        (of the labelling settings, as in the labelled records), ``box`` (Å),
        ``magnetic_moment`` (μB, initial), ``cpu_s``, ``wall_s``, ``cached``.
    raw_dir
        The code's raw output.
    box
        Box edge, Å (``label.isolated_atom_box``).

    Raises
    ------
    ConfigError
        A label cache folder that cannot be written (checked before calculating).
    DataError
        The calculation failed (its reason is in the message and in ``raw_dir``),
        or an output folder cannot be written (checked before calculating).
    """
    if element not in atomic_numbers:
        raise DataError(f"isolated atom: unknown element {element!r}")
    labeller = make_labeller(spec, base_dir=Path.cwd())
    requested_hash = labeller.settings_hash
    moment = float(ground_state_magnetic_moments[atomic_numbers[element]])
    labeller = labeller.with_overrides(labeller.isolated_atom_overrides(magnetic=bool(moment)))
    atom = Atoms(element, cell=[box, box, box], pbc=True, positions=[[box / 2] * 3])
    if moment:
        atom.set_initial_magnetic_moments([moment])
    atom.info["config_id"] = f"isolated_{element}"
    policy = LabelPolicy(**(policy or {}))
    cache = LabelCache(policy.cache_dir) if policy.cache_dir else None
    check_output_folders({"E0 result": Path(out_path).parent, "raw output": raw_dir})
    if cache is not None:
        cache.check_writable(labeller.settings_hash)
    record = label_with_policy(atom, labeller, Path(raw_dir), policy, store=False)
    if record.info["label_status"] != "ok":
        raise DataError(f"isolated {element} atom: {record.info['label_error']} (see {raw_dir})")
    result = {
        "element": element,
        "energy": float(record.info["dft_energy"]),
        "code": labeller.name,
        "settings_hash": requested_hash,
        "box": float(box),
        "magnetic_moment": moment,
        "cpu_s": record.info["label_cpu_s"],
        "wall_s": record.info["label_wall_s"],
        "cached": bool(record.info.get("label_cached", False)),
    }
    write_json(out_path, result)
    if cache is not None and not result["cached"]:
        cache.store(record)  # after the result file: a cache that cannot be written costs no calculation
    log.info("E0(%s) = %.6f eV (%s)", element, result["energy"], labeller.name)
    return result


#: Columns of the per-cycle failures table (``results/label/cycle<c>/failures.tsv``).
FAILURE_COLUMNS = ("config_id", "pressure", "kind", "reason", "settings_hash", "attempts", "file")


def _write_failures(failed: list[tuple[Atoms, Path]], path: str | Path) -> None:
    with open(path, "w", newline="") as handle:
        writer = csv.writer(handle, delimiter="\t")
        writer.writerow(FAILURE_COLUMNS)
        for frame, source in failed:
            info = frame.info
            writer.writerow(
                [
                    info.get("config_id", Path(source).stem),
                    info.get("pressure", ""),
                    info.get("label_failure_kind", "crash"),
                    info.get("label_error", ""),
                    info.get("label_settings_hash", ""),
                    info.get("label_attempts", 1),
                    str(source),
                ]
            )


def _write_cost(frames: list[Atoms], path: str | Path) -> dict:
    computed = [f for f in frames if not f.info.get("label_cached", False)]
    cost = {
        "n_configurations": len(frames),
        "n_computed": len(computed),
        "n_cached": len(frames) - len(computed),
        "cpu_s": round(sum(float(f.info.get("label_cpu_s", 0.0)) for f in computed), 3),
        "wall_s": round(sum(float(f.info.get("label_wall_s", 0.0)) for f in computed), 3),
    }
    with open(path, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(cost))
        writer.writeheader()
        writer.writerow(cost)
    return cost


def gather_labels(
    paths: list[str | Path],
    database_path: str | Path,
    table_path: str | Path,
    max_failed_fraction: float,
    failures_path: str | Path | None = None,
    cost_path: str | Path | None = None,
) -> dict:
    """Merge one cycle's labelled configurations; failed ones go to the tables only.

    Parameters
    ----------
    paths
        Labelled records of the cycle.
    database_path
        The successful labels (extended XYZ).
    table_path
        CSV of every configuration: status, energy, cost, error.
    max_failed_fraction
        ``label.max_failed_fraction``.
    failures_path
        TSV of the failed configurations (columns :data:`FAILURE_COLUMNS`);
        written even when empty.
    cost_path
        CSV row with the cycle's labelling cost: ``n_configurations``,
        ``n_computed``, ``n_cached`` (taken from the label cache), summed
        ``cpu_s`` (core-seconds) and ``wall_s`` of those computed this time.

    Returns
    -------
    dict
        ``n_total``, ``n_ok``, ``n_failed``.

    Raises
    ------
    DataError
        When more than ``max_failed_fraction`` of the configurations failed:
        the labelled files stay in place, so nothing computed is lost; or when
        a successful record has a missing, misshapen or non-finite DFT field
        (the message names the file, the configuration and the key).
    """
    frames = [read(p, format="extxyz") for p in paths]
    for frame, path in zip(frames, paths, strict=True):
        if frame.info.get("label_status") == "ok":
            check_label_values(
                frame, record_name(frame, path), fix=f"delete {path} and rerun the workflow to label it again"
            )
    ok = [f for f in frames if f.info.get("label_status") == "ok"]
    failed = [f for f in frames if f.info.get("label_status") != "ok"]
    with open(table_path, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["config_id", "pressure", "iter", "temp", "status", "dft_energy_per_atom", "cpu_s", "error"])
        for f, path in zip(frames, paths, strict=True):
            info = f.info
            energy = info.get("dft_energy")
            writer.writerow(
                [
                    info.get("config_id", Path(path).stem),
                    info.get("pressure"),
                    info.get("iter"),
                    info.get("temp"),
                    info.get("label_status", "missing"),
                    "" if energy is None else energy / len(f),
                    info.get("label_cpu_s", ""),
                    info.get("label_error", ""),
                ]
            )
    if failures_path is not None:
        _write_failures(
            [(f, Path(p)) for f, p in zip(frames, paths, strict=True) if f.info.get("label_status") != "ok"],
            failures_path,
        )
    if cost_path is not None:
        log.info("label cost: %s", _write_cost(frames, cost_path))
    n_total = len(frames)
    summary = {"n_total": n_total, "n_ok": len(ok), "n_failed": len(failed)}
    log.info("labels: %s", summary)
    if n_total == 0:
        raise DataError(f"no labelled configurations to gather for {database_path}")
    if len(failed) / n_total > max_failed_fraction:
        raise DataError(
            f"{len(failed)} of {n_total} DFT calculations failed (more than label.max_failed_fraction="
            f"{max_failed_fraction}); see {failures_path or table_path} for the reasons. Fix the settings "
            "and rerun with `snakemake --forcerun label`: labels in the cache (label.cache_dir) are "
            "reused, only the failed configurations are calculated again."
        )
    write(database_path, ok, format="extxyz")
    return summary
