"""The study's rule Ueq >= Upos with a tolerance (percent or an assay's CV), or kept and flagged;
and which rule drops the most rows."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bnapp.cli import main
from bnapp.intake.data import DataError, commonest_drop, load_dataset, report_text
from bnapp.intake.rules import UeqRule


def study_rows(shortfalls: list[float]) -> bytes:
    """Sessions whose Ueq is Upos less the given fraction of Upos (negative: above it)."""
    n = len(shortfalls)
    upos = np.linspace(40, 60, n)
    frame = pd.DataFrame({"Upre": np.linspace(120, 160, n), "U120": np.linspace(70, 90, n),
                          "Upos": upos, "PP": np.linspace(60, 80, n),
                          "UF": np.linspace(1, 3, n), "Ueq": upos * (1 - np.array(shortfalls))})
    return frame.to_csv(index=False).encode()


@settings(max_examples=40, deadline=None)
@given(shortfalls=st.lists(st.sampled_from([-0.1, 0.0, 0.01, 0.03, 0.06, 0.2]), min_size=4,
                           max_size=12),
       tolerance=st.sampled_from([0.0, 2.0, 5.0, 10.0]))
def test_a_row_is_dropped_only_below_upos_by_more_than_the_tolerance(shortfalls, tolerance):
    breaking = [i for i, s in enumerate(shortfalls) if 100 * s > tolerance]
    source = study_rows(shortfalls)
    if len(breaking) == len(shortfalls):
        with pytest.raises(DataError, match="none of the"):
            load_dataset(source, "f.csv", ueq=UeqRule(tolerance))
        return
    ds = load_dataset(source, "f.csv", ueq=UeqRule(tolerance))
    assert ds.dropped["row"].tolist() == [i + 2 for i in breaking]
    assert ds.flagged.empty
    kept = load_dataset(source, "f.csv", ueq=UeqRule(tolerance, keep=True))
    assert kept.n_usable == len(shortfalls) and kept.dropped.empty
    assert kept.flagged["row"].tolist() == [i + 2 for i in breaking]


def test_the_assay_cv_gives_its_reference_change_value():
    assert UeqRule.from_cv(2.0).tolerance == pytest.approx(1.96 * math.sqrt(2) * 2.0)
    ds = load_dataset(study_rows([0.0, 0.05, 0.06, 0.0]), "f.csv", ueq=UeqRule.from_cv(2.0))
    assert ds.dropped["row"].tolist() == [4]  # 6 % > 5.54 % > 5 %
    assert ds.dropped["reason"].iloc[0] == "Ueq < Upos by more than 5.54 %"
    with pytest.raises(DataError, match="percentage"):
        UeqRule(-1)


def test_the_commonest_drop_is_said_and_the_flagged_rows_reported(urea_csv):
    ds = load_dataset(urea_csv)
    assert commonest_drop(ds) == ("The rule that drops the most rows: Ueq < Upos (20 of the "
                                  "129 rows read, 16%).")
    kept = load_dataset(urea_csv, ueq=UeqRule(keep=True))
    assert commonest_drop(kept) is None and kept.n_usable == 129 and len(kept.flagged) == 20
    assert "kept but flagged (Ueq < Upos): rows 10," in report_text(kept)


def test_validate_takes_the_tolerance_and_keep_options(urea_csv, capsys):
    raw = pd.read_csv(urea_csv)
    within = int(((raw.Ueq < raw.Upos) & (raw.Ueq >= raw.Upos * 0.9)).sum())
    assert main(["validate", str(urea_csv), "--ueq-tolerance", "10"]) == 0
    out = capsys.readouterr().out
    assert out.splitlines()[0].endswith(f"{20 - within} dropped")
    assert main(["validate", str(urea_csv), "--keep-ueq-below-upos"]) == 0
    assert "129 usable, 0 dropped" in capsys.readouterr().out
