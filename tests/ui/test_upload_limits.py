"""Issue 28: a workbook bomb uploaded on the Data page is refused in one line, the session keeps
its data set, and another session's training goes on and completes meanwhile."""

from __future__ import annotations

import pytest

from bnapp.intake import data
from tests.apptest import app_at
from tests.intake.test_limits import past_the_row_limit
from tests.ui.test_faults import finish, start


@pytest.mark.slow
def test_a_bomb_on_the_data_page_is_refused_while_another_session_trains():
    trainer = app_at("pages/train.py")
    # ~12 s of training on two quiet cores: still running when the bomb is refused (~0.5 s)
    job = start(trainer, proto_folds=40, proto_epochs=10_000, proto_seed=28)
    uploader = app_at("pages/data.py")
    before = uploader.session_state["dataset"]
    uploader.file_uploader(key="upload").set_value(
        ("bomb.xlsx", past_the_row_limit(), "application/octet-stream")).run()
    assert not uploader.exception
    (message,) = [e.value for e in uploader.error]
    assert "bomb" in message and "1,048,576 rows" in message and "\n" not in message
    assert uploader.session_state["dataset"] is before
    assert before.name == data.DEMO_PATH.name
    assert job.state in ("queued", "running"), "still training while the bomb was refused"
    finish(trainer, job)  # and it completes
    assert job.key in trainer.session_state["runs"]
