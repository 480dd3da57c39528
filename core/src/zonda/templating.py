"""Jinja2 rendering of ``template_fields``, in a sandbox.

Templates run in :class:`ZondaSandbox` (a :class:`jinja2.sandbox.SandboxedEnvironment`) with
:class:`jinja2.StrictUndefined`: a DAG file's templates cannot reach private attributes such as ``__class__``,
and a misspelt name fails the task with the name instead of rendering as an empty string. On top of Jinja's
rules the sandbox refuses any value that would open the way to code: a module, a function's globals, a code,
frame or traceback object, a class's attribute dictionary, and the builtins that fetch or run code
(``getattr``, ``eval``, ``open``, ``__import__``...). It refuses them however they are reached (attribute,
item, call result, a top-level name from ``user_defined_macros`` or the context, a plugin macro), so a macro
that happens to be a module is as harmless as one that is a function.

Autoescape is off (these are shell commands and SQL, not HTML) and a trailing newline is kept (it matters
for scripts).

Speed: a string without ``{{``, ``{%`` or ``{#`` never reaches Jinja; compiled templates are cached per
renderer, and a renderer (with its environment) is cached per DAG by :func:`renderer_for_dag`.

This is the only module that imports Jinja2.
"""

from __future__ import annotations

import builtins
import contextlib
import datetime
import importlib
import os
import types
import weakref
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import jinja2
import jinja2.nativetypes
import jinja2.sandbox

from zonda.exceptions import TemplateRenderError
from zonda.macros import Macros, default_macros

__all__ = ["DEFAULT_TEMPLATE_EXT", "TemplateRenderer", "ZondaSandbox", "renderer_for_dag", "unsafe_reason"]

DEFAULT_TEMPLATE_EXT: tuple[str, ...] = (".sql", ".sh", ".bash", ".hql", ".j2", ".jinja2")
"""Used by :meth:`TemplateRenderer.render_fields` for an object that declares no ``template_ext``."""

_CACHE_LIMIT = 2048


_CODE_OBJECT_TYPES: dict[type, str] = {
    types.ModuleType: "a module",
    types.CodeType: "a code object",
    types.FrameType: "a frame object",
    types.TracebackType: "a traceback object",
    types.CellType: "a closure cell",
    types.MappingProxyType: "a class's attribute dictionary",
}

#: Builtins that fetch attributes by name, read files, import or run code: never callable from a template.
_CODE_RUNNING_BUILTINS = frozenset(
    id(fn)
    for fn in (
        builtins.__import__,
        builtins.breakpoint,
        builtins.compile,
        builtins.delattr,
        builtins.eval,
        builtins.exec,
        builtins.getattr,
        builtins.globals,
        builtins.input,
        builtins.locals,
        builtins.open,
        builtins.setattr,
        builtins.vars,
        importlib.import_module,
        importlib.reload,
    )
)

_CODE_OBJECT_TUPLE = tuple(_CODE_OBJECT_TYPES)

#: Types whose values are never unsafe: checked first, so guarding a context costs little.
_PLAIN_TYPES = frozenset({str, int, float, bool, type(None), datetime.datetime, datetime.date, datetime.timedelta})


def unsafe_reason(value: Any) -> str | None:
    """Why ``value`` must not reach a template (it leads to code), or None when it may."""
    if isinstance(value, _CODE_OBJECT_TUPLE):
        return next(what for kind, what in _CODE_OBJECT_TYPES.items() if isinstance(value, kind))
    if isinstance(value, dict) and "__builtins__" in value:
        return "a module's or function's globals"
    if id(value) in _CODE_RUNNING_BUILTINS:
        return f"the builtin {getattr(value, '__name__', '?')}()"
    return None


