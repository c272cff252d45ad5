"""A watch sees every committed change exactly once, in order, while writers are killed."""

import random
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from podnet.store import Event, EventType, Key, Store, Watch

WRITER = str(Path(__file__).with_name("writer.py"))


def replay(start: dict[Key, object], events: list[Event]) -> dict[Key, object]:
    state = dict(start)
    for e in events:
        if e.type is EventType.DELETED:
            del state[e.resource.key]
        else:
            state[e.resource.key] = e.resource.body
    return state


@pytest.mark.slow
def test_watch_across_killed_writers(store: Store, store_url: str, tmp_path: Path) -> None:
    store.create(Key("Pod", "crash", "before"), {"metadata": {"name": "before"}})
    at_r = store.list("Pod")
    seen: list[Event] = []
    stop = threading.Event()
    give_up = threading.Timer(120, stop.set)
    give_up.start()

    def follow() -> None:
        for event in store.watch(Watch(at_r.revision, frozenset({"Pod"})), stop=stop, poll=0.005):
            seen.append(event)
            if event.resource.name == "done":
                stop.set()

    watcher = threading.Thread(target=follow)
    watcher.start()
    log = tmp_path / "revisions.log"
    rng = random.Random(3)
    for trial in range(5):
        writer = subprocess.Popen([sys.executable, WRITER, store_url, str(log), f"w{trial}"])
        while not log.exists() or log.read_text().count("\n") < 20 * (trial + 1):
            time.sleep(0.01)
        time.sleep(rng.uniform(0, 0.05))
        writer.send_signal(signal.SIGKILL)
        writer.wait()
    subprocess.run([sys.executable, WRITER, store_url, str(log), "last", "50"], check=True)
    store.create(Key("Pod", "crash", "done"), {"metadata": {"name": "done"}})
    watcher.join(timeout=130)
    give_up.cancel()
    stop.set()
    assert not watcher.is_alive()

    revisions = [e.revision for e in seen]
    assert revisions == list(range(at_r.revision + 1, store.revision() + 1))
    committed = {int(line) for line in log.read_text().split()}
    assert committed <= set(revisions)
    start = {r.key: r.body for r in at_r.items}
    assert replay(start, seen) == {r.key: r.body for r in store.list("Pod").items}
