"""Rendered HTML of a markdown table, read back: its tags, the text of each row's cells, and the
text outside the table (a preview's footer)."""

from __future__ import annotations

from html.parser import HTMLParser
from typing import Any


class RenderedTable(HTMLParser):
    """The tags of rendered HTML, the text of each row's cells, and the text outside cells."""

    def __init__(self) -> None:
        super().__init__()
        self.tags: set[str] = set()
        self.rows: list[list[str]] = []
        self.cell: str | None = None
        self.outside = ""

    def handle_starttag(self, tag: str, attrs: Any) -> None:
        self.tags.add(tag)
        if tag == "tr":
            self.rows.append([])
        elif tag in ("td", "th"):
            self.cell = ""

    def handle_endtag(self, tag: str) -> None:
        if tag in ("td", "th") and self.cell is not None:
            self.rows[-1].append(self.cell)
            self.cell = None

    def handle_data(self, data: str) -> None:
        if self.cell is not None:
            self.cell += data
        else:
            self.outside += data
