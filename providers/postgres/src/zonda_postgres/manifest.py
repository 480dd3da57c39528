"""The manifest of Zonda's postgres provider: names and dotted paths only.

Discovery reads this dict through the ``zonda.providers`` entry point, so this module must stay data: it imports
nothing (no psycopg, no hook module). The classes it names are imported on first use.
"""

from __future__ import annotations

from typing import Any

manifest: dict[str, Any] = {
    "name": "postgres",
    "package": "zonda-provider-postgres",
    "version": "0.1.0",
    "description": "PostgreSQL (psycopg 3): PostgresHook, SQLExecuteQueryOperator, SqlSensor.",
    "zonda_versions": ">=0.1,<1",
    "connection_types": [
        {
            "conn_type": "postgres",
            "hook": "zonda_postgres.hooks:PostgresHook",
            "display_name": "Postgres",
            "fields": {
                "host": {"label": "Host", "placeholder": "localhost"},
                "port": {"label": "Port", "type": "integer", "default": 5432},
                "schema": {"label": "Database", "help": "The database to connect to", "placeholder": "postgres"},
                "login": {"label": "Login"},
                "password": {"label": "Password", "type": "password", "secret": True},
                "extra.sslmode": {
                    "label": "SSL mode",
                    "help": "libpq sslmode",
                    "placeholder": "disable | allow | prefer | require | verify-ca | verify-full",
                },
                "extra.sslrootcert": {
                    "label": "SSL root certificate",
                    "help": "Path to the CA certificate(s) the server certificate is checked against",
                },
                "extra.options": {
                    "label": "Options",
                    "help": "Command-line options sent to the server at connection start",
                    "placeholder": "-c search_path=myschema",
                },
                "extra.application_name": {
                    "label": "Application name",
                    "help": "Shown in pg_stat_activity",
                    "placeholder": "zonda",
                },
                "extra.connect_timeout": {
                    "label": "Connect timeout",
                    "type": "integer",
                    "help": "Seconds to wait for a connection (empty: wait indefinitely)",
                },
            },
        }
    ],
    "hooks": ["zonda_postgres.hooks:PostgresHook"],
    "operators": ["zonda_postgres.operators:SQLExecuteQueryOperator"],
    "sensors": ["zonda_postgres.sensors:SqlSensor"],
    "triggers": [],
    "transfers": [],
    "log_handlers": [],
    "executors": [],
}
