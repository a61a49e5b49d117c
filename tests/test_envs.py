"""The per-stage conda envs (envs/*.yaml) agree with requirements-lock.txt and carry what their rules need."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
ENVS = sorted((REPO / "envs").glob("*.yaml"))
#: Deliberate differences from the lock, with the reason (pacemaker's own TensorFlow stack).
EXCEPTIONS = {("pacemaker.yaml", "numpy"): "numpy 2.4 breaks pacemaker's metrics"}
#: Rules whose stage can run the EAM (NS with `type: eam`, `code: potential` labellers and references):
#: their env needs numba, or the EAM takes the slow numpy path.
EAM_RULES = (
    "ns",
    "bench_phase_diagram_ns",
    "label",
    "label_isolated_atom",
    "bench_reference",
    "bench_property_reference",
)
SPEC = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._\-]*)(?:\[[^\]]*\])?\s*(==|=|>=|<=|~=|!=|<|>)?\s*([^\s#;]*)")


def normalise(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def lock() -> dict[str, str]:
    pins = {}
    for line in (REPO / "requirements-lock.txt").read_text().splitlines():
        line = line.split("#")[0].strip()
        if line:
            name, version = line.split("==")
            pins[normalise(name)] = version.strip()
    return pins


def packages(env: Path) -> tuple[list[tuple[str, str, str]], list[str]]:
    """``[(name, operator, version)]`` of the conda and pip packages, and the pip option lines."""
    specs, options = [], []
    for entry in yaml.safe_load(env.read_text())["dependencies"]:
        lines = entry["pip"] if isinstance(entry, dict) else [entry]
        for line in lines:
            if line.startswith("-"):
                options.append(line)
                continue
            name, operator, version = SPEC.match(line).groups()
            specs.append((normalise(name), operator or "", version))
    return specs, options


def rule_envs() -> dict[str, str]:
    """``{rule: env file name}`` from the `conda:` directives of the rule files."""
    envs = {}
    for smk in (REPO / "workflow" / "rules").glob("*.smk"):
        for rule, env in re.findall(
            r"^(?:rule|checkpoint) (\w+):.*?\n    conda:\n        \"([^\"]+)\"", smk.read_text(), flags=re.M | re.S
        ):
            envs[rule] = Path(env).name
    return envs


def test_there_are_env_files():
    assert {env.name for env in ENVS} >= {"ns.yaml", "label.yaml", "fit.yaml", "pacemaker.yaml"}


@pytest.mark.parametrize("env", ENVS, ids=lambda p: p.name)
def test_every_locked_package_has_the_lock_version(env):
    pins = lock()
    specs, _ = packages(env)
    wrong = []
    for name, operator, version in specs:
        if name not in pins or (env.name, name) in EXCEPTIONS:
            continue
        if operator not in ("==", "=") or version != pins[name]:
            wrong.append(f"{name}{operator}{version} (lock: {pins[name]})")
    assert not wrong, f"{env.name}: pin these to requirements-lock.txt: {', '.join(wrong)}"


def test_exceptions_are_still_needed():
    for (env_name, name), reason in EXCEPTIONS.items():
        specs = {n: v for n, _, v in packages(REPO / "envs" / env_name)[0]}
        assert name in specs and specs[name] != lock()[name], f"{env_name}: {name} no longer differs ({reason})"


def test_every_rule_env_exists_and_eam_rules_have_numba():
    envs = rule_envs()
    assert set(EAM_RULES) <= set(envs), f"rules without a conda env: {set(EAM_RULES) - set(envs)}"
    for rule, name in envs.items():
        assert (REPO / "envs" / name).is_file(), f"rule {rule}: envs/{name} is missing"
    for rule in EAM_RULES:
        names = [n for n, _, _ in packages(REPO / "envs" / envs[rule])[0]]
        assert "numba" in names, f"rule {rule} runs in envs/{envs[rule]}, which lacks numba"
    # explore kind random_crystals imports pyxtal in the explore job
    explore_packages = [n for n, _, _ in packages(REPO / "envs" / envs["explore"])[0]]
    assert "pyxtal" in explore_packages, f"rule explore runs in envs/{envs['explore']}, which lacks pyxtal"


@pytest.mark.parametrize("env", [e for e in ENVS if e.name != "pacemaker.yaml"], ids=lambda p: p.name)
def test_pip_section_resolves_from_a_copy_of_the_env_file(env, tmp_path):
    """Snakemake creates an env from a copy in .snakemake/conda/ and conda runs pip there on the pip
    lines: with NESTDB_ROOT set (common.smk does it) they reach this checkout's lock and package."""
    _, options = packages(env)
    assert "-e ${NESTDB_ROOT}" in options and "-c ${NESTDB_ROOT}/requirements-lock.txt" in options
    copy = tmp_path / ".snakemake" / "conda"
    copy.mkdir(parents=True)
    pip_lines = next(
        entry["pip"] for entry in yaml.safe_load(env.read_text())["dependencies"] if isinstance(entry, dict)
    )
    # The editable line needs a build of this package (network for setuptools): checked above as text.
    (copy / "condaenv.requirements.txt").write_text("\n".join(line for line in pip_lines if not line.startswith("-e")))
    result = subprocess.run(
        [sys.executable, "-m", "pip", "install", "--dry-run", "--no-index", "-r", "condaenv.requirements.txt"],
        cwd=copy,
        capture_output=True,
        text=True,
        env=dict(os.environ, NESTDB_ROOT=str(REPO)),
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    assert "Would install" not in result.stdout, result.stdout  # the venv holds exactly the lock's versions
    assert "Requirement already satisfied: numpy==2.4.6" in result.stdout


def test_workflow_points_nestdb_root_at_the_checkout():
    common = (REPO / "workflow" / "rules" / "common.smk").read_text()
    assert "os.environ.update(NESTDB_ROOT=workflow.basedir)" in common
