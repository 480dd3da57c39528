"""Finds code that writes a task instance's or a DAG run's state outside ``zonda.operations.transitions``.

Used by ``test_state_transitions.py``. It reads the source (``ast``), never imports it, and reports:

- an ``update(X)`` (or ``X.update()``) of ``task_instance`` / ``dag_run`` whose ``.values(...)`` set ``state``, or
  set columns it cannot see (``**values``, a dict built at run time), or that has no ``.values`` at all (the
  values then come with ``execute``). ``X`` is the table, a model class, or a local name bound to one
  (``ti = t.task_instance``; ``ti, dr = t.task_instance, t.dag_run``);
- an ORM bulk update (``session.query(TaskInstanceModel)....update({...})``) that sets ``state`` or unseen columns;
- an ``insert`` into those tables whose ``state`` is a string literal (rows are born in a state named by the
  enums, see ``transitions.BIRTH_STATES``);
- raw SQL (a string or f-string) ``UPDATE task_instance|dag_run ... SET ... state``;
- ``x.state = ...`` or ``setattr(x, "state", ...)`` in a module that imports the ORM models (an ORM object's
  state written through the unit of work). Elsewhere ``ti.state`` is the runner's in-memory task instance.
"""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass
from pathlib import Path

GUARDED = frozenset({"task_instance", "dag_run", "TaskInstanceModel", "DagRunModel"})
MODELS = frozenset({"TaskInstanceModel", "DagRunModel"})
_RAW_SQL = re.compile(
    r"\bupdate\s+[`\"]?(task_instance|dag_run)[`\"]?\s+(?:\w+\s+)?set\b[^;]*?\bstate\b", re.IGNORECASE | re.DOTALL
)


@dataclass(frozen=True)
class Finding:
    path: str
    line: int
    what: str

    def __str__(self) -> str:
        return f"{self.path}:{self.line}: {self.what}"


def _names_in(node: ast.AST) -> set[str]:
    found = set()
    for sub in ast.walk(node):
        if isinstance(sub, ast.Name):
            found.add(sub.id)
        elif isinstance(sub, ast.Attribute):
            found.add(sub.attr)
    return found


