"""Issue 28: a run whose data set, inputs and target carry Markdown and HTML in their names
shows them on every page as text: no link, image, raw HTML or new block in any Markdown the
pages send (rendered by markdown-it-py), and no label Streamlit would draw as Markdown."""

from __future__ import annotations

import dataclasses
import hashlib

import pytest
from markdown_it import MarkdownIt

from bnapp.ui.state import RunEntry, run_label
from tests.apptest import app_at, demo_run

HOSTILE = "[x](http://evil) <img src=x onerror=alert(1)> :red[**y**] $z$ # www.evil.com"
MD = MarkdownIt("commonmark", {"html": True}).enable("table")
PAGES = ("stages", "sensitivity", "baselines", "agreement", "predict", "importance")
MARKDOWN_KINDS = ("markdown", "caption", "info", "warning", "error", "success", "title",
                  "header", "subheader")


def hostile_entry() -> RunEntry:
    entry = demo_run()
    run = dataclasses.replace(entry.run, target=f"Ueq {HOSTILE}",
                              features=[f"Upre {HOSTILE}", *entry.run.features[1:]])
    name = f"{HOSTILE}.csv"
    key = hashlib.sha256(f"hostile {entry.key}".encode()).hexdigest()  # its own analyses
    return RunEntry(key, run_label(run, name), run, name)


def markup(markdown: str) -> set[str]:
    """The elements a Markdown text would make that user text must never make."""
    found = set()
    for token in MD.parse(markdown):
        for t in [token, *(token.children or [])]:
            if t.type in ("html_inline", "html_block", "link_open", "image"):
                found.add(t.type)
    return found


@pytest.mark.slow
@pytest.mark.parametrize("page", PAGES)
def test_pages_show_hostile_names_as_text(page):
    at = app_at(f"pages/{page}.py", runs=(hostile_entry(),))
    assert not at.exception, page
    shown = [str(e.value) for kind in MARKDOWN_KINDS for e in getattr(at, kind)]
    shown += [str(w.label) for kind in ("slider", "metric", "number_input")
              for w in getattr(at, kind)]
    assert any("evil" in text for text in shown), "the names are shown"
    for text in shown:
        assert not markup(text), (page, text)
        assert ":red[" not in text and "$z$" not in text, (page, text)
