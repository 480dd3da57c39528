"""``zonda connections add | list | get | delete | test | export | import``.

Nothing here prints a password: ``list`` and ``get`` show ``***`` for a set password and for sensitive extras.
``export`` is the exception, on purpose: it writes passwords decrypted, for moving connections to another
installation, and warns about it.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from zonda.cli._common import add_output_argument, command, print_rows, settings, subcommands
from zonda.cli._loading import opened_metastore
from zonda.exceptions import ZondaException

if TYPE_CHECKING:
    from zonda.connection import Connection
    from zonda.operations.connections import ConnectionRecord

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


def _row(record: ConnectionRecord) -> dict[str, Any]:
    return record.as_dict()


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
    from zonda.operations.connections import add_connection

    validate_conn_id(args.conn_id)
    conn = _connection_from_args(args)
    current = settings()
    with opened_metastore(current) as metastore:
        add_connection(metastore, current, conn)
    print(f"added connection {conn.conn_id} ({conn.conn_type})")
    return 0


# -- list / get -------------------------------------------------------------------------------------------


def _list(args: argparse.Namespace) -> int:
    from zonda.operations.connections import list_connections

    current = settings()
    with opened_metastore(current) as metastore:
        records = list_connections(metastore, current)
    _print([_row(r) for r in records], COLUMNS, args.output)
    return 0


def _get(args: argparse.Namespace) -> int:
    from zonda.operations.connections import get_connection

    current = settings()
    with opened_metastore(current) as metastore:
        record = get_connection(current, args.conn_id, metastore=metastore)
    _print([_row(record)], [*COLUMNS, "source"], args.output)
    return 0


# -- delete ---------------------------------------------------------------------------------------------------


def _delete(args: argparse.Namespace) -> int:
    from zonda.operations.connections import delete_connection

    current = settings()
    with opened_metastore(current) as metastore:
        delete_connection(metastore, current, args.conn_id)
    print(f"deleted connection {args.conn_id}")
    return 0


# -- test -----------------------------------------------------------------------------------------------------


def _test(args: argparse.Namespace) -> int:
    from zonda.operations.connections import check_connection

    result = check_connection(settings(), args.conn_id)
    if result.ok:
        print(f"connection {args.conn_id} works: {result.message}")
        return 0
    print(f"connection {args.conn_id} failed: {result.message}", file=sys.stderr)
    return 1


# -- export / import ------------------------------------------------------------------------------------------


def _export(args: argparse.Namespace) -> int:
    from zonda.operations.connections import export_connections

    current = settings()
    with opened_metastore(current) as metastore:
        data = export_connections(metastore, current)
    text = json.dumps(data, indent=2, sort_keys=True) + "\n"
    if args.file == "-":
        sys.stdout.write(text)
        where = "standard output"
    else:
        from zonda.private_files import write_private_file

        path = Path(args.file)
        try:
            write_private_file(path, text)  # owner-only whatever an existing file's mode was: it holds passwords
        except OSError as exc:
            raise ZondaException(f"cannot write {path}: {exc.strerror}") from None
        where = str(path)
        print(f"exported {len(data)} connection(s) to {where}")
    print(
        f"warning: {where} holds the passwords and extras of {len(data)} connection(s) in plain text; "
        "keep it private and delete it after importing",
        file=sys.stderr,
    )
    return 0


def _read_import_file(path: str) -> list[Connection]:
    from zonda.json_input import read_json_file
    from zonda.operations.connections import connections_from_data

    data = read_json_file(path, '{"conn_id": {"conn_type": "postgres", "host": "..."}}')
    return connections_from_data(data, path)


def _import(args: argparse.Namespace) -> int:
    from zonda.operations.connections import import_connections

    conns = _read_import_file(args.file)
    current = settings()
    with opened_metastore(current) as metastore:
        summary = import_connections(metastore, current, conns, overwrite=args.overwrite)
    for conn_id in summary.skipped:
        print(f"skipped {conn_id}: it already exists (use --overwrite to replace it)")
    added, replaced, skipped = len(summary.added), len(summary.replaced), len(summary.skipped)
    print(f"imported {added + replaced} connection(s) ({added} added, {replaced} replaced, {skipped} skipped)")
    return 0