class ZondaSandbox(jinja2.sandbox.SandboxedEnvironment):
    """Jinja's sandbox, refusing on top every value :func:`unsafe_reason` names, wherever it comes from.

    Jinja already refuses names starting with ``_`` and the internals of functions, classes (``mro``),
    frames, code, tracebacks and generators. What it lets through is any public attribute, item or call
    result, and a module there (``macros.uuid.os``) reaches everything; this class closes that at the root.
    """

    def is_safe_attribute(self, obj: Any, attr: str, value: Any) -> bool:
        if isinstance(obj, types.ModuleType) or unsafe_reason(value) is not None:
            return False
        return super().is_safe_attribute(obj, attr, value)

    def is_safe_callable(self, obj: Any) -> bool:
        return unsafe_reason(obj) is None and super().is_safe_callable(obj)

    def getitem(self, obj: Any, argument: Any) -> Any:
        value = super().getitem(obj, argument)
        reason = unsafe_reason(value)
        if reason is not None:
            return self.refused(f"item {argument!r} of {type(obj).__name__} object is {reason}")
        return value

    def call(self, context: Any, obj: Any, /, *args: Any, **kwargs: Any) -> Any:
        # Positional-only, like Jinja's own, so a template may pass keyword arguments of any name.
        value = super().call(context, obj, *args, **kwargs)
        reason = unsafe_reason(value)
        if reason is not None:
            name = getattr(obj, "__name__", type(obj).__name__)
            raise jinja2.sandbox.SecurityError(f"{name}() returned {reason}, which templates may not use.")
        return value

    def refused(self, problem: str, name: str | None = None) -> jinja2.Undefined:
        """A stand-in that raises :class:`~jinja2.sandbox.SecurityError` naming ``problem`` when used."""
        return self.undefined(f"{problem}, which templates may not use.", name=name, exc=jinja2.sandbox.SecurityError)

    def guard(self, names: Mapping[str, Any]) -> Mapping[str, Any]:
        """``names`` (top-level template names) with every unsafe value swapped for a refusing stand-in;
        ``names`` itself when all are safe (the usual case: no copy)."""
        unsafe = {
            key: reason
            for key, value in names.items()
            if type(value) not in _PLAIN_TYPES and (reason := unsafe_reason(value)) is not None
        }
        if not unsafe:
            return names
        guarded = dict(names)
        for key, reason in unsafe.items():
            guarded[key] = self.refused(f"{key!r} is {reason}", name=key)
        return guarded


class _NativeSandboxedEnvironment(ZondaSandbox):
    """Sandboxed, but rendering ``{{ [1, 2] }}`` gives a list (``render_template_as_native_obj``)."""

    code_generator_class = jinja2.nativetypes.NativeCodeGenerator
    concat = staticmethod(jinja2.nativetypes.native_concat)  # type: ignore[assignment]


class _NativeSandboxedTemplate(jinja2.nativetypes.NativeTemplate):
    environment_class = _NativeSandboxedEnvironment


_NativeSandboxedEnvironment.template_class = _NativeSandboxedTemplate


class _Failure(Exception):
    """A render failure on its way up; collects where in the field it happened."""

    def __init__(self, problem: str, template: str) -> None:
        super().__init__(problem)
        self.problem = problem
        self.template = template
        self.path: list[str] = []


