"""A separate process that writes resources until killed (or for N writes), logging revisions.

    writer.py URL LOG PREFIX [COUNT]

Each committed write's revision is appended to LOG (flushed) right after the commit returns,
so the log lists writes known to be committed; a kill may leave one more unlogged.
"""

import random
import sys

from podnet.store import Key, NotFound, open_store


def main(url: str, log_path: str, prefix: str, count: int | None) -> None:
    with open_store(url) as store, open(log_path, "a") as log:
        n = 0
        while count is None or n < count:
            key = Key("Pod", "crash", f"{prefix}-{random.randrange(8)}")
            body = {"kind": "Pod", "metadata": {"name": key.name, "labels": {"n": str(n)}}}
            try:
                revision = (store.delete(key) if random.random() < 0.3
                            else store.update(key, body)).revision
            except NotFound:
                revision = store.create(key, body).revision
            log.write(f"{revision}\n")
            log.flush()
            n += 1


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]) if len(sys.argv) > 4 else None)
