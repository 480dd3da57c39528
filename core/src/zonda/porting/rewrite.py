"""Rewrite one Airflow DAG source to Zonda's imports and names, keeping everything else byte for byte.

libcst keeps comments, blank lines and layout, so a ported file reads like its original. What cannot be ported
(an Airflow name Zonda has no counterpart for, ``import airflow`` used as a namespace, ``import *``) stays as it
was and is reported with its line, so the author knows exactly what is left to do by hand.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import libcst as cst
from libcst.helpers import get_full_name_for_node
from libcst.metadata import MetadataWrapper, PositionProvider

from zonda.porting import names


@dataclass
class Ported:
    """The result for one source: the new text and ``(line, reason)`` for each thing left unported."""

    source: str
    problems: list[tuple[int, str]] = field(default_factory=list)
    changed: bool = False


def _is_airflow(module: str | None) -> bool:
    return module is not None and (module == "airflow" or module.startswith("airflow."))


def _dotted(module: str) -> cst.Attribute | cst.Name:
    node: cst.Attribute | cst.Name = cst.Name(module.split(".", maxsplit=1)[0])
    for part in module.split(".")[1:]:
        node = cst.Attribute(value=node, attr=cst.Name(part))
    return node


class _Renames(cst.CSTVisitor):
    """First pass: the names whose Zonda spelling differs and that are imported without an alias."""

    def __init__(self) -> None:
        self.renames: dict[str, str] = {}

    def visit_ImportFrom(self, node: cst.ImportFrom) -> None:
        if (
            node.relative
            or not _is_airflow(get_full_name_for_node(node.module))
            or isinstance(node.names, cst.ImportStar)
        ):
            return
        for alias in node.names:
            name = get_full_name_for_node(alias.name) or ""
            target = names.find(name)
            if target is not None and target.name != name and alias.asname is None:
                self.renames[name] = target.name


class _Porter(cst.CSTTransformer):
    METADATA_DEPENDENCIES = (PositionProvider,)

    def __init__(self, renames: dict[str, str]) -> None:
        super().__init__()
        self.renames = renames
        self.problems: list[tuple[int, str]] = []

    def _line(self, node: cst.CSTNode) -> int:
        return self.get_metadata(PositionProvider, node).start.line

    def visit_ImportFrom(self, node: cst.ImportFrom) -> bool:
        return False  # the names inside are rebuilt in leave_SimpleStatementLine

    def leave_Name(self, original: cst.Name, updated: cst.Name) -> cst.Name:
        new = self.renames.get(updated.value)
        return updated.with_changes(value=new) if new else updated

    def leave_SimpleStatementLine(
        self, original: cst.SimpleStatementLine, updated: cst.SimpleStatementLine
    ) -> cst.SimpleStatementLine | cst.FlattenSentinel[cst.SimpleStatementLine]:
        line = self._line(original)
        body: list[cst.BaseSmallStatement] = []
        for statement in updated.body:
            if isinstance(statement, cst.ImportFrom):
                body.extend(self._import_from(statement, line))
            else:
                if isinstance(statement, cst.Import):
                    self._import(statement, line)
                body.append(statement)
        if len(body) == len(updated.body) and all(a is b for a, b in zip(body, updated.body, strict=True)):
            return updated
        if len(updated.body) == 1:
            lines = [
                cst.SimpleStatementLine(body=[small.with_changes(semicolon=cst.MaybeSentinel.DEFAULT)])
                for small in body
            ]
            lines[0] = lines[0].with_changes(
                leading_lines=updated.leading_lines, trailing_whitespace=updated.trailing_whitespace
            )
            return cst.FlattenSentinel(lines)
        return updated.with_changes(body=[small.with_changes(semicolon=cst.MaybeSentinel.DEFAULT) for small in body])

    def _import(self, node: cst.Import, line: int) -> None:
        for alias in node.names:
            module = get_full_name_for_node(alias.name)
            if _is_airflow(module):
                self.problems.append(
                    (line, f"import {module}: attribute access on Airflow modules is not ported; import the names")
                )

    def _import_from(self, node: cst.ImportFrom, line: int) -> list[cst.BaseSmallStatement]:
        module = get_full_name_for_node(node.module) if node.module is not None else None
        if node.relative or not _is_airflow(module):
            return [node]
        assert module is not None
        if isinstance(node.names, cst.ImportStar):
            self.problems.append((line, f"from {module} import *: name the imports, then port again"))
            return [node]
        by_module: dict[str, list[cst.ImportAlias]] = {}
        left: list[cst.ImportAlias] = []
        for alias in node.names:
            name = get_full_name_for_node(alias.name) or ""
            target = names.find(name)
            if target is None:
                self.problems.append((line, names.why_not(module, name)))
                left.append(alias)
                continue
            asname = alias.asname
            if asname is not None and get_full_name_for_node(asname.name) == target.name:
                asname = None
            by_module.setdefault(target.module, []).append(cst.ImportAlias(name=cst.Name(target.name), asname=asname))
        statements: list[cst.BaseSmallStatement] = [
            cst.ImportFrom(module=_dotted(target_module), names=_commas(aliases))
            for target_module, aliases in by_module.items()
        ]
        if left:
            statements.append(cst.ImportFrom(module=node.module, names=_commas(left)))
        return statements


def _commas(aliases: list[cst.ImportAlias]) -> list[cst.ImportAlias]:
    last = len(aliases) - 1
    return [
        alias.with_changes(
            comma=cst.MaybeSentinel.DEFAULT if i == last else cst.Comma(whitespace_after=cst.SimpleWhitespace(" "))
        )
        for i, alias in enumerate(aliases)
    ]


def port_source(source: str) -> Ported:
    """Port one module's text. A syntax error is reported as the only problem, the text left as it is."""
    try:
        module = cst.parse_module(source)
    except cst.ParserSyntaxError as exc:
        return Ported(source, [(exc.raw_line, f"not valid Python: {exc.message}")])
    collector = _Renames()
    module.visit(collector)
    porter = _Porter(collector.renames)
    new = MetadataWrapper(module).visit(porter).code
    return Ported(new, sorted(porter.problems), changed=new != source)