class TemplateRenderer:
    """Renders values and ``template_fields`` against a task context.

    ``searchpath``: folders template files are looked up in (the DAG file's folder first, then
    ``template_searchpath``). ``user_defined_macros`` and ``user_defined_filters`` are Airflow's DAG
    arguments: the macros become top-level names in templates. ``macros`` (from plugins) are merged into
    the ``macros`` namespace of every context rendered. ``native=True`` renders to Python objects (Airflow's
    ``render_template_as_native_obj``).
    """

    def __init__(
        self,
        searchpath: Iterable[str | Path],
        *,
        user_defined_macros: Mapping[str, Any] | None = None,
        user_defined_filters: Mapping[str, Any] | None = None,
        native: bool = False,
        macros: Mapping[str, Any] | None = None,
    ) -> None:
        self.searchpath = [str(p) for p in searchpath]
        self.native = native
        self._user_macros = dict(user_defined_macros or {})
        self._user_filters = dict(user_defined_filters or {})
        self._extra_macros = dict(macros or {})
        self._env: jinja2.Environment | None = None
        self._compiled: dict[str, jinja2.Template] = {}

    # ------------------------------------------------------------------------------------------ environment

    @property
    def environment(self) -> jinja2.Environment:
        """The Jinja environment, built on first use and kept."""
        env = self._env
        if env is None:
            env_class = _NativeSandboxedEnvironment if self.native else ZondaSandbox
            env = env_class(
                loader=jinja2.FileSystemLoader(self.searchpath),
                undefined=jinja2.StrictUndefined,
                autoescape=False,
                keep_trailing_newline=True,
                cache_size=1000,
            )
            env.globals.update(env.guard(self._user_macros))
            env.globals["macros"] = default_macros(self._extra_macros)
            env.filters.update(self._user_filters)
            self._env = env
        return env

    def _compile(self, source: str) -> jinja2.Template:
        template = self._compiled.get(source)
        if template is None:
            try:
                template = self.environment.from_string(source)
            except jinja2.TemplateSyntaxError as exc:
                raise _Failure(_describe(exc), source) from exc
            if len(self._compiled) >= _CACHE_LIMIT:
                self._compiled.clear()
            self._compiled[source] = template
        return template

    def _load_file(self, name: str) -> tuple[jinja2.Template, str]:
        env = self.environment
        try:
            if os.path.isabs(name):
                path = Path(name)
                if not path.is_file():
                    raise jinja2.TemplateNotFound(name)
                source = path.read_text(encoding="utf-8")
                return self._compile(source), source
            template = env.get_template(name)
        except jinja2.TemplateNotFound:
            folders = ", ".join(self.searchpath) if self.searchpath else "(no folders)"
            raise _Failure(
                f"template file {name!r} was not found in {folders}. A string ending in a template "
                "extension of the task (template_ext) is read as a file relative to the DAG file's folder "
                "or template_searchpath; if it is not a file, end it with a space.",
                name,
            ) from None
        except jinja2.TemplateSyntaxError as exc:
            raise _Failure(_describe(exc), f"file {exc.filename or name}") from exc
        except OSError as exc:
            raise _Failure(f"template file {name!r} could not be read: {exc}", name) from exc
        filename = template.filename or name
        return template, f"file {filename}"

    # ------------------------------------------------------------------------------------------ rendering

    def _vars(self, context: Mapping[str, Any]) -> Mapping[str, Any]:
        """The names a template sees: the context with plugin macros merged in (unsafe values are refused
        in :meth:`_run`, once a template really runs)."""
        if not self._extra_macros:
            return context
        base = context.get("macros")
        if isinstance(base, Macros):
            merged: Any = base.merged(self._extra_macros)
        elif base is None:
            merged = self.environment.globals["macros"]
        else:
            merged = Macros(**{**vars(base), **self._extra_macros})
        return {**context, "macros": merged}

    def render(self, value: Any, context: Mapping[str, Any], *, template_ext: Sequence[str] = ()) -> Any:
        """Render ``value``: strings, lists, tuples, sets, dict values and ``template_fields`` objects.

        Strings ending with one of ``template_ext`` are read as template files. Objects declaring
        ``template_fields`` are rendered in place and returned.
        """
        try:
            return self._render(value, self._vars(context), tuple(template_ext), set())
        except _Failure as failure:
            raise TemplateRenderError(_message(failure, None, None, context)) from failure.__cause__

    def render_fields(
        self,
        obj: Any,
        field_names: Iterable[str],
        context: Mapping[str, Any],
        template_ext: Sequence[str] | None = None,
    ) -> dict[str, Any]:
        """Render each named attribute of ``obj``, set it back, and return ``{field: rendered}``.

        ``template_ext`` defaults to ``obj.template_ext`` (or :data:`DEFAULT_TEMPLATE_EXT` if it has none).
        """
        if template_ext is None:
            template_ext = getattr(obj, "template_ext", DEFAULT_TEMPLATE_EXT)
        ext = tuple(template_ext or ())
        variables = self._vars(context)
        seen = {id(obj)}
        label = _label(obj)
        rendered: dict[str, Any] = {}
        for name in field_names:
            try:
                value = getattr(obj, name)
            except AttributeError:
                raise TemplateRenderError(
                    f"task {label} lists {name!r} in template_fields but has no attribute {name!r}; "
                    "set it in __init__ or remove it from template_fields"
                ) from None
            try:
                result = self._render(value, variables, ext, seen)
            except _Failure as failure:
                raise TemplateRenderError(_message(failure, name, label, context)) from failure.__cause__
            if result is not value:
                setattr(obj, name, result)
            rendered[name] = result
        return rendered

    def _render(self, value: Any, variables: Mapping[str, Any], ext: tuple[str, ...], seen: set[int]) -> Any:
        if isinstance(value, str):
            if ext and value.endswith(ext):
                template, shown = self._load_file(value)
                return self._run(template, variables, shown)
            if "{{" not in value and "{%" not in value and "{#" not in value:
                return value
            return self._run(self._compile(value), variables, value)
        if value is None or isinstance(value, int | float):
            return value
        if isinstance(value, list):
            return [self._item(x, i, variables, ext, seen) for i, x in enumerate(value)]
        if isinstance(value, tuple):
            items = [self._item(x, i, variables, ext, seen) for i, x in enumerate(value)]
            if hasattr(value, "_fields"):  # namedtuple
                return type(value)(*items)
            return tuple(items)
        if isinstance(value, dict):
            return {k: self._item(x, k, variables, ext, seen) for k, x in value.items()}
        if isinstance(value, set | frozenset):
            return type(value)(self._item(x, "...", variables, ext, seen) for x in value)
        fields = getattr(value, "template_fields", None)
        if fields and not isinstance(value, type):
            self._render_object(value, fields, variables, seen)
        return value

    def _item(self, value: Any, where: Any, variables: Mapping[str, Any], ext: tuple[str, ...], seen: set[int]) -> Any:
        try:
            return self._render(value, variables, ext, seen)
        except _Failure as failure:
            failure.path.append(f"[{where!r}]")
            raise

    def _render_object(self, obj: Any, fields: Iterable[str], variables: Mapping[str, Any], seen: set[int]) -> None:
        if id(obj) in seen:
            return
        seen.add(id(obj))
        ext = tuple(getattr(obj, "template_ext", ()) or ())
        for name in fields:
            value = getattr(obj, name, None)
            try:
                result = self._render(value, variables, ext, seen)
            except _Failure as failure:
                failure.path.append(f".{name}")
                raise
            if result is not value:
                setattr(obj, name, result)

    def _run(self, template: jinja2.Template, variables: Mapping[str, Any], shown: str) -> Any:
        try:
            result = template.render(self.environment.guard(variables))  # type: ignore[attr-defined]
            if isinstance(result, jinja2.Undefined):
                # Native mode hands back a lone ``{{ x }}`` without str(), which is where StrictUndefined
                # (and the sandbox's refusals) would raise; make it raise.
                result._fail_with_undefined_error()
            return result
        except Exception as exc:
            raise _Failure(_describe(exc), shown) from exc


