"""The store fixture: every contract test runs on every backend (SQLite; etcd where installed).

The etcd backend runs on one real etcd member per test session (127.0.0.1, free ports, a
temporary data directory), each test under its own key prefix, so tests see an empty store.
"""

import secrets
from collections.abc import Iterator
from pathlib import Path

import pytest

from etcd_cluster import local_cluster
from podnet.store import Store, open_store

BACKENDS = ["sqlite", pytest.param("etcd", marks=pytest.mark.etcd)]


@pytest.fixture(scope="session")
def etcd_endpoint(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """Name: etcd_endpoint. Scope: session. One etcd member for the session, as host:port."""
    with local_cluster(tmp_path_factory.mktemp("etcd"), 1) as cluster:
        yield cluster.members[0].endpoint


@pytest.fixture(params=BACKENDS)
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """Name: store_url. Scope: function. A fresh, empty store of each backend, as a URL."""
    if request.param == "etcd":
        endpoint = request.getfixturevalue("etcd_endpoint")
        return f"etcd://{endpoint}/test-{secrets.token_hex(6)}"
    return f"sqlite://{tmp_path}/state.db"


@pytest.fixture
def store(store_url: str) -> Iterator[Store]:
    """Name: store. Scope: function. Depends: store_url. The opened store, closed afterwards."""
    opened = open_store(store_url)
    try:
        yield opened
    finally:
        opened.close()
