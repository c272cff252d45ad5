"""A separate process that uses IPAM as an agent would; the multi-process tests run many.

    worker.py churn URL NODE CLAIMS SECONDS ID   allocate/release for SECONDS, then release all
    worker.py grab URL NODE PREFIX               allocate and release until killed
    worker.py register URL NODE START            register NODE at time START, print its subnet

`churn` proves exclusivity independently of the store: holding an address means holding the
file CLAIMS/<ip>, created with O_EXCL; a second holder would find it there and fail.
"""

import os
import random
import sys
import time
from pathlib import Path

from podnet import ipam
from podnet.store import open_store


def churn(url: str, node: str, claims: Path, seconds: float, me: str) -> None:
    with open_store(url) as store:
        alloc = ipam.pod_allocator(store, ipam.node_lease(store, node))
        held: dict[ipam.Attachment, str] = {}
        count = 0
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            if held and (len(held) >= 4 or random.random() < 0.5):
                attachment = random.choice(list(held))
                os.unlink(claims / held.pop(attachment))
                alloc.release(attachment)
            else:
                attachment = ipam.Attachment(f"{me}-{count}")
                try:
                    ip = str(alloc.allocate(attachment))
                except ipam.RangeExhausted:
                    continue
                os.close(os.open(claims / ip, os.O_CREAT | os.O_EXCL))  # FileExistsError: dup
                held[attachment] = ip
                count += 1
        for attachment, ip in held.items():
            os.unlink(claims / ip)
            alloc.release(attachment)
        print(count)


def grab(url: str, node: str, prefix: str) -> None:
    with open_store(url) as store:
        alloc = ipam.pod_allocator(store, ipam.node_lease(store, node))
        print("ready", flush=True)
        n = 0
        while True:
            alloc.allocate(ipam.Attachment(f"{prefix}-{n}", "eth0"), pod=f"junk/{prefix}-{n}")
            if n % 3 == 0:
                alloc.release(ipam.Attachment(f"{prefix}-{n - 1}"))
            n += 1


def register(url: str, node: str, start: float) -> None:
    with open_store(url) as store:
        time.sleep(max(0.0, start - time.time()))
        print(ipam.register_node(store, node).subnet)


if __name__ == "__main__":
    verb, url, node, *rest = sys.argv[1:]
    if verb == "churn":
        churn(url, node, Path(rest[0]), float(rest[1]), rest[2])
    elif verb == "grab":
        grab(url, node, rest[0])
    else:
        register(url, node, float(rest[0]))
