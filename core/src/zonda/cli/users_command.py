"""``zonda users create | list | delete``: parse, call :mod:`zonda.operations.users`, print (tokens and grants:
:mod:`zonda.cli.users_access_command`).

``create --random-password`` prints the generated password once; without ``--password`` or
``--random-password`` the password is asked for on the terminal (never echoed), so it stays out of the shell's
history and the process list. Changes are audited as made by ``(cli)``.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from zonda.cli._common import add_output_argument, command, print_rows, settings, subcommands
from zonda.cli.users_access_command import register as register_access
from zonda.exceptions import ZondaException

COLUMNS = ["username", "role", "email", "created_at", "last_login_at"]
ROLES_HELP = "Viewer, User, Op or Admin"


def register(parser: argparse.ArgumentParser) -> None:
    subs = subcommands(parser)

    create = command(subs, "create", _create, "Create a web server user")
    create.add_argument("--username", "-u", required=True)
    create.add_argument("--role", "-r", required=True, help=f"The user's role: {ROLES_HELP}")
    create.add_argument("--email", "-e", help="The user's e-mail address")
    secret = create.add_mutually_exclusive_group()
    secret.add_argument("--password", "-p", help="The password (else asked for on the terminal)")
    secret.add_argument("--random-password", action="store_true", help="Make a random password and print it once")

    listing = command(subs, "list", _list, "List the web server's users")
    add_output_argument(listing)

    delete = command(subs, "delete", _delete, "Delete a web server user")
    delete.add_argument("username", metavar="USERNAME")
    register_access(subs)


def _engine() -> Any:
    from zonda.cli._loading import open_metastore

    return open_metastore(settings()).engine


def _ask_password(username: str) -> str:
    if not sys.stdin.isatty():
        raise ZondaException(f"no password for {username}: give --password P or --random-password")
    import getpass

    first = getpass.getpass(f"Password for {username}: ")
    if getpass.getpass("Repeat it: ") != first:
        raise ZondaException("the two passwords differ; run the command again")
    return first


def _create(args: argparse.Namespace) -> int:
    from zonda.operations.users import create_user, generate_password

    if args.random_password:
        password = generate_password()
    elif args.password is not None:
        password = args.password
    else:
        password = _ask_password(args.username)
    user = create_user(_engine(), args.username, args.role, password, email=args.email)
    print(f"created user {user.username} ({user.role})")
    if args.random_password:
        print(f"password: {password}")
        print("(shown once: keep it somewhere safe)")
    return 0


def _list(args: argparse.Namespace) -> int:
    from dataclasses import asdict

    from zonda.operations.users import list_users

    rows = [asdict(user) for user in list_users(_engine())]
    print_rows(rows, COLUMNS, args.output)
    return 0


def _delete(args: argparse.Namespace) -> int:
    from zonda.operations.users import delete_user

    delete_user(_engine(), args.username)
    print(f"deleted user {args.username}")
    return 0
