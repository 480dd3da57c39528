"""``zonda users create-token | list-tokens | revoke-token`` and ``add-grant | list-grants | remove-grant``.

Parse, call :mod:`zonda.operations.api_tokens` / :mod:`zonda.operations.dag_grants`, print. ``create-token``
prints the token once, on stdout alone on its line, so a script can capture it; it is registered with this
process's masker first, so nothing else this process logs can show it. Changes are audited as made by ``(cli)``.
"""

from __future__ import annotations

import argparse
from datetime import UTC, datetime
from typing import Any

from zonda.cli._common import add_output_argument, command, print_rows, settings

TOKEN_COLUMNS = ["id", "username", "name", "status", "created_at", "expires_at", "last_used_at"]
GRANT_COLUMNS = ["id", "username", "kind", "pattern", "role"]


def register(subs: argparse._SubParsersAction) -> None:
    create = command(subs, "create-token", _create_token, "Create an API token for a user (printed once)")
    create.add_argument("username", metavar="USERNAME")
    create.add_argument("--name", "-n", help="What the token is for, shown by list-tokens (default: api)")
    create.add_argument(
        "--expires-in", type=float, metavar="DAYS", help="Days until it expires (default: [api] token_expiry_days)"
    )

    listing = command(subs, "list-tokens", _list_tokens, "List API tokens (never their secrets)")
    listing.add_argument("username", metavar="USERNAME", nargs="?", help="Only this user's tokens")
    add_output_argument(listing)

    revoke = command(subs, "revoke-token", _revoke_token, "Revoke an API token at once")
    revoke.add_argument("token_id", metavar="TOKEN_ID")

    grant = command(subs, "add-grant", _add_grant, "Narrow a user to DAGs with a tag or ids matching a glob")
    grant.add_argument("username", metavar="USERNAME")
    which = grant.add_mutually_exclusive_group(required=True)
    which.add_argument("--tag", help="DAGs carrying this tag")
    which.add_argument("--glob", help="DAGs whose id matches this glob (* and ?)")
    grant.add_argument("--role", "-r", help="The role on those DAGs, at most the user's own (default: the user's)")

    grants = command(subs, "list-grants", _list_grants, "List per-DAG grants")
    grants.add_argument("username", metavar="USERNAME", nargs="?", help="Only this user's grants")
    add_output_argument(grants)

    remove = command(subs, "remove-grant", _remove_grant, "Remove a per-DAG grant")
    remove.add_argument("grant_id", metavar="GRANT_ID", type=int)


def _engine() -> Any:
    from zonda.cli._loading import open_metastore

    return open_metastore(settings()).engine


def _create_token(args: argparse.Namespace) -> int:
    from zonda.masking import mask_secret
    from zonda.operations.api_tokens import create_token, expiry_days

    current = settings()
    days = expiry_days(
        args.expires_in,
        default_days=float(current.get("api", "token_expiry_days")),
        max_days=float(current.get("api", "token_max_expiry_days")),
    )
    made = create_token(_engine(), args.username, days=days, name=args.name)
    mask_secret(made.token)
    record = made.record
    print(f"created API token {record.id} ({record.name}) for {record.username}, expires {record.expires_at:%Y-%m-%d}")
    print(made.token)
    print("(shown once: keep it somewhere safe; send it as `Authorization: Bearer <token>`)")
    return 0


def _list_tokens(args: argparse.Namespace) -> int:
    from dataclasses import asdict

    from zonda.operations.api_tokens import list_tokens

    now = datetime.now(UTC)
    rows = [{**asdict(token), "status": token.status(now)} for token in list_tokens(_engine(), args.username)]
    print_rows(rows, TOKEN_COLUMNS, args.output)
    return 0


def _revoke_token(args: argparse.Namespace) -> int:
    from zonda.operations.api_tokens import revoke_token

    token = revoke_token(_engine(), args.token_id)
    print(f"revoked API token {token.id} ({token.name}) of {token.username}")
    return 0


def _add_grant(args: argparse.Namespace) -> int:
    from zonda.operations.dag_grants import add_grant

    kind, pattern = ("tag", args.tag) if args.tag is not None else ("glob", args.glob)
    grant = add_grant(_engine(), args.username, kind, pattern, role=args.role)
    role = grant.role or "their own role"
    print(f"grant {grant.id}: {grant.username} sees DAGs matching {kind} {pattern!r} with {role}")
    return 0


def _list_grants(args: argparse.Namespace) -> int:
    from dataclasses import asdict

    from zonda.operations.dag_grants import list_grants

    print_rows([asdict(g) for g in list_grants(_engine(), args.username)], GRANT_COLUMNS, args.output)
    return 0


def _remove_grant(args: argparse.Namespace) -> int:
    from zonda.operations.dag_grants import remove_grant

    remove_grant(_engine(), args.grant_id)
    print(f"removed grant {args.grant_id}")
    return 0
