from __future__ import annotations

from collections.abc import Iterator

import pytest

from zonda.metastore.db import Metastore


@pytest.fixture
def store(metastore_url: str) -> Iterator[Metastore]:
    """An initialized metastore on each backend in turn."""
    metastore = Metastore(metastore_url)
    metastore.init()
    try:
        yield metastore
    finally:
        metastore.dispose()
