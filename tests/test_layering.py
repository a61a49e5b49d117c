"""The import layering of src/nestdb (issue 14), checked on the source with :mod:`ast`.

Layers, bottom to top (:data:`LAYERS`): the base (errors, units, io, logs, schemas,
plotting, structures) imports nothing of nestdb above it; models and
potentials build on it; the domain libraries (ns, thermo, select, label,
fit, explore, bench, campaign) on both; the stage modules
(``nestdb.<domain>.stage``) on all of those; the config views and the CLI on
top. A module may import its own layer and the layers below.

Checked on every module under src/nestdb:

* no cycle among the module-level imports, and no cycle among the domain
  packages (one package's modules importing another's, any import);
* no import of a higher layer, at module level or inside a function;
* imports sit at module top: a function-local import is allowed only for an
  optional heavy dependency (:data:`OPTIONAL`), never for a nestdb module,
  and carries a comment saying why (on its line or the line above);
* every Snakemake script imports its stage from the stage module of its
  domain (and :func:`nestdb.logs.main_guard`).

The checker itself is tested on small synthetic module sets, so that a
broken checker cannot pass silently.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass, field
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SOURCE = REPO / "src"

#: Layers bottom to top: (name, module prefixes). ``*`` stands for one package name.
LAYERS: tuple[tuple[str, tuple[str, ...]], ...] = (
    (
        "base",
        (
            "nestdb",
            "nestdb.errors",
            "nestdb.units",
            "nestdb.io",
            "nestdb.logs",
            "nestdb.plotting",
            "nestdb.structures",
            "nestdb.schemas",
        ),
    ),
    ("models", ("nestdb.potentials", "nestdb.models", "nestdb.relax", "nestdb.kpoints")),
    (
        "domain",
        (
            "nestdb.ns",
            "nestdb.thermo",
            "nestdb.select",
            "nestdb.label",
            "nestdb.fit",
            "nestdb.explore",
            "nestdb.bench",
            "nestdb.campaign",
        ),
    ),
    ("stages", ("nestdb.*.stage",)),
    ("top", ("nestdb.config", "nestdb.cli")),
)
#: Packages that may be imported inside a function (optional extras or heavy imports a worker should not pay).
OPTIONAL = ("pyace", "gpaw", "pyxtal", "optuna", "snakemake", "matplotlib", "tensorflow")
#: Scripts that do not run a stage function under main_guard, and why.
SCRIPT_EXCEPTIONS = {
    # runs in pacemaker's environment, which has no nestdb installed (only this stdlib-only module)
    "fit_pacemaker_member.py",
}


@dataclass
class Module:
    """One module's imports: ``(imported module, line, at module level, line has a why-comment)``."""

    name: str
    path: Path
    imports: list[tuple[str, int, bool, bool]] = field(default_factory=list)
    local_third_party: list[tuple[str, int, bool]] = field(default_factory=list)


def module_name(path: Path, root: Path) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def _commented(lines: list[str], lineno: int) -> bool:
    """A comment on the import's line, or above the block of imports it belongs to."""
    if "#" in lines[lineno - 1]:
        return True
    for line in reversed(lines[: lineno - 1]):
        if line.strip().startswith("#"):
            return True
        if not line.strip().startswith(("from ", "import ")):
            return False
    return False


def parse_modules(sources: dict[str, tuple[Path, str]]) -> dict[str, Module]:
    """Imports of every module (``{name: (path, source)}``), nestdb imports resolved to modules."""
    names = set(sources)
    modules = {}
    for name, (path, text) in sources.items():
        module = Module(name, path)
        _collect_imports(ast.parse(text), False, module, text.splitlines(), names)
        modules[name] = module
    return modules


