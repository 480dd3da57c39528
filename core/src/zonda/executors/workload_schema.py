"""The public workload: the JSON document that asks any machine to run one try of one task instance.

``zonda tasks execute --workload ...`` reads it; an executor that runs tasks elsewhere (Celery, Kubernetes)
writes it with :func:`encode_workload` and hands it over as text. It is data, never code: plain JSON (never
pickle), at most :data:`MAX_WORKLOAD_BYTES`, every field typed and bounded, unknown fields and duplicate keys
refused, and ``dag_file`` a relative path that must stay inside its bundle (the DAGs folder or the example DAGs),
so a workload can only make a worker import a DAG file the worker itself was given.

The document is versioned: ``version`` says which shape it has, and a worker refuses a version it does not know
instead of guessing. The field table :data:`FIELDS` is the one definition: the validator reads it, and
:func:`json_schema` (``zonda tasks execute --print-schema``) is generated from it, so the two cannot drift.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any

from zonda.exceptions import ZondaException

if TYPE_CHECKING:
    from zonda.config import Settings
    from zonda.executors.base import Workload

#: The version this Zonda writes and the only one it reads.
WORKLOAD_VERSION = 1
#: The one kind of workload version 1 has.
EXECUTE_TASK = "execute_task"
#: Largest workload text accepted (a real one is a few hundred bytes).
MAX_WORKLOAD_BYTES = 64 * 1024
#: Longest id (the metastore's ``String(250)`` id columns) and longest ``dag_file``.
MAX_ID_LENGTH = 250
MAX_PATH_LENGTH = 1024
#: Largest integer field (the metastore's 32-bit integer columns).
MAX_INTEGER = 2**31 - 1
#: Bundles a ``dag_file`` is relative to.
DAGS_FOLDER_BUNDLE = "dags_folder"
EXAMPLES_BUNDLE = "example_dags"
BUNDLES = (DAGS_FOLDER_BUNDLE, EXAMPLES_BUNDLE)

#: Exit codes of ``zonda tasks execute`` (documented in its help and the README).
EXIT_INVALID_WORKLOAD = 2
EXIT_NOT_CLAIMED = 3


class InvalidWorkload(ZondaException, ValueError):
    """The workload text is not a valid workload; nothing ran and nothing was written."""

    exit_code = EXIT_INVALID_WORKLOAD


@dataclass(frozen=True)
class Field:
    """One field of the document: its JSON type and bounds, whether it is required, and what it means."""

    name: str
    type: str  # "string" | "integer"
    description: str
    required: bool = True
    default: Any = None
    minimum: int | None = None
    max_length: int | None = None
    enum: tuple[Any, ...] | None = None


#: Version 1, field by field. Optional fields have defaults; ``queue``, ``pool`` and ``priority_weight`` are what
#: the scheduler decided when it queued the instance (for routing and display); the metastore row is the truth.
FIELDS: tuple[Field, ...] = (
    Field("version", "integer", "Version of this document's shape; a worker refuses one it does not know.", enum=(1,)),
    Field("kind", "string", "What to do: run one try of one task instance.", enum=(EXECUTE_TASK,)),
    Field("dag_id", "string", "The DAG.", max_length=MAX_ID_LENGTH),
    Field("task_id", "string", "The task.", max_length=MAX_ID_LENGTH),
    Field("run_id", "string", "The DAG run.", max_length=MAX_ID_LENGTH),
    Field(
        "map_index",
        "integer",
        "The instance of a mapped task; -1 for an unmapped task.",
        required=False,
        default=-1,
        minimum=-1,
    ),
    Field(
        "try_number",
        "integer",
        "The try to run (from 1); the worker claims the instance only while it is queued for this try.",
        minimum=1,
    ),
    Field(
        "dag_file",
        "string",
        "The DAG file, as a relative path inside the bundle (forward slashes, no '..').",
        max_length=MAX_PATH_LENGTH,
    ),
    Field(
        "bundle",
        "string",
        "What dag_file is relative to: the worker's DAGs folder, or Zonda's and its providers' example DAGs.",
        required=False,
        default=DAGS_FOLDER_BUNDLE,
        enum=BUNDLES,
    ),
    Field("queue", "string", "The queue the instance was sent to.", required=False, default="default", max_length=256),
    Field("pool", "string", "The instance's pool.", required=False, default="default_pool", max_length=256),
    Field("priority_weight", "integer", "The instance's priority.", required=False, default=1),
)
_BY_NAME = {field.name: field for field in FIELDS}


@dataclass(frozen=True)
class TaskWorkload:
    """A parsed, valid version-1 workload."""

    dag_id: str
    task_id: str
    run_id: str
    map_index: int
    try_number: int
    dag_file: str
    bundle: str = DAGS_FOLDER_BUNDLE
    queue: str = "default"
    pool: str = "default_pool"
    priority_weight: int = 1
    version: int = WORKLOAD_VERSION
    kind: str = EXECUTE_TASK

    def to_dict(self) -> dict[str, Any]:
        return {field.name: getattr(self, field.name) for field in FIELDS}

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True, separators=(",", ":"))

    def dag_path(self, settings: Settings) -> Path:
        """The DAG file on this machine; :class:`InvalidWorkload` when it is not a file inside the bundle."""
        roots = _bundle_roots(settings, self.bundle)
        for root in roots:
            real_root = root.resolve()
            path = (real_root / self.dag_file).resolve()
            if not path.is_relative_to(real_root):  # a symlink inside the bundle pointing out of it
                raise InvalidWorkload(
                    f"workload field 'dag_file': {self.dag_file!r} leads outside the {self.bundle} bundle "
                    f"({root}); a worker only runs DAG files inside it"
                )
            if path.is_file():
                return path
        # Not on this machine: the try fails with that reason in its log (a deployment problem users should see
        # in the run, not a workload to refuse silently).
        return (roots[0] if roots else Path(".")) / self.dag_file

    def to_workload(self, settings: Settings) -> Workload:
        """The executor's in-process :class:`~zonda.executors.base.Workload` (row ids unknown: looked up by key)."""
        from zonda.executors.base import Workload

        return Workload(
            ti_id=-1,
            dag_id=self.dag_id,
            run_id=self.run_id,
            task_id=self.task_id,
            map_index=self.map_index,
            try_number=self.try_number,
            fileloc=str(self.dag_path(settings)),
            queue=self.queue,
            priority=self.priority_weight,
            dag_run_id=-1,
        )


