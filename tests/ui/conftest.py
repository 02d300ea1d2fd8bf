"""AppTest sends no cookies, so no session has a browser identity of its own (ui.state.browser_id
reads Streamlit's XSRF cookie): here every session of a test is one browser, as the tabs and
reloads of one user are, unless the test names another (browser_identity.id = ...)."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from bnapp.ui import state


@pytest.fixture(autouse=True)
def browser_identity(monkeypatch):
    current = SimpleNamespace(id="browser-of-this-test")
    monkeypatch.setattr(state, "browser_id", lambda: current.id)
    return current
