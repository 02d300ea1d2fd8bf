"""Issue 28: user text escaped as Markdown (rendered by markdown-it-py, a CommonMark reference)
and as HTML wherever it lands: the pages' Markdown, the model card, the HTML report."""

from __future__ import annotations

import dataclasses
import re
import unicodedata
from html.parser import HTMLParser

import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from markdown_it import MarkdownIt

from bnapp.intake.units import LIBRARY_UNITS
from bnapp.report import model_card, run_report
from bnapp.report.export import html_report
from bnapp.report.markup import escape_md, unescape_md
from tests.apptest import demo_run

MD = MarkdownIt("commonmark", {"html": True}).enable(["table", "strikethrough"])
PIECES = ["<script>alert(1)</script>", "<img src=x onerror=alert(1)>", "[link](http://evil)",
          "![i](http://evil/x.png)", "<http://evil>", "www.evil.com", "a@b.co", "**", "_", "`",
          "# ", "- ", "+ ", "1. ", "2) ", "> ", "---", "===", "|", "\\", "&amp;", "&#60;", "$x$",
          ":red[x]", ":material/home:", "~~", "\n", "\r", "\t", "    ", "\x00", "\x85", "x", " "]
hostile = st.one_of(st.lists(st.sampled_from(PIECES), min_size=1, max_size=8).map("".join),
                    st.text(min_size=1, max_size=12)).filter(lambda t: one_line(t))
# where the pages and the model card put user text
TEMPLATES = ["{}", "Run: {}", "- {}", "  - {}: 3", "**{}** looks like an identifier",
             "# Model card: net predicting {}", "| a | b |\n|---|---|\n| {} | 1.5 |"]
PLACEHOLDER = "PLACEHOLDER"


def one_line(text: str) -> str:
    """What escaped text reads as: control characters and line separators as spaces, without
    the spaces at its ends."""
    return "".join(" " if unicodedata.category(ch) in ("Cc", "Zl", "Zp") else ch
                   for ch in text).strip()


def parse(markdown: str) -> tuple[list[tuple[str, str]], str]:
    """The rendered document's structure (every token but text) and its text."""
    structure, texts = [], []
    for token in MD.parse(markdown):
        for t in [token, *(token.children or [])]:
            if t.type == "text":
                texts.append(t.content)
            elif t.type != "inline":
                structure.append((t.type, t.tag))
    return structure, "".join(texts)


@settings(max_examples=300, deadline=None)
@given(text=hostile, template=st.sampled_from(TEMPLATES))
def test_escaped_text_renders_as_itself_and_adds_no_markup(text, template):
    shape, plain = parse(template.format(PLACEHOLDER))
    got_shape, got_plain = parse(template.format(escape_md(text)))
    assert got_shape == shape, "no new element: link, image, raw HTML, emphasis, list, ..."
    assert got_plain == plain.replace(PLACEHOLDER, one_line(text))
    # what markdown-it does not know: Streamlit's :shortcodes: and $LaTeX$, and GFM's autolinks
    assert not re.search(r"(?<!\\)[:$@]|(?i:www)(?!\\)\.", escape_md(text))


@settings(max_examples=200, deadline=None)
@given(text=hostile)
def test_unescape_gives_the_text_back(text):
    assert unescape_md(escape_md(text)) == one_line(text)


class Tags(HTMLParser):
    def __init__(self):
        super().__init__()
        self.tags, self.text = set(), []

    def handle_starttag(self, tag, attrs):
        self.tags.add(tag)

    def handle_data(self, data):
        self.text.append(data)


def tags_and_text(page: str) -> tuple[set[str], str]:
    parser = Tags()
    parser.feed(page)
    return parser.tags, "".join(parser.text)


REPORT_TAGS = {"html", "head", "meta", "title", "style", "body", "h1", "h2", "h3", "p", "dl", "dt",
               "dd", "div", "table", "thead", "tbody", "tr", "th", "td", "ul", "li"}


@settings(max_examples=60, deadline=None)
@given(name=hostile, column=hostile, cell=hostile)
def test_the_html_report_shows_user_text_only_as_text(name, column, cell):
    table = pd.DataFrame({column or "c": [cell, "ok"], "n": [-1.0, 2.0]})
    card = f"# Model card\n\n- Data set: {escape_md(name)}\n"
    page = html_report(name, summary={"Data set": name, column: cell}, figures={},
                       tables={name: table},
                       settings=pd.DataFrame({"setting": ["name"], "value": [name]}),
                       model_card=card)
    tags, text = tags_and_text(page)
    assert tags <= REPORT_TAGS, "the card rendered: a heading and a list, nothing from the text"
    assert f"Data set: {one_line(name)}" in text, "the card's text as itself, no backslashes"
    assert "- Data set" not in text and "# Model card" not in text


@pytest.fixture(scope="module")
def demo():
    entry = demo_run()
    return entry, run_report.run_tables(entry.run, n_permutations=2, n_boot=20)


# a study column's name is not just text: it brings its unit (and urea its conversion)
own_column = hostile.filter(lambda t: t not in LIBRARY_UNITS)


@pytest.mark.slow
@settings(max_examples=25, deadline=None)
@given(name=hostile, target=own_column, feature=own_column)
def test_the_model_card_shows_names_as_text(demo, name, target, feature):
    entry, tables = demo
    run = dataclasses.replace(entry.run, target=target or "t",
                              features=[feature or "f", *entry.run.features[1:]])
    card = model_card.model_card(run, tables, data_name=name)
    reference = model_card.model_card(
        dataclasses.replace(run, target=PLACEHOLDER + "T",
                            features=[PLACEHOLDER + "F", *entry.run.features[1:]]),
        tables, data_name=PLACEHOLDER + "N")
    shape, plain = parse(reference)
    got_shape, got_plain = parse(card)
    assert got_shape == shape
    assert got_plain == (plain.replace(PLACEHOLDER + "T", one_line(target or "t"))
                         .replace(PLACEHOLDER + "F", one_line(feature or "f"))
                         .replace(PLACEHOLDER + "N", one_line(name)))