def _bundle_roots(settings: Settings, bundle: str) -> list[Path]:
    if bundle == DAGS_FOLDER_BUNDLE:
        return [settings.dags_folder]
    from zonda.dagbag import example_folders

    return example_folders()


# --- reading ----------------------------------------------------------------------------------------------------


def read_workload_text(value: str, stdin: Any = None) -> str:
    """The text ``--workload`` stands for: ``@path`` reads a file, ``-`` reads standard input, anything else is
    the JSON itself. Bounded to :data:`MAX_WORKLOAD_BYTES` before anything is parsed."""
    import sys

    if value == "-":
        data = (stdin or sys.stdin).read(MAX_WORKLOAD_BYTES + 1)
        source = "standard input"
    elif value.startswith("@"):
        path = Path(value[1:]).expanduser()
        try:
            with path.open("rb") as handle:
                raw = handle.read(MAX_WORKLOAD_BYTES + 1)
        except OSError as exc:
            raise InvalidWorkload(
                f"cannot read the workload file {str(path)!r}: {exc.strerror or exc}; pass --workload @FILE with a "
                "readable file, - for standard input, or the JSON itself"
            ) from None
        try:
            data = raw.decode("utf-8")
        except UnicodeDecodeError:
            raise InvalidWorkload(f"the workload file {str(path)!r} is not UTF-8 text; write UTF-8 JSON") from None
        source = f"file {str(path)!r}"
    else:
        data = value
        source = "--workload"
    if len(data.encode("utf-8", errors="replace")) > MAX_WORKLOAD_BYTES:
        raise InvalidWorkload(
            f"the workload in {source} is larger than {MAX_WORKLOAD_BYTES} bytes; a workload names a task "
            "instance and is a few hundred bytes, so this is not one"
        )
    return data


