"""Reads back what a report page shows: its grids' cells and row labels, its text, its tags
and the references a browser would follow."""

from __future__ import annotations

import re
from html.parser import HTMLParser

# Anything that could make a browser fetch: a URL scheme, a protocol-relative URL, CSS url().
EXTERNAL = re.compile(r"https?:|ftp:|file:|//|url\(|@import", re.IGNORECASE)
DATA_URI = re.compile(r'"data:[^"]*"')


class PageReader(HTMLParser):
    """`grids`: probe -> rows of cell classes; `row_labels`: probe -> the rows' labels;
    `lists`: the list tables' body rows, as their cells' text; `text`: the visible text;
    `elements`: the tags; `sources`: src and href values."""

    def __init__(self, page: str) -> None:
        super().__init__()
        self.grids: dict[str, list[list[str]]] = {}
        self.row_labels: dict[str, list[str]] = {}
        self.text: list[str] = []
        self.elements: list[str] = []
        self.sources: list[str] = []
        self.lists: list[list[str]] = []
        self._list_row: list[str] | None = None
        self._grid: str | None = None
        self._body = False
        self._label: list[str] | None = None
        self._row: list[str] = []
        self.feed(page)
        self.close()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.elements.append(tag)
        self.sources += [v for k, v in attrs if k in ("src", "href") and v is not None]
        css = dict(attrs).get("class") or ""
        if tag == "tr" and self._grid is None:
            self._list_row = []
        elif tag == "td" and self._list_row is not None:
            self._list_row.append("")
        if tag == "table" and css == "grid":
            self._grid = dict(attrs).get("data-probe") or ""
            self.grids[self._grid], self.row_labels[self._grid] = [], []
        elif self._grid is None:
            return
        elif tag == "tbody":
            self._body = True
        elif tag == "tr":
            self._row = []
        elif tag == "td":
            self._row.append(css)
        elif tag == "th" and self._body:
            self._label = []

    def handle_endtag(self, tag: str) -> None:
        if tag == "tr" and self._list_row is not None:
            if self._list_row:  # a header row has no td
                self.lists.append(self._list_row)
            self._list_row = None
        if self._grid is None:
            return
        if tag == "th" and self._label is not None:
            self.row_labels[self._grid].append("".join(self._label).rsplit(" ", 1)[0])
            self._label = None
        elif tag == "tr" and self._body:
            self.grids[self._grid].append(self._row)
        elif tag == "table":
            self._grid, self._body = None, False

    def handle_data(self, data: str) -> None:
        self.text.append(data)
        if self._list_row:
            self._list_row[-1] += data
        if self._label is not None:
            self._label.append(data)

    @property
    def all_text(self) -> str:
        return "".join(self.text)


def external_references(page: str) -> list[str]:
    """Every fetchable reference of the page, `data:` URIs left out (their base64 may hold
    '//' without meaning anything)."""
    found: list[str] = EXTERNAL.findall(DATA_URI.sub('""', page))
    return found
