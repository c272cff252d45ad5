"""CNI error codes (SPEC.md, "Error") and the exception that carries one to stdout.

Only `podnet.cni` and the agent's request handler know these numbers; the rest of podnet raises
its own narrow errors, which the handler maps to a code.
"""

from __future__ import annotations

from podnet.errors import PodnetError

# Codes 0-99 are reserved by the spec; 100+ are ours.
INCOMPATIBLE_VERSION = 1
UNSUPPORTED_FIELD = 2
UNKNOWN_CONTAINER = 3
INVALID_ENVIRONMENT = 4
IO_FAILURE = 5
DECODING_FAILURE = 6
INVALID_CONFIG = 7
TRY_AGAIN_LATER = 11
NOT_AVAILABLE = 50
LIMITED_CONNECTIVITY = 51
# podnet's own: the kernel refused a change, or the pod's network is not as recorded.
DATAPATH_FAILURE = 100
CHECK_FAILED = 101
INTERNAL = 999


class CniError(PodnetError):
    """A failure the plugin reports as the spec's error object, with a code from this module."""

    def __init__(self, code: int, msg: str, details: str = "") -> None:
        super().__init__(f"{msg}: {details}" if details else msg)
        self.code = code
        self.msg = msg
        self.details = details

    def to_json(self, cni_version: str) -> dict[str, object]:
        """The spec's error object; `details` only when there is something to add."""
        out: dict[str, object] = {"cniVersion": cni_version, "code": self.code, "msg": self.msg}
        if self.details:
            out["details"] = self.details
        return out
