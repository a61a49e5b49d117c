"""Shared fixtures: paths of the repository and of the reference data beside it,
and the fast config run end to end once per test session.

Tests that read ``../shared`` ask for their files through :func:`require_shared`
(or the ``shared_mg`` fixture, or the ``needs_shared(path, ...)`` marker): a
missing file skips the test, except under ``NESTDB_STRICT_SHARED=1`` (set by
``.ci/run``), where it fails the test with the path, so that CI cannot pass
without the cross-checks against the reference data.
"""

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from nestdb.ns import NSSettings

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"
FAST_CONFIG = REPO / "config" / "fast.yaml"
#: Environment variable of the strict mode: a missing ../shared file fails instead of skipping.
STRICT_SHARED_VARIABLE = "NESTDB_STRICT_SHARED"


def strict_shared() -> bool:
    """Whether ``NESTDB_STRICT_SHARED`` is set to a true value (anything but empty, ``0``, ``false``, ``no``)."""
    return os.environ.get(STRICT_SHARED_VARIABLE, "").strip().lower() not in ("", "0", "false", "no")


def require_shared(*paths: str | Path) -> Path:
    """Return the first of ``paths`` after checking that all of them exist (files or folders under ../shared).

    A missing path skips the calling test, or fails it (``pytest.fail`` naming
    the path) when :func:`strict_shared` is on.
    """
    for path in map(Path, paths):
        if path.exists():
            continue
        message = f"reference data not found at {path} (../shared is not beside the repository)"
        if strict_shared():
            pytest.fail(f"{message}; {STRICT_SHARED_VARIABLE} is set, so this cross-check must run", pytrace=False)
        pytest.skip(message)
    return Path(paths[0])


def pytest_configure(config):
    config.addinivalue_line(
        "markers",
        "needs_shared(*paths): the test reads these ../shared files (skip when missing, "
        "fail under NESTDB_STRICT_SHARED=1)",
    )


def pytest_runtest_setup(item):
    for marker in item.iter_markers("needs_shared"):
        require_shared(*marker.args)


#: A small, quick NS run (8 walkers, 40 iterations at 10 GPa) for the NS tests, as a mapping
#: (tests that write settings into a script or a workflow block need plain values).
SMALL_NS_VALUES = dict(
    n_walkers=8,
    walk_length=12,
    pressure_gpa=10.0,
    max_iter=40,
    converge_down_to_T=None,  # these runs stop at max_iter (the schema's default stops at 200 K)
    max_volume_per_atom=40.0,
    kemax_max_T=3000.0,
    md_traj_len=3,
    seed=0,
)


def small_ns_settings(**overrides):
    """:data:`SMALL_NS_VALUES` with ``overrides``, as NSSettings."""
    return NSSettings(**dict(SMALL_NS_VALUES, **overrides))


def snakemake(workdir: Path, *args: str, timeout: int = 3000, **popen) -> subprocess.CompletedProcess:
    """Run snakemake on this repository's Snakefile inside ``workdir``."""
    env = dict(os.environ)
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    return subprocess.run(
        [sys.executable, "-m", "snakemake", "-s", str(REPO / "Snakefile"), "--directory", str(workdir), *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
        **popen,
    )


@pytest.fixture
def repo() -> Path:
    return REPO


@pytest.fixture
def shared_mg() -> Path:
    """``../shared/data/mg`` (see :func:`require_shared`)."""
    return require_shared(SHARED / "data" / "mg")


@pytest.fixture(scope="session")
def fast_run(tmp_path_factory):
    """The fast config run once with the local executor (real NS, GPAW, pyace fit).

    Shared by the end-to-end tests and by the SLURM tests, whose results must
    equal it; tests only read it (reruns leave it unchanged).
    """
    workdir = tmp_path_factory.mktemp("fast")
    result = snakemake(workdir, "--cores", "2", "--configfile", str(FAST_CONFIG))
    if result.returncode != 0:
        logs = "\n".join(f"== {p}\n{p.read_text()[-3000:]}" for p in sorted((workdir / "logs").rglob("*.log")))
        pytest.fail(f"workflow failed:\n{result.stderr[-6000:]}\n{logs}")
    return workdir, yaml.safe_load(FAST_CONFIG.read_text()), result
