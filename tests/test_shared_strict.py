"""Strict mode of the ../shared cross-checks: NESTDB_STRICT_SHARED=1 (set by .ci/run) turns a
missing reference file into a failure naming the path, instead of a silent skip."""

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import conftest
from conftest import REPO, require_shared

MISSING = "/nonexistent/nestdb-shared/data/mg/Mg1.eam.fs"


def test_require_shared_skips_or_fails(monkeypatch, tmp_path):
    present = tmp_path / "present.txt"
    present.write_text("x")
    monkeypatch.delenv("NESTDB_STRICT_SHARED", raising=False)
    assert require_shared(present) == present
    with pytest.raises(pytest.skip.Exception, match=MISSING):
        require_shared(present, MISSING)
    for value in ("0", "false", ""):
        monkeypatch.setenv("NESTDB_STRICT_SHARED", value)
        with pytest.raises(pytest.skip.Exception):
            require_shared(MISSING)
    monkeypatch.setenv("NESTDB_STRICT_SHARED", "1")
    assert require_shared(present) == present
    with pytest.raises(pytest.fail.Exception, match=MISSING):
        require_shared(present, MISSING)


def test_ci_run_sets_strict_mode():
    text = (REPO / ".ci" / "run").read_text()
    assert "export NESTDB_STRICT_SHARED=1" in text
    assert text.index("export NESTDB_STRICT_SHARED=1") < text.index("pytest")


def _run_generated_tests(tmp_path: Path, strict: bool) -> subprocess.CompletedProcess:
    """pytest in a subprocess on a tiny test file whose ../shared paths do not exist."""
    (tmp_path / "test_generated.py").write_text(
        textwrap.dedent(f"""
        from pathlib import Path

        import pytest

        import conftest
        from conftest import require_shared

        conftest.SHARED = Path("/nonexistent/nestdb-shared")  # what the shared_mg fixture looks under


        def test_helper():
            require_shared({MISSING!r})


        @pytest.mark.needs_shared({MISSING!r})
        def test_marker():
            pass


        def test_fixture(shared_mg):
            pass


        def test_without_shared():
            pass
    """)
    )
    env = {k: v for k, v in os.environ.items() if k != "NESTDB_STRICT_SHARED"}
    if strict:
        env["NESTDB_STRICT_SHARED"] = "1"
    env["PYTHONPATH"] = os.pathsep.join([str(Path(conftest.__file__).parent), env.get("PYTHONPATH", "")])
    # -p conftest: this repository's tests/conftest.py is the plugin (hooks, marker, fixture)
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-p",
            "conftest",
            "-p",
            "no:cacheprovider",
            "--rootdir",
            str(tmp_path),
            "-rfEs",
            "--tb=short",
            str(tmp_path / "test_generated.py"),
        ],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_strict_mode_turns_missing_shared_files_into_failures(tmp_path):
    relaxed = _run_generated_tests(tmp_path, strict=False)
    assert relaxed.returncode == 0, relaxed.stdout + relaxed.stderr
    assert "1 passed, 3 skipped" in relaxed.stdout
    strict = _run_generated_tests(tmp_path, strict=True)
    assert strict.returncode == 1, strict.stdout + strict.stderr
    # a marker or fixture fails in setup (pytest counts an error), the helper in the test body
    assert "1 failed, 1 passed, 2 errors" in strict.stdout
    assert strict.stdout.count(MISSING) >= 2  # helper and marker name the file
    assert "/nonexistent/nestdb-shared/data/mg" in strict.stdout  # the fixture names its folder
    assert "NESTDB_STRICT_SHARED is set" in strict.stdout