def parse_workload(text: str | bytes) -> TaskWorkload:
    """Validate ``text`` strictly and return the workload; :class:`InvalidWorkload` names the first problem."""
    if isinstance(text, bytes):
        try:
            text = text.decode("utf-8")
        except UnicodeDecodeError:
            raise InvalidWorkload("the workload is not UTF-8 text; send UTF-8 JSON") from None
    if len(text.encode("utf-8", errors="replace")) > MAX_WORKLOAD_BYTES:
        raise InvalidWorkload(f"the workload is larger than {MAX_WORKLOAD_BYTES} bytes; a workload is a small object")
    try:
        document = json.loads(text, object_pairs_hook=_no_duplicate_keys, parse_constant=_no_constant)
    except json.JSONDecodeError as exc:
        raise InvalidWorkload(
            f"the workload is not valid JSON ({exc.msg} at line {exc.lineno} column {exc.colno}); "
            "`zonda tasks execute --print-schema` shows its shape"
        ) from None
    return validate_workload(document)


def validate_workload(document: Any) -> TaskWorkload:
    """Check a decoded document against :data:`FIELDS` (version first, so an unknown version is reported as
    such rather than as a pile of field errors)."""
    if not isinstance(document, dict):
        raise InvalidWorkload(
            f"the workload must be a JSON object, not {_json_type(document)}; "
            "`zonda tasks execute --print-schema` shows its shape"
        )
    version = document.get("version")
    if "version" not in document:
        raise InvalidWorkload(f"workload field 'version' is missing; add \"version\": {WORKLOAD_VERSION}")
    if type(version) not in (int, float) or version != WORKLOAD_VERSION:
        raise InvalidWorkload(
            f"workload field 'version': {_shown(version)} is not a version this Zonda reads (it reads "
            f"{WORKLOAD_VERSION}); send a version-{WORKLOAD_VERSION} workload, or run the same Zonda version on "
            "the scheduler and the workers"
        )
    unknown = sorted(set(document) - set(_BY_NAME))
    if unknown:
        from zonda.suggestions import did_you_mean

        hint = did_you_mean(unknown[0], _BY_NAME)
        raise InvalidWorkload(
            f"workload field {unknown[0]!r} is not a field of version {WORKLOAD_VERSION}"
            + (f"; {hint}" if hint else f"; remove it (fields: {', '.join(_BY_NAME)})")
        )
    values: dict[str, Any] = {}
    for field in FIELDS:
        if field.name not in document:
            if field.required:
                raise InvalidWorkload(f"workload field {field.name!r} is missing; add it ({field.description})")
            values[field.name] = field.default
            continue
        values[field.name] = _check(field, document[field.name])
    path = values["dag_file"]
    problem = _dag_file_problem(path)
    if problem:
        raise InvalidWorkload(f"workload field 'dag_file': {path!r} {problem}")
    return TaskWorkload(**values)


def _check(field: Field, value: Any) -> Any:
    where = f"workload field {field.name!r}"
    if field.type == "integer":
        # JSON has one number type: 2.0 is the integer 2 (as JSON Schema's "integer" says); true is not.
        if type(value) is float and value.is_integer():
            value = int(value)
        if type(value) is not int:  # bool is an int in Python, not in JSON
            raise InvalidWorkload(f"{where} must be an integer, not {_json_type(value)} {_shown(value)}")
        if field.minimum is not None and value < field.minimum:
            raise InvalidWorkload(f"{where} must be at least {field.minimum}, not {value}")
        if value > MAX_INTEGER:
            raise InvalidWorkload(f"{where} must be at most {MAX_INTEGER}, not {value}")
    else:
        if not isinstance(value, str):
            raise InvalidWorkload(f"{where} must be a string, not {_json_type(value)} {_shown(value)}")
        if not value:
            raise InvalidWorkload(f"{where} must not be empty")
        if field.max_length is not None and len(value) > field.max_length:
            raise InvalidWorkload(f"{where} is longer than {field.max_length} characters")
        if any(ord(char) < 32 or ord(char) == 127 for char in value):
            raise InvalidWorkload(f"{where} contains a control character; ids and paths are printable text")
    if field.enum is not None and value not in field.enum:
        allowed = " or ".join(_shown(choice) for choice in field.enum)
        raise InvalidWorkload(f"{where}: {_shown(value)} is not allowed; use {allowed}")
    return value


