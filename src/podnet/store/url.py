"""Opening a store from its URL: `--store URL`, else $PODNET_STORE, else the default file.

`sqlite:///var/lib/podnet/state.db` (absolute path: three slashes) is the embedded store;
`etcd://host:port,host:port[/prefix][?timeout=seconds&netns=path]` is an etcd cluster (every
member listed; keys under /podnet unless a prefix is given; `netns`: connect from inside
that network namespace, as the lab's CLI does). The default is
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
    if scheme == "etcd" and sep and rest:
        return _open_etcd(url, rest)
    raise Unavailable(f"{url}: not a store URL (want sqlite:///path/state.db or "
                      "etcd://host:port,host:port)")


def _open_etcd(url: str, rest: str) -> Store:
    from podnet.store.etcd import EtcdStore  # only etcd users load its HTTP client
    from podnet.store.etcd_client import DEFAULT_TIMEOUT, parse_endpoints

    rest, _, query = rest.partition("?")
    hosts, slash, prefix = rest.partition("/")
    options = dict(item.partition("=")[::2] for item in query.split("&") if item)
    try:
        timeout = float(options.pop("timeout", DEFAULT_TIMEOUT))
    except ValueError as err:
        raise Unavailable(f"{url}: timeout must be a number of seconds") from err
    netns = options.pop("netns", None)
    if options:
        raise Unavailable(f"{url}: unknown option {', '.join(options)} (want timeout=, netns=)")
    store = EtcdStore(parse_endpoints(hosts), "/" + prefix if slash and prefix else "/podnet",
                      url, timeout, netns)
    try:
        store.revision()  # as SQLite: a store that cannot be reached does not open
    except BaseException:
        store.close()
        raise
    return store