def _collect_imports(node: ast.AST, in_function: bool, module: Module, lines: list[str], names: set[str]) -> None:
    """Record the imports under ``node`` in ``module`` (nestdb ones, and third-party ones inside functions)."""
    is_package = module.path.name == "__init__.py"
    for child in ast.iter_child_nodes(node):
        if isinstance(child, (ast.Import, ast.ImportFrom)):
            for target in _targets(child, module.name, is_package, names):
                if target.split(".")[0] == "nestdb":
                    module.imports.append((target, child.lineno, not in_function, _commented(lines, child.lineno)))
                elif in_function:
                    module.local_third_party.append((target, child.lineno, _commented(lines, child.lineno)))
        nested = in_function or isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda))
        _collect_imports(child, nested, module, lines, names)


def _targets(node: ast.Import | ast.ImportFrom, name: str, is_package: bool, names: set[str]) -> list[str]:
    """The modules an import statement loads: ``from pkg import mod`` is ``pkg.mod`` when that is a module."""
    if isinstance(node, ast.Import):
        return [alias.name for alias in node.names]
    base = node.module or ""
    if node.level:
        package = name.split(".") if is_package else name.split(".")[:-1]
        package = package[: len(package) - (node.level - 1)]
        base = ".".join(package + ([base] if base else []))
    targets = [f"{base}.{alias.name}" for alias in node.names if f"{base}.{alias.name}" in names]
    return targets or [base]


def layer_of(module: str) -> int:
    """Index in :data:`LAYERS` of the most specific prefix matching ``module``."""
    best, best_length = None, -1
    for index, (_, prefixes) in enumerate(LAYERS):
        for prefix in prefixes:
            if prefix == "nestdb" and module != "nestdb":  # the root package itself, not everything in it
                continue
            parts = prefix.split(".")
            head = module.split(".")[: len(parts)]
            matches = len(head) == len(parts) and all(p in ("*", h) for p, h in zip(parts, head, strict=True))
            if matches and len(parts) > best_length:
                best, best_length = index, len(parts)
    if best is None:
        raise AssertionError(f"{module} is in no layer of LAYERS; add it to the table in tests/test_layering.py")
    return best


def find_cycle(edges: dict[str, set[str]]) -> list[str] | None:
    """One cycle of a directed graph (as a list of nodes, first repeated last), or None."""
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(edges.get(node, ())):
            if state.get(nxt) == 1:
                return stack[stack.index(nxt) :] + [nxt]
            if nxt not in state:
                found = visit(nxt)
                if found:
                    return found
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(edges):
        if node not in state:
            found = visit(node)
            if found:
                return found
    return None


def _domain_package(module: str) -> str | None:
    parts = module.split(".")
    if len(parts) >= 2 and LAYERS[layer_of(module)][0] == "domain" and not module.endswith(".stage"):
        return ".".join(parts[:2])
    return None


def violations(modules: dict[str, Module]) -> list[str]:
    """Everything the layering forbids, one message per finding."""
    found = []
    module_edges = {
        name: {t for t, _, top, _ in m.imports if top and t in modules and t != name} for name, m in modules.items()
    }
    cycle = find_cycle(module_edges)
    if cycle:
        found.append("module-level import cycle: " + " -> ".join(cycle))
    package_edges: dict[str, set[str]] = {}
    for name, m in modules.items():
        source = _domain_package(name)
        for target, *_ in m.imports:
            destination = _domain_package(target) if target in modules else None
            if source and destination and destination != source:
                package_edges.setdefault(source, set()).add(destination)
    cycle = find_cycle(package_edges)
    if cycle:
        found.append("import cycle between domain packages: " + " -> ".join(cycle))
    for name, m in sorted(modules.items()):
        for target, line, top, _ in m.imports:
            if target in modules and layer_of(target) > layer_of(name):
                found.append(
                    f"{m.path}:{line}: {name} ({LAYERS[layer_of(name)][0]}) imports {target} "
                    f"({LAYERS[layer_of(target)][0]}), a higher layer"
                )
            if not top:
                found.append(f"{m.path}:{line}: {name} imports {target} inside a function; import it at the top")
        for target, line, commented in m.local_third_party:
            if target.split(".")[0] not in OPTIONAL:
                found.append(
                    f"{m.path}:{line}: {name} imports {target} inside a function; only optional heavy "
                    f"packages ({', '.join(OPTIONAL)}) may be imported lazily"
                )
            elif not commented:
                found.append(f"{m.path}:{line}: the lazy import of {target} in {name} needs a comment saying why")
    return found


