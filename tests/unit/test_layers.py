"""The package map holds: a package imports only from packages below it (docs/architecture.md)."""

from __future__ import annotations

import ast
import re
from pathlib import Path

AGENT = Path(__file__).parents[2] / "agent"

# Lowest first. A module may import its own package and anything on a lower line.
LAYERS: list[set[str]] = [
    {"agent", "agent.errors"},
    {"agent.secrets"},
    {"agent.rules"},
    {"agent.config"},
    {"agent.package"},
    {"agent.extract"},
    {"agent.journal"},
    {"agent.pipeline", "agent.controls"},
    {"agent.destinations"},
    {"agent.observe"},
    {"agent.engine"},
    {"agent.cli"},
    {"agent.__main__"},  # python -m agent
]
LEVEL = {package: level for level, packages in enumerate(LAYERS) for package in packages}


def _package(module: str) -> str:
    parts = module.split(".")
    return ".".join(parts[:2]) if len(parts) > 1 and ".".join(parts[:2]) in LEVEL else "agent"


def _imports(path: Path) -> set[str]:
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == "agent":
            found.add(node.module)
            if node.module == "agent":
                found.update(f"agent.{alias.name}" for alias in node.names if alias.name != "__version__")
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names if alias.name.split(".")[0] == "agent")
    return found


def test_every_module_is_in_a_package_of_the_map() -> None:
    top_level = ("__init__", "__main__", "errors")
    loose = sorted(str(path.relative_to(AGENT)) for path in AGENT.glob("*.py") if path.stem not in top_level)
    assert loose == [], f"modules outside a package: {loose}"
    packages = {f"agent.{path.parent.name}" for path in AGENT.glob("*/__init__.py")}
    assert packages <= set(LEVEL), packages - set(LEVEL)


def test_no_package_imports_from_a_package_above_it_or_beside_it() -> None:
    wrong = []
    for path in sorted(AGENT.rglob("*.py")):
        module = ".".join(path.relative_to(AGENT.parent).with_suffix("").parts).removesuffix(".__init__")
        own = _package(module)
        for imported in _imports(path):
            target = _package(imported)
            if target != own and LEVEL[target] >= LEVEL[own] and target != "agent":
                wrong.append(f"{module} imports {imported}")
    assert wrong == [], "\n".join(wrong)


def test_only_the_journal_package_talks_sql() -> None:
    """sqlite3 and SQL statements live in agent/journal; everyone else calls its named methods."""
    statement = re.compile(r"\b(SELECT|INSERT INTO|UPDATE \w+ SET|DELETE FROM)\b")
    talking = []
    for path in AGENT.rglob("*.py"):
        if path.relative_to(AGENT).parts[0] == "journal":
            continue
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            imported = isinstance(node, ast.Import) and any(alias.name == "sqlite3" for alias in node.names)
            imported = imported or (isinstance(node, ast.ImportFrom) and node.module == "sqlite3")
            literal = isinstance(node, ast.Constant) and isinstance(node.value, str) and statement.search(node.value)
            if imported or literal:
                talking.append(f"{path.relative_to(AGENT)}:{getattr(node, 'lineno', '?')}")
    assert not talking, talking