class _Scanner(ast.NodeVisitor):
    def __init__(self, path: str, tree: ast.Module) -> None:
        self.path = path
        self.findings: list[Finding] = []
        self.aliases: set[str] = set()
        self.imports_models = False
        self._collect(tree)

    def _collect(self, tree: ast.Module) -> None:
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom):
                imported = {a.name for a in node.names}
                module = node.module or ""
                from_models = module.endswith("metastore.models") or bool(imported & MODELS)
                if from_models or (module.endswith("metastore") and "models" in imported):
                    self.imports_models = True
            elif isinstance(node, ast.Import) and any(a.name.endswith("metastore.models") for a in node.names):
                self.imports_models = True
        # Names bound to a guarded table, to a fixpoint (``table = ti`` after ``ti = t.task_instance``).
        assigns = [n for n in ast.walk(tree) if isinstance(n, ast.Assign | ast.AnnAssign) and n.value is not None]
        for _ in range(5):
            before = len(self.aliases)
            for node in assigns:
                targets = node.targets if isinstance(node, ast.Assign) else [node.target]
                for target in targets:
                    self._bind(target, node.value)
            if len(self.aliases) == before:
                break

    def _bind(self, target: ast.AST, value: ast.AST) -> None:
        if isinstance(target, ast.Tuple | ast.List) and isinstance(value, ast.Tuple | ast.List):
            for sub_target, sub_value in zip(target.elts, value.elts, strict=False):
                self._bind(sub_target, sub_value)
        elif isinstance(target, ast.Name) and self._refers(value) and not isinstance(value, ast.Call):
            self.aliases.add(target.id)

    def _refers(self, node: ast.AST) -> bool:
        names = _names_in(node)
        return bool(names & GUARDED or names & self.aliases)

    def _report(self, node: ast.AST, what: str) -> None:
        self.findings.append(Finding(self.path, getattr(node, "lineno", 0), what))

    # --- statements built with SQLAlchemy -----------------------------------------------------------------

    def visit_Call(self, node: ast.Call) -> None:
        func = node.func
        table = self._updated_table(node)
        if table is not None:
            values = self._values_call(node)
            if values is None:
                self._report(node, f"UPDATE of {table} without .values(): only the transitions module sets states")
            else:
                self._check_values(values, f"UPDATE of {table}")
        if isinstance(func, ast.Attribute) and func.attr == "update" and self._orm_bulk_update(func.value):
            self._check_values(node, "ORM bulk update of a task instance or DAG run")
        if self._is_insert(node):
            values = self._values_call(node)
            if values is not None:
                for keyword in values.keywords:
                    if (
                        keyword.arg == "state"
                        and isinstance(keyword.value, ast.Constant)
                        and isinstance(keyword.value.value, str)
                    ):
                        self._report(values, "INSERT with a string-literal state: use the state enums")
        if (
            self.imports_models
            and isinstance(func, ast.Name)
            and func.id == "setattr"
            and len(node.args) >= 2
            and isinstance(node.args[1], ast.Constant)
            and node.args[1].value == "state"
        ):
            self._report(node, "setattr(..., 'state', ...) on an ORM object")
        self.generic_visit(node)

    def _updated_table(self, node: ast.Call) -> str | None:
        func = node.func
        name = func.id if isinstance(func, ast.Name) else func.attr if isinstance(func, ast.Attribute) else ""
        if name != "update":
            return None
        if node.args and isinstance(func, ast.Name | ast.Attribute) and self._refers(node.args[0]):
            if isinstance(func, ast.Attribute) and not self._is_sqlalchemy(func.value):
                return None  # some_dict.update(x): not a statement
            return ast.unparse(node.args[0])
        if not node.args and not node.keywords and isinstance(func, ast.Attribute) and self._refers(func.value):
            return ast.unparse(func.value)  # Table.update()
        return None

    @staticmethod
    def _is_sqlalchemy(node: ast.AST) -> bool:
        return isinstance(node, ast.Name) and node.id in {"sa", "sqlalchemy", "expression", "dml"}

    def _is_insert(self, node: ast.Call) -> bool:
        func = node.func
        name = func.id if isinstance(func, ast.Name) else func.attr if isinstance(func, ast.Attribute) else ""
        return name == "insert" and bool(node.args) and self._refers(node.args[0])

    def _values_call(self, start: ast.Call) -> ast.Call | None:
        """The ``.values(...)`` call of the chain ``start`` begins (``update(x).where(...).values(...)``)."""
        node: ast.AST = start
        parent = self.parents.get(id(node))
        while parent is not None:
            if isinstance(parent, ast.Attribute) and parent.value is node:
                grand = self.parents.get(id(parent))
                if isinstance(grand, ast.Call) and grand.func is parent:
                    if parent.attr == "values":
                        return grand
                    node, parent = grand, self.parents.get(id(grand))
                    continue
            return None
        return None

    def _check_values(self, call: ast.Call, what: str) -> None:
        for keyword in call.keywords:
            if keyword.arg == "state":
                self._report(call, f"{what} sets state: call a transition of zonda.operations.transitions")
            elif keyword.arg is None:
                self._report(call, f"{what} with **{ast.unparse(keyword.value)}: its columns cannot be checked")
        for arg in call.args:
            if isinstance(arg, ast.Dict):
                for key in arg.keys:
                    if key is None:
                        self._report(call, f"{what} with a ** in its dict: its columns cannot be checked")
                    elif (isinstance(key, ast.Constant) and key.value == "state") or (
                        isinstance(key, ast.Attribute) and key.attr == "state"
                    ):
                        self._report(call, f"{what} sets state: call a transition of zonda.operations.transitions")
                    elif not isinstance(key, ast.Constant | ast.Attribute):
                        self._report(call, f"{what} with computed columns: they cannot be checked")
            else:
                self._report(call, f"{what} with columns built at run time ({ast.unparse(arg)[:40]})")

    def _orm_bulk_update(self, receiver: ast.AST) -> bool:
        """``session.query(Model)...`` or ``select(Model)...`` receiving ``.update``."""
        for sub in ast.walk(receiver):
            if isinstance(sub, ast.Call) and any(_names_in(arg) & MODELS for arg in sub.args):
                return True
        return False

    # --- ORM objects and raw SQL ------------------------------------------------------------------------------

    def visit_Assign(self, node: ast.Assign) -> None:
        self._check_targets(node.targets)
        self.generic_visit(node)

    def visit_AugAssign(self, node: ast.AugAssign) -> None:
        self._check_targets([node.target])
        self.generic_visit(node)

    def visit_AnnAssign(self, node: ast.AnnAssign) -> None:
        self._check_targets([node.target])
        self.generic_visit(node)

    def _check_targets(self, targets: list[ast.expr]) -> None:
        if not self.imports_models:
            return
        for target in targets:
            for sub in ast.walk(target):
                if isinstance(sub, ast.Attribute) and sub.attr == "state" and isinstance(sub.ctx, ast.Store):
                    self._report(sub, "assignment to .state in a module that uses the ORM models")

    def visit_Constant(self, node: ast.Constant) -> None:
        if isinstance(node.value, str) and _RAW_SQL.search(node.value):
            self._report(node, "raw SQL sets the state of a task instance or DAG run")

    def visit_JoinedStr(self, node: ast.JoinedStr) -> None:
        text = "".join(v.value if isinstance(v, ast.Constant) else "x" for v in node.values)
        if _RAW_SQL.search(text):
            self._report(node, "raw SQL (f-string) sets the state of a task instance or DAG run")

    def scan(self, tree: ast.Module) -> list[Finding]:
        self.parents: dict[int, ast.AST] = {}
        for parent in ast.walk(tree):
            for child in ast.iter_child_nodes(parent):
                self.parents[id(child)] = parent
        self.visit(tree)
        return self.findings


def scan_source(source: str, path: str = "<snippet>") -> list[Finding]:
    tree = ast.parse(source)
    return _Scanner(path, tree).scan(tree)


def scan_tree(root: Path, folders: list[str], allowed: set[str]) -> list[Finding]:
    """Every finding under ``folders`` (relative to ``root``), except in the ``allowed`` files."""
    findings: list[Finding] = []
    for folder in folders:
        for path in sorted((root / folder).rglob("*.py")):
            relative = path.relative_to(root).as_posix()
            if relative in allowed or "/migrations/" in relative:
                continue
            findings.extend(scan_source(path.read_text(encoding="utf-8"), relative))
    return findings
