"""One run, one set of numbers: its pages, its export and `python -m bnapp analyze` read the same
analysis settings (bnapp.analyses.settings), so the intervals they show are the same."""

from __future__ import annotations

import io
import shlex
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from bnapp.cli import main
from bnapp.intake import data
from bnapp.jobs import cached, page_analyses
from bnapp.report import run_report
from tests.apptest import app_at, demo_run

REPO = Path(__file__).resolve().parents[2]


def _input_rows(table: pd.DataFrame) -> pd.DataFrame:
    return table[table["layer"] == "input"].reset_index(drop=True)


@pytest.mark.slow
def test_a_run_shows_the_same_numbers_on_its_pages_in_its_export_and_from_the_cli(tmp_path):
    entry = demo_run()
    # the export, as the Export page's job builds it with its default settings
    bundle = cached.export_bundle(entry.run, run_key=entry.key, data_name=entry.data_name,
                                  dataset=None, options=run_report.analysis_options())
    with zipfile.ZipFile(io.BytesIO(bundle.zip_bytes)) as archive:
        exported = {name: pd.read_csv(io.BytesIO(archive.read(f"tables/{name}.csv")))
                    for name in ("concordance", "association")}
    # the command the export says reproduces the run, with its default analysis settings
    command, differences = run_report.cli_command(entry.run, entry.data_name,
                                                  run_report.analysis_options())
    assert differences == []
    argv = shlex.split(command)[3:]
    argv[argv.index("--data") + 1] = str(REPO / "data" / data.DEMO_PATH.name)
    argv[argv.index("--out") + 1] = str(tmp_path)
    assert main(argv) == 0
    from_cli = {name: pd.read_csv(tmp_path / f"{name}.csv")
                for name in ("concordance", "association")}
    for name in ("concordance", "association"):
        pd.testing.assert_frame_equal(exported[name], from_cli[name], rtol=1e-12)

    # the Importance page: the concordance of |γ| with each definition, with its interval
    at = app_at("pages/importance.py", runs=(entry,))
    assert not at.exception
    conc = _input_rows(from_cli["concordance"])
    np.testing.assert_allclose(at.dataframe[0].value["estimate"], conc["estimate"].round(3))
    # the Sensitivity page: the association of |γ| with the error of its first mode and metric
    at.switch_page("pages/sensitivity.py").run()
    assert not at.exception
    assoc = _input_rows(from_cli["association"])
    assoc = assoc[(assoc["mode"] == page_analyses.FIRST_ABLATION)
                  & (assoc["metric"] == page_analyses.FIRST_METRIC)]
    shown = at.dataframe[0].value
    np.testing.assert_allclose(shown["estimate"], assoc["estimate"].round(3))
    assert list(shown["95% interval"]) == [f"{lo:.2f} to {hi:.2f}" for lo, hi in
                                           zip(assoc["ci_low"], assoc["ci_high"], strict=True)]
