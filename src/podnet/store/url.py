"""Opening a store from its URL: `--store URL`, else $PODNET_STORE, else the default file.

`sqlite:///var/lib/podnet/state.db` (absolute path: three slashes) is the embedded store;
`etcd://host:port,host:port` is reserved for the etcd backend. The default is
/var/lib/podnet/state.db for root (where a node's agent keeps its state) and
$XDG_STATE_HOME/podnet/state.db (~/.local/state/...) for other users.
"""

from __future__ import annotations

import os
from pathlib import Path

from podnet.store.base import Store, Unavailable
from podnet.store.sqlite import SqliteStore

ENV = "PODNET_STORE"


def default_url() -> str:
    if os.geteuid() == 0:
        return "sqlite:///var/lib/podnet/state.db"
    state = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return f"sqlite://{Path(state).absolute() / 'podnet' / 'state.db'}"


def store_url(url: str | None = None) -> str:
    """The URL to use: the one given, else $PODNET_STORE, else the default."""
    return url or os.environ.get(ENV) or default_url()


def open_store(url: str | None = None) -> Store:
    """The store at `url` (see `store_url`); Unavailable if it cannot be opened."""
    url = store_url(url)
    scheme, sep, rest = url.partition("://")
    if scheme == "sqlite" and sep and rest:
        return SqliteStore(Path(rest), url)
    if scheme == "etcd":
        raise Unavailable(f"{url}: the etcd backend is not available yet")
    raise Unavailable(f"{url}: not a store URL (want sqlite:///path/state.db)")
