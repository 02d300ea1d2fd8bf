"""AppTest sends no cookies, so no session has a browser identity of its own (ui.state.browser_id
reads Streamlit's XSRF cookie): here every session of a test is one browser, as the tabs and
reloads of one user are, unless the test names another (browser_identity.id = ...). Each test is
a browser of its own, so the data set one test's browser keeps (ui.state) is no other test's."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from bnapp.ui import state


@pytest.fixture(autouse=True)
def browser_identity(monkeypatch, request):
    current = SimpleNamespace(id=f"browser-of-{request.node.nodeid}")
    monkeypatch.setattr(state, "browser_id", lambda: current.id)
    return current
