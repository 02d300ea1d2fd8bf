"""Issue 7: the settings that keep patient data on this machine are the ones shipped.

Streamlit reads .streamlit/config.toml from the working directory; `make run` starts it from
the repository root. The browser tests start the app without an address flag, so these
settings are also what they exercise (test_browser.py checks the listening socket).
"""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def config() -> dict:
    return tomllib.loads((REPO / ".streamlit" / "config.toml").read_text())


def test_no_usage_statistics_and_loopback_only():
    cfg = config()
    assert cfg["browser"]["gatherUsageStats"] is False
    assert cfg["server"]["address"] == "127.0.0.1"
    assert cfg["browser"]["serverAddress"] == "127.0.0.1"


def test_uploads_are_bounded_and_errors_show_no_details():
    cfg = config()
    assert 1 <= cfg["server"]["maxUploadSize"] <= 1000  # MB
    assert cfg["server"]["enableXsrfProtection"] is True
    assert cfg["client"]["showErrorDetails"] == "none"  # tracebacks go to the log, not the page


def test_make_run_binds_to_loopback():
    recipe = re.search(r"^run:.*\n((?:\t.*\n)+)", (REPO / "Makefile").read_text(), re.M)
    assert recipe, "the Makefile has no run target"
    assert "--server.address 127.0.0.1" in recipe.group(1)
