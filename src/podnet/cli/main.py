"""Entry point of `podnet`: one subcommand module per area, each with `register(subparsers)`."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from types import ModuleType

from podnet.cli import agent, ipam, lab, policy, resources
from podnet.errors import PodnetError, UsageError

# Each module adds its subcommands; a handler takes the parsed args and returns the exit code.
COMMANDS: tuple[ModuleType, ...] = (policy, resources, ipam, agent, lab)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="podnet",
        description="A small, readable Kubernetes pod network, and a lab to run it in.",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log what happens")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for module in COMMANDS:
        module.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING,
        format="%(levelname)s: %(message)s",
        stream=sys.stderr,
    )
    try:
        code: int = args.handler(args)
    except UsageError as err:
        print(f"podnet: {err}", file=sys.stderr)
        return 2
    except PodnetError as err:
        print(f"podnet: {err}" if "\n" not in str(err) else str(err), file=sys.stderr)
        return 1
    except BrokenPipeError:
        return 0
    except KeyboardInterrupt:
        return 130
    return code


def run() -> None:
    sys.exit(main())
