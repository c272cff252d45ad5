"""`podnet-cni`: the executable a container runtime runs for each pod attachment.

It validates the invocation (environment and configuration) as the spec requires, forwards it
to the node agent over the unix socket named in the configuration, and prints the agent's answer.
Stdout belongs to the protocol: a result, or the spec's error object and a non-zero exit; never a
traceback. Standard library only, so that it starts in a few milliseconds.
"""

from __future__ import annotations

import posix
import sys

from podnet.cni import errors, leanjson, wire
from podnet.cni.errors import CniError
from podnet.cni.types import CURRENT_VERSION, SUPPORTED_VERSIONS, CniArgs, NetConf

TYPE_CHECKING = False  # typing itself is not imported at run time: it costs start-up time
if TYPE_CHECKING:
    from collections.abc import Mapping
    from typing import BinaryIO, TextIO

AGENT_TIMEOUT = 120.0  # seconds; an ADD queued behind many others still answers well within this


def read_config(stdin: BinaryIO) -> tuple[str, object]:
    """The configuration as the runtime wrote it, and decoded."""
    try:
        text = stdin.read().decode()
    except OSError as err:
        raise CniError(errors.IO_FAILURE, "error reading from stdin", str(err)) from err
    except UnicodeDecodeError as err:
        raise CniError(errors.DECODING_FAILURE, "network config is not UTF-8", str(err)) from err
    try:
        return text, leanjson.loads(text)
    except ValueError as err:
        raise CniError(errors.DECODING_FAILURE, "error decoding network config", str(err)) from err


def version_answer(stdin: BinaryIO) -> dict[str, object]:
    """VERSION echoes the caller's cniVersion when it sent one (SPEC "VERSION Success")."""
    asked = CURRENT_VERSION
    if not stdin.isatty():
        try:
            conf = leanjson.loads(stdin.read().decode() or "{}")
            if isinstance(conf, dict) and isinstance(conf.get("cniVersion"), str):
                asked = conf["cniVersion"]
        except (OSError, ValueError):
            pass  # skel ignores VERSION's stdin altogether; so do we when it is unreadable
    return {"cniVersion": asked, "supportedVersions": list(SUPPORTED_VERSIONS)}


def forward(args: CniArgs, conf: NetConf, config_text: str) -> tuple[int, bytes]:
    """Ask the agent; an agent that is not there is code 50 for STATUS, 11 (retry) otherwise."""
    request = wire.encode_request(args.to_wire(), config_text)
    try:
        return wire.call(conf.socket, request, AGENT_TIMEOUT)
    except (FileNotFoundError, ConnectionRefusedError) as err:
        code = errors.NOT_AVAILABLE if args.command == "STATUS" else errors.TRY_AGAIN_LATER
        raise CniError(code, "podnet agent is not running", f"{conf.socket}: {err}") from err
    except TimeoutError as err:
        raise CniError(errors.TRY_AGAIN_LATER, "podnet agent did not answer", conf.socket) from err
    except OSError as err:
        raise CniError(errors.IO_FAILURE, "cannot talk to the podnet agent", str(err)) from err
    except wire.MalformedMessage as err:
        raise CniError(errors.INTERNAL, "bad answer from the podnet agent", str(err)) from err


def main(env: Mapping[str, str], stdin: BinaryIO, stdout: TextIO) -> int:
    """Run one CNI invocation; returns the exit code."""
    cni_version = CURRENT_VERSION
    try:
        args = CniArgs.from_env(env)
        if args.command == "VERSION":
            stdout.write(leanjson.dumps(version_answer(stdin)))
            return 0
        text, raw = read_config(stdin)
        conf = NetConf.parse(raw, args.command)
        cni_version = conf.cni_version
        code, output = forward(args, conf, text)
    except CniError as err:
        stdout.write(leanjson.dumps(err.to_json(cni_version)))
        return 1
    except Exception as err:  # the protocol forbids a traceback on stdout
        print(f"podnet-cni: {type(err).__name__}: {err}", file=sys.stderr)
        internal = CniError(errors.INTERNAL, "internal error", str(err))
        stdout.write(leanjson.dumps(internal.to_json(cni_version)))
        return 1
    stdout.write(output.decode())
    return 0 if code == 0 else 1


def cni_environment() -> dict[str, str]:
    """The `CNI_*` variables, read from `posix`: importing `os` costs 15% of the start-up."""
    return {
        key.decode(): value.decode("utf-8", "surrogateescape")
        for key, value in posix.environ.items()
        if key.startswith(b"CNI_")
    }


def run() -> None:
    sys.exit(main(cni_environment(), sys.stdin.buffer, sys.stdout))


if __name__ == "__main__":
    run()
