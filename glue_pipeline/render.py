"""Text from customers' tenants and from the store, rendered safely: as markdown table cells
(Dagster previews and checks, CLI tables) and as single terminal or log lines.

A tenant, user, organization or contact name is data: it must not add table rows, images,
links or HTML to markdown, nor move the cursor, clear the screen, retitle the terminal or
reorder text when printed (ANSI/OSC escape codes, bidi overrides, line breaks)."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import pandas as pd

# Line breaks and tabs become a space; every other control character is removed: C0 (ESC
# included), DEL, C1 (U+009B and U+009D start escape codes too), bidi marks, embeddings,
# overrides and isolates, and invisible characters (zero-width space, word joiner, BOM).
_BREAKS = "\t\n\x0b\x0c\r\x85\u2028\u2029"
_CONTROLS = [*range(0x20), 0x7F, *range(0x80, 0xA0), 0x200B, 0x200E, 0x200F, *range(0x202A, 0x202F),
             *range(0x2060, 0x2065), *range(0x2066, 0x206A), 0x2028, 0x2029, 0xFEFF]
_TERMINAL = {code: " " if chr(code) in _BREAKS else None for code in _CONTROLS}
# CommonMark/GFM honour a backslash before any ASCII punctuation. Escaped: the escape itself,
# the cell separator, what opens a link or an image (`[`: then `!` stays plain), an autolink or
# HTML (`<`), an entity (`&`) and a code span (inside which escapes would show). Nothing else:
# emphasis only styles, and `_` is common in addresses.
_MARKDOWN = {**_TERMINAL, **{ord(c): "\\" + c for c in "\\|[]<>&`"}}


def _text(value: object) -> str:
    """The value's text; '' for None, NaN, NA and NaT."""
    if isinstance(value, str):
        return value
    from glue_pipeline.frames import is_missing  # here, not above: printing text must not import pandas

    return "" if is_missing(value) else str(value)


def markdown_cell(value: object) -> str:
    """`value` as the text of one markdown table cell: one line, inert (no row, link, image or
    HTML it could add); missing values (None, NaN, NA, NaT) are an empty cell."""
    return _text(value).translate(_MARKDOWN)


def markdown_table(frame: pd.DataFrame, limit: int | None = None, aligned: bool = False,
                   total: int | None = None) -> str:
    """A markdown table of `frame` (of its first `limit` rows), every cell through markdown_cell;
    '(empty)' for no rows. `aligned` pads the columns, for a terminal. A table that shows fewer
    rows than `total` (by default the frame's) says so in a paragraph under it: "showing 10 of
    62 rows". Written directly: tabulate costs ~3 ms a table, several per tenant."""
    if not len(frame):
        return "(empty)"
    head = frame if limit is None else frame.head(limit)
    rows = [[markdown_cell(c) for c in head.columns]]
    rows += [[markdown_cell(v) for v in values] for values in head.itertuples(index=False, name=None)]
    widths = [max(len(row[i]) for row in rows) if aligned else 0 for i in range(len(head.columns))]
    lines = ["| " + " | ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)) + " |" for row in rows]
    separator = "|" + "|".join("-" * max(3, w + 2 * aligned) for w in widths) + "|"
    table = "\n".join([lines[0], separator, *lines[1:]])
    total = len(frame) if total is None else total
    # A blank line first: a line right under a table would be read as one more row.
    return table if len(head) >= total else f"{table}\n\nshowing {len(head)} of {total} rows"


def terminal_text(value: object, multiline: bool = False) -> str:
    """`value` safe to print on one line of a terminal or a log: line breaks and tabs are a
    space, other control characters (escape codes, bidi overrides) are gone. `multiline` keeps
    the text's own lines (split on LF only: a CR would rewrite the line) and makes each safe."""
    text = _text(value)
    if multiline:
        return "\n".join(line.translate(_TERMINAL) for line in text.split("\n"))
    return text.translate(_TERMINAL)


def echo(text: str, err: bool = False) -> None:
    """Print `text` on the terminal, each of its lines made safe (terminal_text): names and
    errors in it come from customers' tenants and the store."""
    import click  # here, not above: rendering a table must not import the command line

    click.echo(terminal_text(text, multiline=True), err=err)
