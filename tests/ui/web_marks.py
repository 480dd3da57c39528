"""Marks shared by the web server tests (a conftest cannot be imported by test modules, this module can: pytest
puts this folder on ``sys.path``, as it does for ``tests/integration/scheduler_helpers.py``)."""

from __future__ import annotations

import pytest

SQLITE_ONLY = pytest.mark.parametrize("web_db_url", ["sqlite"], indirect=True)
"""SQLite only, stated: the default for web tests (``database_dependent`` ones run on PostgreSQL too); kept on tests
that say so explicitly."""
