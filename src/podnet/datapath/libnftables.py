"""libnftables in this process: nft's own parser and batches, without starting `nft`.

Starting `nft -j -f -` costs 5-30 ms here (a process and its libraries); the same batch
through libnftables takes ~0.2 ms, and a CNI ADD that programs its pod's policy waits for it.
A context's netlink socket belongs to the network namespace of the thread that made it, so
there is one context per namespace, each behind a lock (a context is not thread-safe).
Debian's python3-nftables binds the same library but cannot be imported from a virtualenv;
these are the few calls podnet needs.
"""

from __future__ import annotations

import ctypes
import functools
import os
import threading

from podnet.datapath.netns import DatapathError, current_netns

_OUTPUT_JSON = 1 << 4  # NFT_CTX_OUTPUT_JSON: JSON out; JSON batches in


class Context:
    """One libnftables context, in the namespace of the thread that made it."""

    def __init__(self, lib: ctypes.CDLL) -> None:
        self._lib = lib
        self._ctx = lib.nft_ctx_new(0)
        if not self._ctx:
            raise DatapathError("libnftables: cannot create a context")
        lib.nft_ctx_buffer_output(self._ctx)
        lib.nft_ctx_buffer_error(self._ctx)
        lib.nft_ctx_output_set_flags(self._ctx, _OUTPUT_JSON)
        self._lock = threading.Lock()

    def run(self, command: str) -> tuple[bool, str, str]:
        """`command` (nft's words, or a JSON batch): whether it succeeded, output, errors."""
        with self._lock:
            status = self._lib.nft_run_cmd_from_buffer(self._ctx, command.encode())
            out = self._lib.nft_ctx_get_output_buffer(self._ctx) or b""
            err = self._lib.nft_ctx_get_error_buffer(self._ctx) or b""
        return status == 0, out.decode(), err.decode()


@functools.cache
def _library() -> ctypes.CDLL | None:
    try:
        lib = ctypes.CDLL("libnftables.so.1")
    except OSError:
        return None
    ctx = ctypes.c_void_p
    lib.nft_ctx_new.argtypes, lib.nft_ctx_new.restype = [ctypes.c_uint32], ctx
    lib.nft_ctx_buffer_output.argtypes = [ctx]
    lib.nft_ctx_buffer_error.argtypes = [ctx]
    lib.nft_ctx_output_set_flags.argtypes = [ctx, ctypes.c_uint]
    lib.nft_run_cmd_from_buffer.argtypes = [ctx, ctypes.c_char_p]
    for getter in (lib.nft_ctx_get_output_buffer, lib.nft_ctx_get_error_buffer):
        getter.argtypes, getter.restype = [ctx], ctypes.c_char_p
    return lib


_contexts: dict[tuple[int, int], Context] = {}
_contexts_lock = threading.Lock()


def context() -> Context | None:
    """The context of the calling thread's network namespace; None without libnftables."""
    lib = _library()
    if lib is None:
        return None
    st = os.stat(current_netns())
    with _contexts_lock:
        found = _contexts.get((st.st_dev, st.st_ino))
        if found is None:
            found = _contexts[st.st_dev, st.st_ino] = Context(lib)
    return found
