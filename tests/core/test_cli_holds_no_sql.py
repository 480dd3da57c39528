"""The CLI only parses, calls an operation and prints: no module under ``zonda/cli`` talks to the metastore itself.

A module fails when it imports SQLAlchemy or ``zonda.metastore.tables``, calls ``.execute(...)``, or holds SQL
text. Exempt: ``db_command`` (the metastore's schema life cycle is its job, through ``Metastore``). A function
still being moved out may be listed in :data:`EXEMPT_FUNCTIONS`, with the change that moves it; none is now.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

import zonda.cli

CLI_DIR = Path(zonda.cli.__file__).parent
EXEMPT_MODULES = {"db_command.py"}
#: (module file, function) pairs still holding SQL, each with the change that removes it.
EXEMPT_FUNCTIONS: set[tuple[str, str]] = set()
FORBIDDEN_MODULES = ("sqlalchemy", "zonda.metastore.tables")
SQL_TEXT = re.compile(
    r"\bSELECT\b[\s\S]+\bFROM\b|\bINSERT\s+INTO\b|\bUPDATE\s+\w+\s+SET\b|\bDELETE\s+FROM\b|\bPRAGMA\b", re.MULTILINE
)


def _forbidden_import(node: ast.AST) -> str | None:
    if isinstance(node, ast.Import):
        for alias in node.names:
            if alias.name.startswith(FORBIDDEN_MODULES):
                return alias.name
    if isinstance(node, ast.ImportFrom) and node.module:
        if node.module.startswith(FORBIDDEN_MODULES):
            return node.module
        if node.module == "zonda.metastore" and any(a.name == "tables" for a in node.names):
            return "zonda.metastore.tables"
    return None


def sql_in_module(path: Path, exemptions: set[tuple[str, str]] | None = None) -> list[str]:
    """Every place in ``path`` (outside the exempt functions) that holds or runs SQL, as ``line: what``."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    exempt = {name for module, name in (EXEMPT_FUNCTIONS if exemptions is None else exemptions) if module == path.name}
    found: list[str] = []

    def visit(node: ast.AST) -> None:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and node.name in exempt:
            return
        module = _forbidden_import(node)
        if module is not None:
            found.append(f"{node.lineno}: imports {module}")
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "execute":
            found.append(f"{node.lineno}: calls .execute()")
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and SQL_TEXT.search(node.value):
            found.append(f"{node.lineno}: SQL text {node.value[:60]!r}")
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(tree)
    return found


def cli_modules() -> list[Path]:
    return sorted(p for p in CLI_DIR.glob("*.py") if p.name not in EXEMPT_MODULES)


@pytest.mark.parametrize("path", cli_modules(), ids=lambda p: p.name)
def test_cli_module_holds_no_sql(path: Path) -> None:
    found = sql_in_module(path)
    assert not found, f"{path.name} talks to the metastore itself; move it into zonda.operations: {found}"


def test_the_exemptions_name_functions_that_exist() -> None:
    """An exemption outliving its function would hide SQL added under that name later."""
    for module, name in EXEMPT_FUNCTIONS:
        tree = ast.parse((CLI_DIR / module).read_text(encoding="utf-8"))
        names = {n.name for n in ast.walk(tree) if isinstance(n, ast.FunctionDef)}
        assert name in names, f"{module} has no function {name}: drop it from EXEMPT_FUNCTIONS"


@pytest.mark.parametrize(
    "source",
    [
        "from sqlalchemy import select\n",
        "import sqlalchemy.orm\n",
        "from zonda.metastore import tables as t\n",
        "from zonda.metastore.tables import dag\n",
        "def f(conn):\n    conn.execute(x)\n",
        "Q = 'SELECT dag_id FROM dag'\n",
        "def f():\n    return 'UPDATE dag SET is_paused = 1'\n",
        "Q = '''DELETE FROM task_instance'''\n",
        "def _clear_other():\n    from sqlalchemy import update\n",
    ],
)
def test_the_check_catches_sql(tmp_path: Path, source: str) -> None:
    """The detector itself: each way of talking SQL is caught, and an exemption covers only its function."""
    path = tmp_path / "tasks_command.py"
    path.write_text(source, encoding="utf-8")
    assert sql_in_module(path, {("tasks_command.py", "_clear")})


def test_the_check_leaves_plain_text_and_exempt_functions_alone(tmp_path: Path) -> None:
    path = tmp_path / "tasks_command.py"
    path.write_text(
        "HELP = 'Delete a connection from the metastore; select a DAG from the list'\n"
        "def _clear(args):\n    from sqlalchemy import update\n    conn.execute(update(x))\n",
        encoding="utf-8",
    )
    assert sql_in_module(path, {("tasks_command.py", "_clear")}) == []
