"""Alembic environment of the metastore, configured from code: see ``Metastore.alembic_config``.

The caller hands over an open connection in ``config.attributes["connection"]`` so migrations run on the
engine Zonda built (drivers, pragmas, error messages); a ``sqlalchemy.url`` main option works as a fallback.
SQLite cannot ``ALTER`` most things, so migrations run in batch mode there.
"""

from __future__ import annotations

from alembic import context
from sqlalchemy.engine import Connection

# The Core tables are the schema (``Base.metadata`` of the models is this same object); no ORM needed here.
from zonda.metastore.tables import metadata

config = context.config
target_metadata = metadata


def _configure(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


def run_offline() -> None:
    context.configure(
        url=config.get_main_option("sqlalchemy.url"),
        target_metadata=target_metadata,
        literal_binds=True,
        render_as_batch=True,
    )
    with context.begin_transaction():
        context.run_migrations()


def run_online() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        _configure(connection)
        return
    from zonda.metastore.engine import make_engine

    engine = make_engine(config.get_main_option("sqlalchemy.url") or "")
    try:
        with engine.connect() as conn:
            _configure(conn)
    finally:
        engine.dispose()


if context.is_offline_mode():
    run_offline()
else:
    run_online()
