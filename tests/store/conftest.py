"""The store fixture: every contract test runs on every backend (etcd joins the list later)."""

from collections.abc import Iterator
from pathlib import Path

import pytest

from podnet.store import Store, open_store

BACKENDS = ["sqlite"]


@pytest.fixture(params=BACKENDS)
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """Name: store_url. Scope: function. A fresh, empty store of each backend, as a URL."""
    return f"sqlite://{tmp_path}/state.db"


@pytest.fixture
def store(store_url: str) -> Iterator[Store]:
    """Name: store. Scope: function. Depends: store_url. The opened store, closed afterwards."""
    opened = open_store(store_url)
    try:
        yield opened
    finally:
        opened.close()
