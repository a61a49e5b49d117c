"""The fit refuses unusable labels by name and never leaves a partial model (issue 13.4).

Before: a NaN in ``dft_virial`` ran through the regression into a NaN
``potential.yaml`` and ``committee.npz`` left in the output folder, then
failed in yaml-cpp; a 4-number virial failed in a bare numpy reshape.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from ase.io import write

pytest.importorskip("pyace")

from test_fit import SMALL_BASIS, _emt_isolated_energy, emt_al_frames  # noqa: E402

from nestdb.errors import DataError  # noqa: E402
from nestdb.fit import fit_linear_ace, load_training_frames  # noqa: E402
from nestdb.fit.pacemaker import collect_committee, prepare_committee  # noqa: E402

FIT = {
    "elements": ["Al"],
    "test_fraction": 0.25,
    "committee_size": 3,
    "calibration_fraction": 0.0,
    "feature_cache": None,
    **SMALL_BASIS,
}


def _settings() -> dict:
    return {**FIT, "reference_energies": {"Al": _emt_isolated_energy("Al")}}


def _frames(n: int = 8) -> list:
    frames = emt_al_frames(n, seed=11)
    for i, atoms in enumerate(frames):
        atoms.info["config_id"] = f"c{i}"
    return frames


def _staging_leftovers(out_dir: Path) -> list[Path]:
    return list(out_dir.parent.glob(f".{out_dir.name}.partial-*"))


@pytest.mark.parametrize(
    "key, value, message",
    [
        ("dft_virial", "nan", r"info 'dft_virial' contains NaN/inf"),
        ("dft_virial", [1.0, 2.0, 3.0, 4.0], r"info 'dft_virial' has 4 number\(s\), expected 9 \(3x3 row-major, eV\)"),
        ("dft_stress", "inf", r"info 'dft_stress' contains NaN/inf"),
        ("dft_energy", "nan", r"info 'dft_energy' is nan \(not finite\)"),
    ],
)
def test_bad_label_field_is_refused_by_file_configuration_and_key(tmp_path, key, value, message):
    frames = _frames()
    if isinstance(value, str):
        if key == "dft_energy":
            frames[5].info[key] = float(value)
        else:
            frames[5].info[key] = np.asarray(frames[5].info[key], dtype=float)
            frames[5].info[key][4] = float(value)
    else:
        frames[5].info[key] = np.array(value)
    path = tmp_path / "cycle_0.extxyz"
    write(path, frames, format="extxyz")
    with pytest.raises(DataError, match=rf"cycle_0\.extxyz, configuration 5 \(config_id c5\): {message}"):
        load_training_frames([path])
    # in-memory frames too: the fit stops before writing anything
    out = tmp_path / "model"
    out.mkdir()
    (out / "keep.txt").write_text("an earlier file\n")
    with pytest.raises(DataError, match=rf"configuration 5 \(config_id c5\): {message}"):
        fit_linear_ace(frames, _settings(), out)
    assert sorted(p.name for p in out.iterdir()) == ["keep.txt"] and not _staging_leftovers(out)


def test_fit_that_fails_half_way_leaves_the_previous_model(tmp_path, monkeypatch):
    frames = _frames()
    out = tmp_path / "cycle0"
    fit_linear_ace(frames, _settings(), out)
    (out / "pacemaker").mkdir()
    (out / "pacemaker" / "metrics.json").write_text("{}")  # another rule's outputs in the same folder
    (out / "committee" / "member_99.yace").write_text("stale member of an older, bigger committee")
    before = {p.relative_to(out): p.read_bytes() for p in out.rglob("*") if p.is_file()}

    import nestdb.fit.files

    def broken_plot(*args, **kwargs):
        raise RuntimeError("disk full while plotting")

    # a failure after potential.yaml and committee.npz were written (the last step is the plots and cards)
    monkeypatch.setattr(nestdb.fit.files, "plot_calibration", broken_plot)
    with pytest.raises(RuntimeError, match="disk full"):
        fit_linear_ace(frames, {**_settings(), "seed": 5, "refit_on_all_data": True}, out)
    after = {p.relative_to(out): p.read_bytes() for p in out.rglob("*") if p.is_file()}
    assert after == before and not _staging_leftovers(out)

    monkeypatch.undo()
    metrics = fit_linear_ace(frames, {**_settings(), "seed": 5, "refit_on_all_data": True}, out)
    assert json.loads((out / "metrics.json").read_text()) == json.loads(json.dumps(metrics))
    assert (out / "pacemaker" / "metrics.json").read_text() == "{}"  # other entries are kept
    assert not (out / "committee" / "member_99.yace").exists()  # a sub-folder is replaced as a whole
    assert len(list((out / "committee").glob("*.yace"))) == 3
    assert (out / "split" / "potential.yaml").is_file() and not _staging_leftovers(out)


def test_pacemaker_collect_leaves_no_partial_committee(tmp_path):
    """Stand-in member potentials (linear-ACE fits); member 1's is corrupt, found after member 0 was exported."""
    frames = _frames(12)
    settings = {**_settings(), "pacemaker": {"committee_size": 2}}
    folders = prepare_committee(frames, settings, tmp_path / "pm")
    fit_linear_ace(frames, {**settings, "test_fraction": 0.0}, tmp_path / "linear")
    (folders[0] / "output_potential.yaml").write_text((tmp_path / "linear" / "potential.yaml").read_text())
    (folders[1] / "output_potential.yaml").write_text("elements: [Al\nnot: yaml: at all")
    before = sorted(p.name for p in (tmp_path / "pm").iterdir())
    with pytest.raises(Exception):  # noqa: B017 (pyace's own parse error)
        collect_committee(frames, settings, folders, tmp_path / "pm")
    assert sorted(p.name for p in (tmp_path / "pm").iterdir()) == before  # no member_0.yaml, no committee.json
    assert not _staging_leftovers(tmp_path / "pm")
    (folders[1] / "output_potential.yaml").write_text((tmp_path / "linear" / "potential.yaml").read_text())
    metrics = collect_committee(frames, settings, folders, tmp_path / "pm")
    assert metrics["committee_size"] == 2
    for name in ("member_0.yaml", "member_1.yace", "committee.json", "metrics.json", "parity.png"):
        assert (tmp_path / "pm" / name).is_file(), name