def _dag_file_problem(path: str) -> str | None:
    if "\\" in path:
        return "uses a backslash; write the relative path with forward slashes"
    pure = PurePosixPath(path)
    if pure.is_absolute():
        return "is absolute; give the path relative to the bundle (e.g. 'team/etl.py')"
    if any(part == ".." for part in pure.parts):
        return "contains '..'; a workload only names files inside its bundle"
    if not path.endswith(".py"):
        return "is not a .py file; a DAG file is a Python file"
    return None


def _no_duplicate_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    document: dict[str, Any] = {}
    for key, value in pairs:
        if key in document:
            raise InvalidWorkload(f"workload field {key!r} appears twice; give each field once")
        document[key] = value
    return document


def _no_constant(name: str) -> Any:
    raise InvalidWorkload(f"the workload contains {name}, which is not JSON; use a number")


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    return "an object"


def _shown(value: Any) -> str:
    if isinstance(value, (dict, list)):
        return "{...}" if isinstance(value, dict) else "[...]"
    text = json.dumps(value)
    return text if len(text) <= 60 else text[:57] + "..."


# --- writing ----------------------------------------------------------------------------------------------------


def encode_workload(workload: Workload, settings: Settings, *, pool: str = "default_pool") -> TaskWorkload:
    """The public form of an executor's workload, for a worker on another machine: ``fileloc`` becomes a path
    relative to the DAGs folder (or the example DAGs). :class:`InvalidWorkload` when the file is in neither."""
    fileloc = Path(workload.fileloc).resolve()
    for bundle in BUNDLES:
        for root in _bundle_roots(settings, bundle):
            real_root = root.resolve()
            if fileloc.is_relative_to(real_root):
                document = TaskWorkload(
                    dag_id=workload.dag_id,
                    task_id=workload.task_id,
                    run_id=workload.run_id,
                    map_index=workload.map_index,
                    try_number=workload.try_number,
                    dag_file=fileloc.relative_to(real_root).as_posix(),
                    bundle=bundle,
                    queue=workload.queue,
                    pool=pool,
                    priority_weight=workload.priority,
                )
                return validate_workload(document.to_dict())  # what we send, the receiver accepts
    raise InvalidWorkload(
        f"the DAG file {workload.fileloc!r} of {workload.label} is neither in the DAGs folder "
        f"({settings.dags_folder}) nor in the example DAGs, so a worker cannot be told where to find it; "
        "keep DAG files inside [core] dags_folder"
    )


def json_schema() -> dict[str, Any]:
    """The JSON Schema (draft 2020-12) of the version-1 document, generated from :data:`FIELDS`."""
    properties: dict[str, Any] = {}
    for field in FIELDS:
        spec: dict[str, Any] = {"type": field.type, "description": field.description}
        if field.enum is not None:
            spec["enum"] = list(field.enum)
        if field.minimum is not None:
            spec["minimum"] = field.minimum
        if field.type == "integer":
            spec["maximum"] = MAX_INTEGER
        if field.type == "string":
            spec["minLength"] = 1
            spec["pattern"] = "^[^\\u0000-\\u001f\\u007f]*$"
        if field.max_length is not None:
            spec["maxLength"] = field.max_length
        if not field.required:
            spec["default"] = field.default
        properties[field.name] = spec
    dag_file = properties["dag_file"]
    # Relative, forward slashes, no '..' segment, a .py file: what _dag_file_problem checks.
    dag_file["allOf"] = [
        {"pattern": "^[^\\u0000-\\u001f\\u007f\\\\]*\\.py$"},
        {"not": {"pattern": "^/"}},
        {"not": {"pattern": "(^|/)\\.\\.(/|$)"}},
    ]
    del dag_file["pattern"]
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": f"urn:zonda:workload:{WORKLOAD_VERSION}",
        "title": f"Zonda workload, version {WORKLOAD_VERSION}",
        "description": "One try of one task instance, for `zonda tasks execute --workload`. "
        f"At most {MAX_WORKLOAD_BYTES} bytes of UTF-8 JSON; each key at most once.",
        "type": "object",
        "properties": properties,
        "required": [field.name for field in FIELDS if field.required],
        "additionalProperties": False,
    }
