"""The direction of imports (README, "How the code is laid out"): bot -> connectors -> kpi, and
settings below all. Every module's imports are read with `ast` (those inside functions and
under TYPE_CHECKING too), so a late import cannot slip past."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("bot", "connectors", "kpi", "settings")
SLACK_AND_CRM_LIBRARIES = ("slack_sdk", "slack_bolt", "apscheduler", "simple_salesforce", "hubspot")

#: package -> the modules (and everything below them) it must never import
FORBIDDEN: dict[str, tuple[str, ...]] = {
    # The KPI core sees normalized records and its own part of app.yaml, nothing of the CRMs,
    # Slack or the scheduler.
    "kpi": (
        "bot",
        "connectors",
        "settings.app",
        "settings.crm",
        "settings.slack",
        "settings.secrets",
        *SLACK_AND_CRM_LIBRARIES,
    ),
    "connectors": ("bot",),
    "settings": ("bot", "connectors", "kpi"),
}


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def modules(package: str) -> dict[str, Path]:
    return {module_name(path): path for path in sorted((ROOT / package).rglob("*.py"))}


def imported(path: Path, name: str) -> Iterator[tuple[int, str]]:
    """(line, module) for each import in the file; `from a import b` yields `a` and `a.b`."""
    is_package = path.name == "__init__.py"
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parent = name.split(".")[: len(name.split(".")) - node.level + is_package]
                base = ".".join([*parent, *([base] if base else [])])
            yield node.lineno, base
            for alias in node.names:
                yield node.lineno, f"{base}.{alias.name}"


def within(module: str, prefix: str) -> bool:
    return module == prefix or module.startswith(prefix + ".")


def wrong_imports(package: str) -> list[str]:
    found = []
    for name, path in modules(package).items():
        for line, target in imported(path, name):
            for banned in FORBIDDEN[package]:
                if within(target, banned):
                    where = path.relative_to(ROOT)
                    found.append(f"{where}:{line}: {package}/ imports {target} ({banned})")
    return sorted(set(found))


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_imports_point_down(package: str) -> None:
    assert wrong_imports(package) == []


def import_loops(packages: tuple[str, ...]) -> list[list[str]]:
    """Cycles in the graph of module imports among `packages` (each cycle once)."""
    known: dict[str, Path] = {}
    for package in packages:
        known.update(modules(package))
    graph = {
        name: sorted({target for _, target in imported(path, name) if target in known} - {name})
        for name, path in known.items()
    }
    loops: list[list[str]] = []
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(node: str) -> None:
        state[node] = 1
        path.append(node)
        for nxt in graph[node]:
            if state.get(nxt) == 1:
                loops.append([*path[path.index(nxt) :], nxt])
            elif nxt not in state:
                visit(nxt)
        path.pop()
        state[node] = 2

    for node in sorted(graph):
        if node not in state:
            visit(node)
    return loops


def test_no_import_loops() -> None:
    loops = [loop for loop in import_loops(PACKAGES) if len(set(loop)) > 1]
    assert loops == []


def test_the_checks_see_a_wrong_import(tmp_path: Path) -> None:
    """The reader finds imports in every form a module may write them."""
    source = tmp_path / "kpi" / "late.py"
    source.parent.mkdir()
    source.write_text(
        "import slack_sdk.web\n"
        "from settings import crm\n"
        "from ..bot import cli\n"
        "def f():\n"
        "    from apscheduler.schedulers.background import BackgroundScheduler\n",
        encoding="utf-8",
    )
    targets = {target for _, target in imported(source, "kpi.late")}
    assert {"slack_sdk.web", "settings.crm", "bot.cli", "apscheduler.schedulers.background"} <= (
        targets
    )
