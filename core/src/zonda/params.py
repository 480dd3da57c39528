"""DAG and task params with type validation of their defaults and of the conf a run is triggered with.

A deliberately small subset of JSON Schema (type, enum, bounds, lengths, pattern, array items), checked without
importing a schema library, so a DAG file with params stays cheap to parse.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Iterator, Mapping, MutableMapping
from typing import Any

from zonda.exceptions import ParamValidationError


class _NotSet:
    def __repr__(self) -> str:
        return "NOTSET"

    def __bool__(self) -> bool:
        return False


NOTSET: Any = _NotSet()

_TYPES: dict[str, tuple[type, ...]] = {
    "string": (str,),
    "integer": (int,),
    "number": (int, float),
    "boolean": (bool,),
    "array": (list, tuple),
    "object": (dict,),
    "null": (type(None),),
}


class Param:
    """A typed parameter: ``Param(5, type="integer", minimum=1)``. A Param without default is required."""

    def __init__(self, default: Any = NOTSET, description: str | None = None, **schema: Any) -> None:
        types = schema.get("type")
        for name in [types] if isinstance(types, str) else (types or []):
            if name not in _TYPES:
                raise ParamValidationError(f"unknown param type {name!r}; use one of {', '.join(_TYPES)}")
        self.value = default
        self.description = description
        self.schema = schema

    @property
    def has_value(self) -> bool:
        return self.value is not NOTSET

    def resolve(self, value: Any = NOTSET, *, name: str = "param") -> Any:
        """Validate ``value`` (or the default) and return it."""
        final = self.value if value is NOTSET else value
        if final is NOTSET:
            raise ParamValidationError(
                f"param {name!r} is required and has no default; pass it in the run's conf, "
                f"e.g. --conf '{{\"{name}\": ...}}'"
            )
        _check(final, self.schema, name)
        return final

    def dump(self) -> dict[str, Any]:
        return {
            "value": None if self.value is NOTSET else self.value,
            "has_default": self.value is not NOTSET,
            "description": self.description,
            "schema": self.schema,
        }

    def __repr__(self) -> str:
        return f"Param({self.value!r}, schema={self.schema!r})"


def _check(value: Any, schema: Mapping[str, Any], name: str) -> None:
    def fail(problem: str) -> None:
        raise ParamValidationError(f"param {name!r}: {problem} (got {value!r})")

    types = schema.get("type")
    if types is not None:
        names = [types] if isinstance(types, str) else list(types)
        ok = False
        for type_name in names:
            expected = _TYPES[type_name]
            if type_name in {"integer", "number"} and isinstance(value, bool):
                continue
            if isinstance(value, expected):
                ok = True
                break
        if not ok:
            fail(f"must be of type {' or '.join(names)}")
    if "enum" in schema and value not in schema["enum"]:
        fail(f"must be one of {schema['enum']!r}")
    if isinstance(value, int | float) and not isinstance(value, bool):
        if "minimum" in schema and value < schema["minimum"]:
            fail(f"must be >= {schema['minimum']}")
        if "maximum" in schema and value > schema["maximum"]:
            fail(f"must be <= {schema['maximum']}")
        if "exclusiveMinimum" in schema and value <= schema["exclusiveMinimum"]:
            fail(f"must be > {schema['exclusiveMinimum']}")
        if "exclusiveMaximum" in schema and value >= schema["exclusiveMaximum"]:
            fail(f"must be < {schema['exclusiveMaximum']}")
    if isinstance(value, str):
        if "minLength" in schema and len(value) < schema["minLength"]:
            fail(f"must be at least {schema['minLength']} characters")
        if "maxLength" in schema and len(value) > schema["maxLength"]:
            fail(f"must be at most {schema['maxLength']} characters")
        if "pattern" in schema and not re.search(schema["pattern"], value):
            fail(f"must match the pattern {schema['pattern']!r}")
    if isinstance(value, list | tuple):
        if "minItems" in schema and len(value) < schema["minItems"]:
            fail(f"must have at least {schema['minItems']} items")
        if "maxItems" in schema and len(value) > schema["maxItems"]:
            fail(f"must have at most {schema['maxItems']} items")
        items = schema.get("items")
        if isinstance(items, Mapping):
            for index, item in enumerate(value):
                _check(item, items, f"{name}[{index}]")
    if isinstance(value, dict) and "required" in schema:
        missing = [key for key in schema["required"] if key not in value]
        if missing:
            fail(f"is missing required keys {missing!r}")


class ParamsDict(MutableMapping[str, Any]):
    """A mapping of name -> Param. Plain values are wrapped in an untyped Param."""

    def __init__(self, values: Mapping[str, Any] | None = None) -> None:
        self._params: dict[str, Param] = {}
        for key, value in (values or {}).items():
            self[key] = value

    def __setitem__(self, key: str, value: Any) -> None:
        self._params[key] = value if isinstance(value, Param) else Param(value)

    def __getitem__(self, key: str) -> Any:
        return self._params[key].value

    def get_param(self, key: str) -> Param:
        return self._params[key]

    def __delitem__(self, key: str) -> None:
        del self._params[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._params)

    def __len__(self) -> int:
        return len(self._params)

    def merged(self, other: ParamsDict | Mapping[str, Any] | None) -> ParamsDict:
        result = ParamsDict()
        result._params = dict(self._params)
        if other:
            source = other._params if isinstance(other, ParamsDict) else ParamsDict(other)._params
            result._params.update(source)
        return result

    def validate_defaults(self) -> None:
        """Called when the DAG is defined: a default that violates its own schema is a DAG error."""
        for key, param in self._params.items():
            if param.has_value:
                param.resolve(name=key)

    def resolve(self, conf: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """The params a run sees: defaults overridden by ``conf``, each validated."""
        conf = conf or {}
        resolved = {
            key: copy.deepcopy(param.resolve(conf.get(key, NOTSET), name=key)) for key, param in self._params.items()
        }
        for key, value in conf.items():
            resolved.setdefault(key, value)
        return resolved

    def dump(self) -> dict[str, Any]:
        return {key: param.dump() for key, param in self._params.items()}

    def __repr__(self) -> str:
        return f"ParamsDict({self._params!r})"
