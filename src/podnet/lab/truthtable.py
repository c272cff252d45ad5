"""A from x to table of booleans: what was expected, what was observed, where they differ.

Modelled on the Kubernetes e2e suite's TruthTable (test/e2e/network/netpol/truthtable.go):
rows are sources, columns destinations; a cell is allowed (`.`), blocked (`X`) or not
known yet (`?`). Unknown keys fail at once, so a typo in a test cannot pass silently.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence


class UnknownKey(KeyError):
    """A source or destination that the table does not have."""


class TruthTable:
    """Booleans for each ordered pair (from, to); cells start unknown unless a default is given."""

    def __init__(
        self, froms: Sequence[str], tos: Sequence[str] | None = None, default: bool | None = None
    ) -> None:
        self.froms: tuple[str, ...] = tuple(froms)
        self.tos: tuple[str, ...] = tuple(froms if tos is None else tos)
        self._to_set = frozenset(self.tos)
        self._values: dict[str, dict[str, bool]] = {
            f: (dict.fromkeys(self.tos, default) if default is not None else {}) for f in self.froms
        }

    def _row(self, from_: str) -> dict[str, bool]:
        try:
            return self._values[from_]
        except KeyError:
            raise UnknownKey(f"from-key {from_!r} not in table {list(self.froms)}") from None

    def _check_to(self, to: str) -> None:
        if to not in self._to_set:
            raise UnknownKey(f"to-key {to!r} not in table {list(self.tos)}")

    def set(self, from_: str, to: str, value: bool) -> None:
        row = self._row(from_)
        self._check_to(to)
        row[to] = value

    def set_all_from(self, from_: str, value: bool) -> None:
        """Every destination of one source (all egress of a pod)."""
        row = self._row(from_)
        for to in self.tos:
            row[to] = value

    def set_all_to(self, to: str, value: bool) -> None:
        """Every source towards one destination (all ingress of a pod)."""
        self._check_to(to)
        for row in self._values.values():
            row[to] = value

    def get(self, from_: str, to: str) -> bool:
        """The value of a pair; UnknownKey for a key not in the table, LookupError if unset."""
        row = self._row(from_)
        self._check_to(to)
        if to not in row:
            raise LookupError(f"{from_} -> {to}: no value")
        return row[to]

    def value(self, from_: str, to: str) -> bool | None:
        """The value of a pair, None while unknown."""
        row = self._row(from_)
        self._check_to(to)
        return row.get(to)

    def cells(self) -> Iterator[tuple[str, str, bool | None]]:
        """Every (from, to, value) in row order."""
        for from_ in self.froms:
            for to in self.tos:
                yield from_, to, self._values[from_].get(to)

    def is_complete(self) -> bool:
        return all(v is not None for _, _, v in self.cells())

    def compare(self, other: TruthTable) -> TruthTable:
        """A third table: True where both agree, False where not, unknown where either is."""
        if self.froms != other.froms or self.tos != other.tos:
            raise ValueError(
                f"cannot compare tables with different keys: {self.froms}x{self.tos} and "
                f"{other.froms}x{other.tos}"
            )
        result = TruthTable(self.froms, self.tos)
        for from_, to, mine in self.cells():
            theirs = other.value(from_, to)
            if mine is not None and theirs is not None:
                result.set(from_, to, mine == theirs)
        return result

    def pretty(self, indent: str = "") -> str:
        """The table as text, rows are sources: `.` allowed, `X` blocked, `?` unknown."""
        marks = {True: ".", False: "X", None: "?"}
        rows = [["-", *self.tos]]
        rows += [[f, *(marks[self._values[f].get(t)] for t in self.tos)] for f in self.froms]
        widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
        return "\n".join(
            indent + "  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip()
            for row in rows
        )

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, TruthTable):
            return NotImplemented
        return (self.froms, self.tos) == (other.froms, other.tos) and all(
            other.value(f, t) == v for f, t, v in self.cells()
        )

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"TruthTable(\n{self.pretty('  ')}\n)"
