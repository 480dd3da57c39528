"""``zonda webserver [--port N] [--host H]``: serve the web UI and API with waitress until SIGTERM / Ctrl+C.

Needs a migrated metastore (`zonda db init`) and at least one user (`zonda users create`); the session key is
made on first start in ``$ZONDA_HOME/webserver_secret_key`` unless ``[webserver] secret_key`` is set.
"""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

from zonda.cli._common import settings

if TYPE_CHECKING:
    from zonda.config import Settings


def register(parser: argparse.ArgumentParser) -> None:
    parser.set_defaults(handler=_webserver)
    parser.add_argument("--port", "-p", type=int, help="Port to listen on (default: [webserver] port, 8080)")
    parser.add_argument("--host", "-H", help="Address to listen on (default: [webserver] host, 127.0.0.1)")


def has_users(current: Settings) -> bool:
    from zonda.cli._loading import open_metastore
    from zonda.operations.users import list_users

    store = open_metastore(current)
    try:
        return bool(list_users(store.engine))
    finally:
        store.dispose()


def _webserver(args: argparse.Namespace) -> int:
    from zonda.services import ServiceGroup, configure_logging, stop_on_signals
    from zonda.web.launch import start_web_server

    current = settings()
    configure_logging(current)
    server = start_web_server(current, port=args.port, host=args.host)
    group = ServiceGroup(join_timeout=10.0)
    group.add("webserver", server.serve)
    with stop_on_signals(group.stop):
        group.start()
        print(f"Zonda web server: {server.url} (Ctrl+C or SIGTERM stops it)", flush=True)
        if not has_users(current):
            print(
                "No users yet: nobody can log in. Make one with: zonda users create --username NAME --role Admin "
                "--random-password",
                flush=True,
            )
        group.wait()
    group.shutdown()
    if group.failures:
        return 1
    print("Zonda web server stopped.", flush=True)
    return 0