_RENDERERS: weakref.WeakKeyDictionary[Any, TemplateRenderer] = weakref.WeakKeyDictionary()


def renderer_for_dag(dag: Any, *, macros: Mapping[str, Any] | None = None) -> TemplateRenderer:
    """The renderer of a DAG (its folders, user macros and filters, native mode), built once per DAG object.

    ``macros`` (plugin macros) only count the first time; pass the same ones every time.
    """
    try:
        renderer = _RENDERERS.get(dag)
    except TypeError:  # unhashable or not weak-referenceable: no caching
        renderer = None
    if renderer is None:
        folders = dag.template_folders() if hasattr(dag, "template_folders") else []
        renderer = TemplateRenderer(
            folders,
            user_defined_macros=getattr(dag, "user_defined_macros", None),
            user_defined_filters=getattr(dag, "user_defined_filters", None),
            native=bool(getattr(dag, "render_template_as_native_obj", False)),
            macros=macros,
        )
        with contextlib.suppress(TypeError):
            _RENDERERS[dag] = renderer
    return renderer


# ------------------------------------------------------------------------------------------------ messages


def _label(obj: Any) -> str:
    task_id = getattr(obj, "task_id", None)
    if task_id is None:
        return type(obj).__name__
    dag = getattr(obj, "dag", None)
    dag_id = getattr(dag, "dag_id", None)
    return f"{dag_id}.{task_id}" if dag_id else str(task_id)


def _shorten(text: str, limit: int = 120) -> str:
    text = text if len(text) <= limit else text[: limit - 3] + "..."
    return repr(text)


def _template_line(exc: BaseException) -> int | None:
    """The template line a runtime error happened on: Jinja rewrites tracebacks to point at template lines."""
    line = None
    tb = exc.__traceback__
    while tb is not None:
        code = tb.tb_frame.f_code
        if code.co_filename == "<template>" or "__jinja_template__" in tb.tb_frame.f_globals:
            line = tb.tb_lineno
        tb = tb.tb_next
    return line


def _describe(exc: BaseException) -> str:
    if isinstance(exc, jinja2.sandbox.SecurityError):
        return (
            f"the sandbox refused it: {exc} Templates may not use private attributes (names starting with "
            "'_'), modules, globals, code objects or builtins that run code; compute the value in Python and "
            "pass it in (params, op_kwargs, a macro function)"
        )
    if isinstance(exc, jinja2.UndefinedError):
        return f"{exc} (undefined names are errors, not empty strings)"
    if isinstance(exc, jinja2.TemplateSyntaxError):
        where = f" in {exc.filename}" if exc.filename else ""
        return f"syntax error on line {exc.lineno}{where}: {exc.message}"
    line = _template_line(exc)
    at = f" on line {line}" if line else ""
    return f"the template raised {type(exc).__name__}{at}: {exc}"


def _message(failure: _Failure, field: str | None, label: str | None, context: Mapping[str, Any]) -> str:
    where = "".join(reversed(failure.path))
    if field is not None:
        head = f"cannot render template field {field + where!r} of task {label}"
    else:
        head = f"cannot render template{' at value' + where if where else ''}"
    names = ", ".join(sorted(str(k) for k in context))
    problem = failure.problem.rstrip(".")
    return f"{head}: {problem}. Template: {_shorten(failure.template)}. Names in the context: {names}."
