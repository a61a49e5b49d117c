"""Every ``:mod:``/``:func:``/``:class:``/``:data:``/``:meth:`` reference to nestdb in the library's
docstrings and the docs names something that exists (modules move; references must follow)."""

from __future__ import annotations

import importlib
import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
ROLE = re.compile(r":(?:mod|func|class|data|meth|attr|exc):`~?(nestdb(?:\.\w+)+)`")


def references() -> list[tuple[str, str]]:
    found = []
    for path in [*sorted((REPO / "src" / "nestdb").rglob("*.py")), *sorted(REPO.glob("*.md"))]:
        for target in ROLE.findall(path.read_text()):
            found.append((str(path.relative_to(REPO)), target))
    return found


def resolves(target: str) -> bool:
    """Import the longest importable module prefix, then follow attributes."""
    parts = target.split(".")
    for cut in range(len(parts), 0, -1):
        try:
            obj = importlib.import_module(".".join(parts[:cut]))
        except ModuleNotFoundError:
            continue
        for name in parts[cut:]:
            if not hasattr(obj, name):
                return False
            obj = getattr(obj, name)
        return True
    return False


def test_the_checker_tells_a_dangling_reference():
    assert resolves("nestdb.ns.loop.run_nested_sampling")
    assert not resolves("nestdb.stages.fit_cycle")
    assert not resolves("nestdb.ns.loop.no_such_function")


@pytest.mark.parametrize("where, target", references())
def test_reference_resolves(where, target):
    assert resolves(target), f"{where}: {target} does not exist"
