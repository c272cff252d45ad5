"""Printing for people (tables, colours only on a terminal) and for programs (JSON, YAML, CSV)."""

from __future__ import annotations

import csv
import datetime
import json
import sys
from collections.abc import Sequence
from typing import Any


def is_tty() -> bool:
    return sys.stdout.isatty()


def age(since: datetime.datetime) -> str:
    """How long ago, as kubectl's AGE column: `7s`, `3m`, `5h`, `2d`."""
    seconds = max(0, int((datetime.datetime.now(datetime.UTC) - since).total_seconds()))
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= 2 * size:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


def print_json(doc: Any) -> None:
    json.dump(doc, sys.stdout, indent=2)
    sys.stdout.write("\n")


def print_csv(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> None:
    writer = csv.writer(sys.stdout, lineterminator="\n")
    writer.writerow(headers)
    writer.writerows(rows)


def print_table(headers: Sequence[str], rows: Sequence[Sequence[object]],
                title: str | None = None) -> None:
    """A rich table on a terminal; plain aligned columns (kubectl-style) otherwise."""
    if is_tty():
        from rich.console import Console
        from rich.table import Table

        table = Table(*headers, title=title, title_justify="left", box=None, header_style="bold")
        for row in rows:
            table.add_row(*(str(cell) for cell in row))
        Console().print(table)
        return
    if title:
        print(title)
    cells = [[str(h).upper() for h in headers], *([str(c) for c in row] for row in rows)]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]
    for row in cells:
        print("   ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip())


def print_marked(text: str) -> None:
    """Truth tables: `.` green and `X` red on a terminal."""
    if not is_tty():
        print(text)
        return
    from rich.console import Console
    from rich.text import Text

    out = Text()
    for ch in text:
        out.append(ch, style={"X": "bold red", ".": "green", "?": "yellow"}.get(ch))
    Console(highlight=False).print(out)
