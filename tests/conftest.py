"""Shared fixtures: paths of the repository and of the reference data beside it,
and the fast config run end to end once per test session."""
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"
FAST_CONFIG = REPO / "config" / "fast.yaml"


def snakemake(workdir: Path, *args: str, timeout: int = 3000, **popen) -> subprocess.CompletedProcess:
    """Run snakemake on this repository's Snakefile inside ``workdir``."""
    env = dict(os.environ)
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    return subprocess.run(
        [sys.executable, "-m", "snakemake", "-s", str(REPO / "Snakefile"), "--directory", str(workdir), *args],
        capture_output=True, text=True, timeout=timeout, env=env, **popen,
    )


@pytest.fixture
def repo() -> Path:
    return REPO


@pytest.fixture
def shared_mg() -> Path:
    path = SHARED / "data" / "mg"
    if not path.is_dir():
        pytest.skip(f"reference data not found at {path} (../shared is not beside the repository)")
    return path


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
