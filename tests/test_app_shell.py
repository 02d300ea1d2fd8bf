"""The dashboard shell renders on the demo cohort, trains, and shows the BN parameter table."""

from __future__ import annotations

from pathlib import Path

from streamlit.testing.v1 import AppTest

APP = str(Path(__file__).resolve().parents[1] / "app.py")


def test_shell_renders_trains_and_shows_parameters():
    at = AppTest.from_file(APP, default_timeout=120).run()
    assert not at.exception
    assert any("87 parameters" in t.value for t in at.text)
    at.slider[0].set_value(3)
    at.slider[1].set_value(10)
    at.button[0].click().run()
    assert not at.exception
    assert at.session_state.run is not None and len(at.session_state.run.folds) == 3
    assert len(at.dataframe[-1].value) == 5  # one row per study input