def _sources(root: Path) -> dict[str, tuple[Path, str]]:
    return {module_name(path, root): (path, path.read_text()) for path in sorted((root / "nestdb").rglob("*.py"))}


# --------------------------------------------------------------------------- the checker on synthetic modules
def _synthetic(files: dict[str, str]) -> dict[str, Module]:
    return parse_modules({name: (Path(name.replace(".", "/") + ".py"), text) for name, text in files.items()})


def test_checker_reports_a_module_cycle_and_a_package_cycle():
    modules = _synthetic(
        {
            "nestdb.ns.a": "from nestdb.ns import b\n",
            "nestdb.ns.b": "import nestdb.ns.a\nfrom nestdb.fit.x import f\n",
            "nestdb.fit.x": "from nestdb.ns.a import g\n",
        }
    )
    found = violations(modules)
    assert any(f.startswith("module-level import cycle: nestdb.fit.x -> nestdb.ns.a -> nestdb.ns.b") for f in found)
    assert any("between domain packages" in f and "nestdb.fit" in f and "nestdb.ns" in f for f in found)


def test_checker_reports_an_upward_import_and_local_imports():
    modules = _synthetic(
        {
            "nestdb.io": "def f():\n    from nestdb.fit.stage import g\n",
            "nestdb.fit.stage": (
                "def g():\n    import scipy.optimize\n    import pyace\n    import optuna  # optional\n"
            ),
        }
    )
    found = violations(modules)
    assert any("nestdb.io (base) imports nestdb.fit.stage (stages), a higher layer" in f for f in found)
    assert any("imports nestdb.fit.stage inside a function" in f for f in found)
    assert any("scipy.optimize inside a function; only optional" in f for f in found)
    assert any("lazy import of pyace" in f and "needs a comment" in f for f in found)
    assert not any("lazy import of optuna" in f for f in found)


def test_layers_match_the_most_specific_prefix():
    assert [
        layer_of(m)
        for m in (
            "nestdb",
            "nestdb.io",
            "nestdb.models.registry",
            "nestdb.fit.linear_ace",
            "nestdb.fit.stage",
            "nestdb.cli.ns",
        )
    ] == [0, 0, 1, 2, 3, 4]
    with pytest.raises(AssertionError, match="nestdb.orphan is in no layer"):
        layer_of("nestdb.orphan")


# --------------------------------------------------------------------------- the package itself
def test_nestdb_obeys_the_layering():
    found = violations(parse_modules(_sources(SOURCE)))
    assert not found, "\n".join(found)


def test_no_stages_module_and_one_stage_module_per_domain():
    names = set(_sources(SOURCE))
    assert "nestdb.stages" not in names
    for domain in ("ns", "thermo", "select", "label", "fit", "bench", "explore", "campaign"):
        assert f"nestdb.{domain}.stage" in names, f"nestdb/{domain}/stage.py is missing"


def test_scripts_run_a_stage_of_their_domain_under_main_guard():
    sources = _sources(SOURCE)
    for script in sorted((REPO / "scripts").glob("*.py")):
        if script.name in SCRIPT_EXCEPTIONS:
            continue
        imported = {
            node.module: [a.name for a in node.names]
            for node in ast.walk(ast.parse(script.read_text()))
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("nestdb")
        }
        assert imported.pop("nestdb.logs", None) == ["main_guard"], f"{script.name}: no main_guard from nestdb.logs"
        assert imported, f"{script.name} imports no stage"
        for module in imported:
            assert module.endswith(".stage") and module in sources, (
                f"{script.name} imports from {module}; scripts call the stage module of their domain"
            )
