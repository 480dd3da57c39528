"""``zonda connections add | list | get | delete | test | export | import``.

Nothing here prints a password: ``list`` and ``get`` show ``***`` for a set password and for sensitive extras.
``export`` is the exception, on purpose: it writes passwords decrypted, for moving connections to another
installation, and warns about it.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from zonda.cli._common import add_output_argument, command, print_rows, settings, subcommands
from zonda.exceptions import ZondaException

if TYPE_CHECKING:
    from zonda.config import Settings
    from zonda.connection import Connection
    from zonda.secrets.metastore import MetastoreBackend

MASK = "***"
COLUMNS = ["conn_id", "conn_type", "description", "host", "port", "schema", "login", "password", "extra"]
_FIELD_FLAGS = ("conn_host", "conn_login", "conn_password", "conn_schema", "conn_port", "conn_extra")


def register(parser: argparse.ArgumentParser) -> None:
    subs = subcommands(parser)

    add = command(subs, "add", _add, "Add a connection to the metastore (password and extras encrypted)")
    add.add_argument("conn_id", metavar="CONN_ID")
    source = add.add_mutually_exclusive_group(required=True)
    source.add_argument("--conn-uri", help="type://login:password@host:port/schema?key=value (percent-encoded)")
    source.add_argument("--conn-json", help='{"conn_type": ..., "host": ..., "password": ..., "extra": {...}}')
    source.add_argument("--conn-type", help="The conn type (e.g. postgres, http); then give the fields below")
    add.add_argument("--conn-host")
    add.add_argument("--conn-login")
    add.add_argument("--conn-password")
    add.add_argument("--conn-schema")
    add.add_argument("--conn-port", type=int)
    add.add_argument("--conn-extra", help="Extras as a JSON object")
    add.add_argument("--conn-description")

    listing = command(subs, "list", _list, "List the connections in the metastore (passwords hidden)")
    add_output_argument(listing)

    get = command(subs, "get", _get, "Show one connection, from wherever the lookup finds it (secrets hidden)")
    get.add_argument("conn_id", metavar="CONN_ID")
    add_output_argument(get)

    delete = command(subs, "delete", _delete, "Delete a connection from the metastore")
    delete.add_argument("conn_id", metavar="CONN_ID")

    test = command(subs, "test", _test, "Test a connection with its hook (needs [core] test_connection = enabled)")
    test.add_argument("conn_id", metavar="CONN_ID")

    export = command(subs, "export", _export, "Write the metastore's connections to a JSON file, passwords included")
    export.add_argument("file", metavar="FILE", help="Path of the file to write, or - for standard output")
    export.add_argument("--format", choices=("json",), default="json", help="File format (default: json)")

    imp = command(subs, "import", _import, "Add the connections of a JSON file written by `connections export`")
    imp.add_argument("file", metavar="FILE")
    imp.add_argument("--overwrite", action="store_true", help="Replace connections that already exist")


def _backend(current: Settings) -> MetastoreBackend:
    from zonda.cli._loading import open_metastore
    from zonda.secrets.metastore import MetastoreBackend

    return MetastoreBackend(open_metastore(current), current)


def masked_row(conn: Connection, *, password_set: bool | None = None, extra: Any = None) -> dict[str, Any]:
    """A connection as a row for output: password ``***`` when set, sensitive extras ``***``."""
    from zonda.masking import SecretsMasker, redact_url_secrets

    has_password = conn.password is not None if password_set is None else password_set
    shown_extra = SecretsMasker().redact(conn.extra) if extra is None else extra
    return {
        "conn_id": conn.conn_id,
        "conn_type": conn.conn_type,
        "description": conn.description,
        "host": redact_url_secrets(conn.host) if conn.host else conn.host,  # https://user:pw@host
        "port": conn.port,
        "schema": conn.schema,
        "login": conn.login,
        "password": MASK if has_password else None,
        "extra": shown_extra,
    }


def _print(rows: list[dict[str, Any]], columns: list[str], output: str) -> None:
    if output == "table":
        rows = [{**row, "extra": json.dumps(row["extra"]) if row.get("extra") else ""} for row in rows]
    print_rows(rows, columns, output)


# -- add ------------------------------------------------------------------------------------------------------


def _connection_from_args(args: argparse.Namespace) -> Connection:
    from zonda.connection import Connection

    given = [flag for flag in _FIELD_FLAGS if getattr(args, flag) is not None]
    if args.conn_type is None and given:
        flags = ", ".join("--" + flag.replace("_", "-") for flag in given)
        raise ZondaException(f"{flags} go with --conn-type; with --conn-uri or --conn-json put them in the value")
    if args.conn_uri is not None:
        conn = Connection.from_uri(args.conn_uri, conn_id=args.conn_id)
    elif args.conn_json is not None:
        conn = Connection.from_json(args.conn_json, conn_id=args.conn_id)
    else:
        conn = Connection(
            conn_id=args.conn_id,
            conn_type=args.conn_type,
            host=args.conn_host,
            login=args.conn_login,
            password=args.conn_password,
            schema=args.conn_schema,
            port=args.conn_port,
            extra=args.conn_extra or {},
        )
    if args.conn_description is not None:
        conn.description = args.conn_description
    conn.conn_id = args.conn_id
    return conn


def _add(args: argparse.Namespace) -> int:
    from zonda.identifiers import validate_conn_id

    validate_conn_id(args.conn_id)
    conn = _connection_from_args(args)
    _backend(settings()).save(conn)
    print(f"added connection {conn.conn_id} ({conn.conn_type})")
    return 0


# -- list / get -------------------------------------------------------------------------------------------


def _list(args: argparse.Namespace) -> int:
    from zonda.crypto import FernetKeyError
    from zonda.masking import SecretsMasker

    backend = _backend(settings())
    masker = SecretsMasker()
    rows = []
    for row in backend.rows():
        try:
            # The password is never decrypted for a listing: only whether one is set is shown.
            conn = backend.to_connection(row, password=False)
            extra = masker.redact(conn.extra)
        except FernetKeyError:
            conn = backend.to_connection(row, password=False, extra=False)
            extra = "(encrypted with a key not in [core] fernet_key)"
        rows.append(masked_row(conn, password_set=row.password is not None, extra=extra))
    _print(rows, COLUMNS, args.output)
    return 0


def _get(args: argparse.Namespace) -> int:
    from zonda.secrets import ConnectionLookup

    current = settings()
    lookup = ConnectionLookup(current, metastore=_backend(current).metastore)
    conn, where = lookup.find(args.conn_id)
    row = {**masked_row(conn), "source": where}
    _print([row], [*COLUMNS, "source"], args.output)
    return 0


# -- delete ---------------------------------------------------------------------------------------------------


def _delete(args: argparse.Namespace) -> int:
    from zonda.exceptions import ConnectionNotFound
    from zonda.secrets.environment import EnvironmentVariablesBackend

    try:
        _backend(settings()).delete(args.conn_id)
    except ConnectionNotFound as exc:
        env = EnvironmentVariablesBackend()
        if env.get_connection(args.conn_id) is not None:
            raise ConnectionNotFound(
                f"{exc}; it is defined by the environment variable {env.variable_name(args.conn_id)}, "
                "which only its environment can remove"
            ) from None
        raise
    print(f"deleted connection {args.conn_id}")
    return 0


# -- test -----------------------------------------------------------------------------------------------------


def _test(args: argparse.Namespace) -> int:
    from zonda.hooks.base import hook_class_for
    from zonda.masking import get_masker
    from zonda.secrets import ConnectionLookup

    current = settings()
    if str(current.get("core", "test_connection")).strip().lower() != "enabled":
        raise ZondaException(
            "testing connections is disabled: it makes this process connect to whatever host a connection "
            'names. Enable it with [core] test_connection = "enabled" in zonda.toml or '
            "ZONDA__CORE__TEST_CONNECTION=enabled"
        )
    lookup = ConnectionLookup(current)
    conn = lookup.get_connection(args.conn_id)
    hook_class = hook_class_for(conn.conn_type)
    if hook_class is None:
        print(
            f"no hook knows how to test conn type {conn.conn_type!r}; install the provider that defines it "
            "(see `zonda providers connection-types`)",
            file=sys.stderr,
        )
        return 1
    hook = hook_class(**{hook_class.conn_name_attr: args.conn_id})
    try:
        ok, message = hook.test_connection()
    except Exception as exc:
        ok, message = False, f"{type(exc).__name__}: {exc}"
    message = get_masker().redact_text(str(message))
    if ok:
        print(f"connection {args.conn_id} works: {message}")
        return 0
    print(f"connection {args.conn_id} failed: {message}", file=sys.stderr)
    return 1


# -- export / import ------------------------------------------------------------------------------------------


def _export(args: argparse.Namespace) -> int:
    backend = _backend(settings())
    data = {conn.conn_id: conn.to_dict() for conn in backend.list_connections()}
    text = json.dumps(data, indent=2, sort_keys=True) + "\n"
    if args.file == "-":
        sys.stdout.write(text)
        where = "standard output"
    else:
        path = Path(args.file)
        # Created readable by its owner only: it holds passwords.
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
        where = str(path)
        print(f"exported {len(data)} connection(s) to {where}")
    print(
        f"warning: {where} holds the passwords and extras of {len(data)} connection(s) in plain text; "
        "keep it private and delete it after importing",
        file=sys.stderr,
    )
    return 0


def _read_import_file(path: str) -> list[Connection]:
    from zonda.connection import Connection

    try:
        text = sys.stdin.read() if path == "-" else Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise ZondaException(f"cannot read {path}: {exc.strerror}") from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ZondaException(f"{path} is not valid JSON ({exc.msg} at line {exc.lineno})") from None
    if isinstance(data, dict):
        items = list(data.items())
    elif isinstance(data, list):
        items = [(item.get("conn_id") if isinstance(item, dict) else None, item) for item in data]
    else:
        raise ZondaException(f"{path} must hold a JSON object of conn_id -> connection, as `connections export` writes")
    from zonda.identifiers import InvalidIdentifier, validate_conn_id

    conns = []
    for conn_id, item in items:
        if not conn_id:
            raise ZondaException(f"{path}: every connection needs a conn_id")
        try:
            validate_conn_id(conn_id)  # every id checked before any is stored
        except InvalidIdentifier as exc:
            raise InvalidIdentifier(f"{path}: {exc}") from None
        if isinstance(item, str):
            conns.append(Connection.parse(item, conn_id=conn_id))
        else:
            body = {k: v for k, v in item.items() if k != "conn_id"} if isinstance(item, dict) else item
            conns.append(Connection.from_json(body, conn_id=conn_id))
    return conns


def _import(args: argparse.Namespace) -> int:
    conns = _read_import_file(args.file)
    backend = _backend(settings())
    existing = {row.conn_id for row in backend.rows()}
    added = replaced = skipped = 0
    for conn in conns:
        if conn.conn_id in existing and not args.overwrite:
            print(f"skipped {conn.conn_id}: it already exists (use --overwrite to replace it)")
            skipped += 1
            continue
        if backend.save(conn, overwrite=args.overwrite):
            replaced += 1
        else:
            added += 1
    print(f"imported {added + replaced} connection(s) ({added} added, {replaced} replaced, {skipped} skipped)")
    return 0
