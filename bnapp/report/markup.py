"""User text (file, column and group names, cells) made inert where bnapp writes Markdown.

HTML needs no helper of its own (`html.escape` is the library's); Markdown has none, so this
escapes by CommonMark's rule that a backslash before ASCII punctuation makes it literal: the
characters that start something anywhere in a line always, those that start a block (a list,
heading, quote or rule) only where the text begins, so numbers such as -0.5 stay readable.
"""

from __future__ import annotations

import re

from bnapp.intake.units import LIBRARY_UNITS, DisplayUnits

# emphasis, code, links and images, raw HTML and entities, tables, a heading's closing #s,
# LaTeX ($), Streamlit's :colour[...] and :icon: shortcodes, and the http: and a@b autolinks
_INLINE = r"\\`*_{}\[\]()<>!|~$&:@^#"
_SPECIAL = re.compile(rf"([{_INLINE}])|(?i:(?<=www)(\.))")  # www. starts an autolink too
_BLOCK_START = re.compile(r"^(?:(\d+)\.|([-+=]))")  # a list or rule; "1." a list
_ESCAPED = re.compile(rf"\\([{_INLINE}\-+=.])")
_BREAKS = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")  # a new line could start a block


def escape_md(text: object) -> str:
    """Text shown literally inside Markdown, on one line: line breaks and other control
    characters become spaces (so no block, heading or table row starts inside it), and the
    spaces at its ends go (four would start a code block)."""
    line = _BREAKS.sub(" ", str(text)).strip()
    line = _SPECIAL.sub(lambda m: "\\" + (m.group(1) or m.group(2)), line)
    return _BLOCK_START.sub(lambda m: f"{m.group(1)}\\." if m.group(1) else "\\" + m.group(2),
                            line)


def unescape_md(markdown: str) -> str:
    """escape_md undone: what a reader of the Markdown sees (the report shows the model card
    rendered; this reads its text back, and names in the report's own lines)."""
    return _ESCAPED.sub(r"\1", markdown)


def unit_md(display: DisplayUnits, column: str) -> str:
    """The shown unit of `column` as Markdown: 'mmol/L', 'kg', or 'units of <column>' with the
    user's name escaped as itself (escaping the whole phrase would trim the name's own ends)."""
    if column in LIBRARY_UNITS:
        return escape_md(display.unit(column))
    return f"units of {escape_md(column)}"
