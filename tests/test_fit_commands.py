"""fit.pacemaker.command / activeset_command are argv lists, never shell text (issue 13.2).

The rule ``fit_pacemaker_member`` used to paste both commands into bash, so a
value ``"true; touch X #"`` created X. Stand-in pacemaker programs (plumbing:
they record their argv and write the files pacemaker would) run through the
real rule, the real script and the library function.
"""

from __future__ import annotations

import shlex
import stat
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from nestdb.errors import ConfigError, DataError
from nestdb.fit.pacemaker import run_member
from nestdb.fit.pacemaker_member import run_member_steps
from nestdb.fit.settings import validate_pacemaker_settings

from conftest import FAST_CONFIG, REPO, snakemake

HOSTILE = "true; touch PWNED #"
MEMBER = "results/fit/cycle0/pacemaker/member_0"


def _program(path: Path, body: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("#!/bin/sh\n" + body + "\n")
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return path


def _stand_ins(folder: Path) -> tuple[Path, Path, Path]:
    """Fake pacemaker / pace_activeset in a folder with spaces; both append their argv to argv.txt."""
    record = folder / "argv.txt"
    log_argv = f'printf "%s|" "$(basename "$0")" "$@" >> {shlex.quote(str(record))}; echo >> {shlex.quote(str(record))}'
    pacemaker = _program(
        folder / "fake pacemaker",
        log_argv
        + """
first=no; for a in "$@"; do [ "$a" = input.yaml ] && first=yes; done
if [ $first = yes ]; then echo first > output_potential.yaml; : > fitting_data_info.pckl.gzip
else cat fit_potential.yaml > output_potential.yaml; echo refit >> output_potential.yaml; fi""",
    )
    activeset = _program(folder / "fake activeset", log_argv + "\necho asi > output_potential.asi")
    return pacemaker, activeset, record


def _member_folder(workdir: Path, refit: bool = True) -> Path:
    folder = workdir / MEMBER
    folder.mkdir(parents=True)
    (folder / "input.yaml").write_text("cutoff: 5.0\n")
    if refit:
        (folder / "input_refit.yaml").write_text("cutoff: 5.0\n")
    return folder


def _config(workdir: Path, command: str, activeset: str) -> Path:
    config = yaml.safe_load(FAST_CONFIG.read_text())
    config["fit"]["pacemaker"] = {
        "enabled": True,
        "committee_size": 1,
        "command": command,
        "activeset_command": activeset,
    }
    path = workdir / "config with spaces.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def test_member_rule_never_runs_a_shell(tmp_path):
    workdir = tmp_path / "work dir"
    _member_folder(workdir)
    config = _config(workdir, HOSTILE, HOSTILE)
    result = snakemake(
        workdir, f"{MEMBER}/output_potential.yaml", "--cores", "1", "--configfile", str(config), timeout=300
    )
    assert result.returncode != 0
    assert not (workdir / MEMBER / "PWNED").exists() and not (workdir / "PWNED").exists()
    log = (workdir / "logs" / "fit" / "cycle0_pacemaker_member0.log").read_text()
    assert "pacemaker command 'true;' (fit.pacemaker.command) was not found" in log


def test_member_rule_with_spaces_and_metacharacters_in_paths_and_arguments(tmp_path):
    workdir = tmp_path / "work dir; $(touch PWNED)"
    folder = _member_folder(workdir)
    pacemaker, activeset, record = _stand_ins(tmp_path / "bin dir")
    # quotes group words; ;, $(...), # and | stay characters of one argument
    command = shlex.join([str(pacemaker), "--tag", "a; touch PWNED #"])
    config = _config(workdir, command, shlex.quote(str(activeset)) + " '$(touch PWNED)'")
    result = snakemake(
        workdir, f"{MEMBER}/output_potential.yaml", "--cores", "1", "--configfile", str(config), timeout=300
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert record.read_text().splitlines() == [
        "fake pacemaker|--tag|a; touch PWNED #|input.yaml|",
        "fake pacemaker|--tag|a; touch PWNED #|input_refit.yaml|-p|fit_potential.yaml|",
        "fake activeset|$(touch PWNED)|-d|fitting_data_info.pckl.gzip|output_potential.yaml|",
    ]
    assert (folder / "output_potential.yaml").read_text() == "first\nrefit\n"
    assert (folder / "output_potential.asi").is_file()
    assert not any(path.name == "PWNED" for path in tmp_path.rglob("*"))
    log = (workdir / "logs" / "fit" / "cycle0_pacemaker_member0.log").read_text()
    assert log.count("$ ") == 3  # the three argv lists, one log


def test_member_script_runs_where_nestdb_is_not_installed(tmp_path):
    """pacemaker's environment has no nestdb: the script loads the member runner from the source tree."""
    folder = _member_folder(tmp_path / "member", refit=False)
    pacemaker, activeset, record = _stand_ins(tmp_path / "bin dir")
    runner = f"""
import runpy, sys, types
try:
    import nestdb
except ImportError:
    pass
else:
    sys.exit("nestdb is importable: the fallback is not under test")
snakemake = types.SimpleNamespace(scriptdir={str(REPO / "scripts")!r}, input=[{str(folder / "input.yaml")!r}],
                                  log=[{str(tmp_path / "member.log")!r}],
                                  params=types.SimpleNamespace(command={shlex.quote(str(pacemaker))!r},
                                                               activeset={shlex.quote(str(activeset))!r}))
runpy.run_path({str(REPO / "scripts" / "fit_pacemaker_member.py")!r}, init_globals={{"snakemake": snakemake}})
"""
    # -I -S: no site-packages, so neither nestdb nor numpy can be imported (as in envs/pacemaker.yaml for nestdb)
    result = subprocess.run([sys.executable, "-I", "-S", "-c", runner], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert (folder / "output_potential.yaml").read_text() == "first\n"
    assert len(record.read_text().splitlines()) == 2  # pacemaker, then pace_activeset
    hostile = runner.replace(repr(shlex.quote(str(pacemaker))), repr(HOSTILE))
    (folder / "output_potential.yaml").unlink()
    result = subprocess.run(
        [sys.executable, "-I", "-S", "-c", hostile], capture_output=True, text=True, cwd=folder, timeout=60
    )
    assert result.returncode == 1 and "fit.pacemaker.command" in result.stderr
    assert "Traceback" not in result.stderr and not (folder / "PWNED").exists()


def test_library_run_member_splits_commands(tmp_path):
    folder = _member_folder(tmp_path / "a member", refit=False)
    with pytest.raises(ConfigError, match=r"'true;' \(fit.pacemaker.command\) was not found"):
        run_member(folder, validate_pacemaker_settings({"command": HOSTILE}))
    assert not (folder / "PWNED").exists()
    with pytest.raises(ConfigError, match="fit.pacemaker.activeset_command: cannot split"):
        validate_pacemaker_settings({"activeset_command": "pace_activeset 'unbalanced"})
    failing = _program(tmp_path / "bin dir" / "failing pacemaker", "echo broken; exit 3")
    with pytest.raises(DataError, match="exit 3") as error:
        run_member_steps(folder, shlex.quote(str(failing)), "pace_activeset")
    assert "broken" in str(error.value)  # the log's tail
    with pytest.raises(DataError, match="has no input.yaml"):
        run_member_steps(tmp_path, "pacemaker", "pace_activeset")


def test_no_shell_in_the_library_and_rules():
    """No shell=True / os.system in src/, and shell rules interpolate only quoted or built-in values."""
    sources = list((REPO / "src").rglob("*.py")) + list((REPO / "scripts").glob("*.py"))
    for path in sources:
        text = path.read_text()
        for forbidden in ("shell=True", "os.system(", "os.popen("):
            assert forbidden not in text, f"{path}: {forbidden}"
    for rules in (REPO / "workflow" / "rules").glob("*.smk"):
        text = rules.read_text()
        if rules.name == "label.smk":
            continue  # checked by tests/test_label_commands.py (its values are quoted)
        assert "shell:" not in text, f"{rules}: a shell rule; run an argv list from a script"
