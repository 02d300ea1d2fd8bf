"""Fixtures shared by the whole suite."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import settings

# Fresh random inputs on every run, in CI too (Hypothesis's own "ci" profile, loaded when it
# sees a CI variable, derandomizes), and no per-example deadline: time never fails a test.
settings.register_profile("bnapp", derandomize=False, deadline=None, print_blob=True)
settings.load_profile("bnapp")

REPO = Path(__file__).resolve().parents[1]
SEED_DIR = REPO.parent / "shared" / "seed"


@pytest.fixture(scope="session")
def seed_dir() -> Path:
    """The study's data, checkpoints and results, beside the repository (never copied into it)."""
    if not (SEED_DIR / "Urea.csv").is_file():
        pytest.fail(f"the study's seed data is missing: expected it at {SEED_DIR}")
    return SEED_DIR


@pytest.fixture(scope="session")
def urea_csv(seed_dir: Path) -> Path:
    return seed_dir / "Urea.csv"


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path_factory, monkeypatch):
    """No test reads or writes the user's real cache."""
    monkeypatch.setenv("BNAPP_CACHE_DIR", str(tmp_path_factory.mktemp("bnapp-cache")))


@pytest.fixture(autouse=True)
def _no_page_preparation(request, monkeypatch):
    """A run trained by a job is not followed by its pages' preparation (a worker call of its
    own, seconds of cohort replicates) unless the test is marked prepares_pages: queued one at a
    time behind every earlier test's, they would outlive the tests that asked for them. Browser
    tests run the app in a server process of its own, which prepares as the app does."""
    if request.node.get_closest_marker("prepares_pages") is None:
        from bnapp.jobs import cached

        monkeypatch.setattr(cached, "prepare_in_background", lambda *args, **kwargs: None)


def pytest_collection_modifyitems(items):
    """Browser tests start a server and Chromium: they belong to the full run, not the quick loop."""
    for item in items:
        if item.get_closest_marker("browser"):
            item.add_marker(pytest.mark.slow)
