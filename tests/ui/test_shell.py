"""The dashboard's frame: navigation, the sidebar, the error-safe page runner, inert user text."""

from __future__ import annotations

import re
from pathlib import Path

from hypothesis import given
from hypothesis import strategies as st
from markdown_it import MarkdownIt

from bnapp.intake import data
from bnapp.ui.widgets import escape_md
from tests.apptest import app_at, demo_run

PAGES = ("data", "train", "stages", "parameters", "sensitivity", "importance", "grid", "baselines",
         "agreement", "predict", "export")


def sidebar_text(at) -> str:
    return "\n".join(t.value for t in at.sidebar.text)


def test_the_sidebar_shows_the_data_set():
    """AppTest runs only the page script after switch_page, so the sidebar (drawn by app.py)
    is checked on the start page here and on every page by the browser test."""
    at = app_at()
    assert not at.exception
    assert "demo_cohort.csv" in sidebar_text(at)
    assert f"{data.demo_dataset().n_usable} rows usable" in sidebar_text(at)


def test_navigation_registers_every_page():
    at = app_at()
    registered = {Path(info["script_path"]).stem for info in at._registered_pages.values()}
    assert registered == set(PAGES)
    for page in PAGES:
        at.switch_page(f"pages/{page}.py").run()
        assert not at.exception, page


def test_sidebar_names_the_active_run():
    entry = demo_run()
    at = app_at(runs=(entry,))
    assert entry.label in sidebar_text(at)
    assert "none yet" in app_at().sidebar.text[1].value


def test_errors_on_a_page_become_messages(tmp_path):
    """A page that raises shows a message; the app keeps serving the next run."""
    from streamlit.testing.v1 import AppTest

    script = tmp_path / "app.py"
    script.write_text(
        "import streamlit as st\n"
        "from bnapp.intake.data import DataError\n"
        "from bnapp.ui import widgets\n"
        "def bad_data():\n    raise DataError('file.csv: column Upre, row 7: not a number')\n"
        "def bug():\n    raise ZeroDivisionError('x')\n"
        "def library():\n    import pandas as pd\n    pd.DataFrame({'a': [1]})['Upos']\n"
        "def ours():\n    from bnapp.jobs import cache\n    cache.resolve('no-such-key')\n"
        "which = st.session_state.get('which', 'data')\n"
        "def panel():\n    raise ZeroDivisionError('in a fragment')\n"
        "def fragment():\n    st.fragment(widgets.guarded(panel, 'in the panel'))()\n"
        "pages = {'data': bad_data, 'bug': bug, 'library': library, 'ours': ours,\n"
        "         'fragment': fragment}\n"
        "page = st.navigation([st.Page(pages[which], title='p')])\n"
        "widgets.run_page(page)\n"
        "st.text('still serving')\n")
    at = AppTest.from_file(str(script)).run()
    assert not at.exception
    assert "row 7" in at.error[0].value
    assert at.text[0].value == "still serving"
    at.session_state["which"] = "bug"
    at.run()
    assert not at.exception
    assert "ZeroDivisionError" in at.error[0].value and "kept" in at.error[0].value
    at.session_state["which"] = "library"  # a library's KeyError is a bug, not a message
    at.run()
    assert "Something went wrong" in at.error[0].value and "(KeyError)" in at.error[0].value
    at.session_state["which"] = "ours"  # bnapp's own KeyError is written for the user
    at.run()
    assert at.error[0].value.startswith("no cache entries match") and not at.exception
    at.session_state["which"] = "fragment"  # a fragment's error never reaches run_page
    at.run()
    assert not at.exception
    assert [e.value for e in at.error] == [
        "Something went wrong in the panel (ZeroDivisionError). Your data and results are kept; "
        "try again, or report this with the terminal's log."]


def _rendered_text(html: str) -> str:
    return re.sub(r"<[^>]+>", "", html).replace("&lt;", "<").replace("&gt;", ">") \
        .replace("&quot;", '"').replace("&amp;", "&")


@given(st.text(alphabet=st.sampled_from(list("<>[]()!*_`#&;:/=\"' axjs\\-.|~$+{}")), max_size=40))
def test_escaped_user_text_renders_as_itself_and_never_as_markup(text):
    html = MarkdownIt("commonmark").enable("table").render(escape_md(text))
    assert "<a " not in html and "<img" not in html and "<script" not in html
    assert "<em>" not in html and "<code>" not in html and "<h" not in html.replace("<hr", "")
    assert _rendered_text(html).strip() == text.strip()
