"""Issue 28: a warning raised while a page computes (the cache could not save a result) reaches
its user as one plain line on the page, not only on the server's terminal."""

from __future__ import annotations

from streamlit.testing.v1 import AppTest

from tests.ui.test_faults import unbackslash


def page_that_cannot_save():
    import warnings

    from bnapp.jobs import cache
    from bnapp.ui import widgets

    class Page:
        title = "Parameters"

        def run(self):
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # the server's terminal is not under test
                cache.warn("result not cached: cannot write to /srv/cache (Read-only file "
                            "system)")

    widgets.run_page(Page())
    cache.warn("after the page: not shown on it")


def test_run_page_shows_the_caches_warnings_in_plain_words():
    at = AppTest.from_function(page_that_cannot_save).run()
    assert not at.exception
    (shown,) = [unbackslash(w.value) for w in at.warning]
    assert "Read-only file system" in shown and "not saved" in shown, "with the way out"
    assert "\n" not in shown and ".py:" not in shown and "CacheWarning" not in shown
