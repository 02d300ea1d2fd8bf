"""Target leakage: inputs that were probably computed from the target are flagged, real ones not."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bnapp.cli import main
from bnapp.intake import columns, data


@pytest.fixture(scope="module")
def urea(urea_csv) -> data.Dataset:
    return data.load_dataset(urea_csv)


def _brute_partial_r2(frame: pd.DataFrame, target: str, col: str, others) -> float:
    """The log-scale partial R^2 by refitting without each row in turn (numpy lstsq)."""
    y = np.log(frame[target].to_numpy())

    def press(cols) -> float:
        parts = [np.ones(len(frame))]
        for c in cols:
            x = frame[c].to_numpy()
            parts += [x, np.log(x)] if (x > 0).all() else [x]
        X = np.column_stack(parts)
        errors = []
        for i in range(len(y)):
            keep = np.arange(len(y)) != i
            beta = np.linalg.lstsq(X[keep], y[keep], rcond=None)[0]
            errors.append(y[i] - X[i] @ beta)
        return float(np.sum(np.square(errors)))

    return 1 - press([*others, col]) / press(others)


def test_the_study_file_flags_req_and_ktveq_only(urea):
    candidates = columns.leak_candidates(urea)
    assert set(data.STUDY_INPUTS) < set(candidates) and {"Req", "Ktveq"} < set(candidates)
    leaks = columns.target_leaks(urea.frame, "Ueq", candidates)
    assert [leak.column for leak in leaks] == ["Req", "Ktveq"]
    by_name = {leak.column: leak for leak in leaks}
    # log Req = log Ueq - log Upre exactly, so with Upre among the inputs nothing is left over
    assert by_name["Req"].partial_r2 == pytest.approx(1.0, abs=1e-6)
    assert by_name["Req"].scale == "log"
    assert by_name["Ktveq"].base == tuple(data.STUDY_INPUTS)
    reference = _brute_partial_r2(urea.frame, "Ueq", "Ktveq", data.STUDY_INPUTS)
    assert reference > columns.LEAK_PARTIAL_R2
    assert by_name["Ktveq"].partial_r2 == pytest.approx(reference, rel=1e-9)


def test_the_synthetic_cohort_flags_nothing():
    demo = data.demo_dataset()
    assert columns.target_leaks(demo.frame, "Ueq", data.STUDY_INPUTS) == []


def test_other_targets_are_judged_with_the_remaining_inputs(urea):
    # Upos as the target: Ueq is not a candidate, and Upos is left out of the inputs judged with
    leaks = columns.target_leaks(urea.frame, "Upos", columns.leak_candidates(urea))
    assert all("Upos" not in leak.base and leak.column != "Upos" for leak in leaks)


def test_too_few_rows_or_text_columns_are_not_judged(urea):
    frame = urea.frame.assign(copy=urea.frame["Ueq"] * 2, site=["a"] * urea.n_usable)
    assert columns.target_leaks(frame.head(columns.LEAK_MIN_ROWS - 1), "Ueq", ["copy"]) == []
    assert [x.column for x in columns.target_leaks(frame, "Ueq", ["copy", "site"])] == ["copy"]
    assert columns.target_leaks(frame, "site", ["copy"]) == []  # a text target


def test_a_target_with_zeros_is_judged_without_logs():
    rng = np.random.default_rng(4)
    frame = pd.DataFrame({"Upre": rng.uniform(80, 200, 60), "UF": rng.uniform(0, 4, 60)})
    frame["UF"] = frame["UF"].round()  # zeros among the values: no log scale for UF
    frame["echo"] = frame["UF"] * 3 + 1
    (leak,) = columns.target_leaks(frame, "UF", ["Upre", "echo"], base=["Upre"])
    assert leak.column == "echo" and leak.scale in {"raw", "rank"}


def test_large_files_are_judged_on_a_fixed_subset():
    rng = np.random.default_rng(5)
    n = columns.LEAK_MAX_ROWS + 500
    frame = pd.DataFrame({"y": rng.lognormal(4, 0.3, n), "x": rng.lognormal(0, 1, n)})
    frame["ratio"] = frame["y"] / frame["x"]
    first = columns.target_leaks(frame, "y", ["x", "ratio"], base=["x"])
    assert [x.column for x in first] == ["ratio"]
    assert first == columns.target_leaks(frame, "y", ["x", "ratio"], base=["x"])


def test_the_message_names_column_target_share_and_inputs(urea):
    (req, _) = columns.target_leaks(urea.frame, "Ueq", columns.leak_candidates(urea))
    assert req.text("Ueq") == (
        "Req is probably computed from the target Ueq: with Upre, U120, Upos, PP, UF it explains "
        "100.0 % of the Ueq variance they leave unexplained (leave-one-out fit, log scale)")
    alone = columns.Leak("copy", 0.991, "rank", ())
    assert alone.text("Ueq") == ("copy is probably computed from the target Ueq: it explains "
                                 "99.1 % of the Ueq variance (leave-one-out fit, rank scale)")


def test_validate_warns_about_leaks(urea_csv, tmp_path, capsys):
    assert main(["validate", str(urea_csv)]) == 0
    warnings = [line for line in capsys.readouterr().out.splitlines() if line.startswith("warn")]
    assert [line.split()[1] for line in warnings] == ["Req", "Ktveq"]
    assert all(line.endswith("; leave it out of the inputs") for line in warnings)
    assert main(["validate", str(data.DEMO_PATH)]) == 0
    assert capsys.readouterr().out.splitlines()[-1] == (
        "target leakage: no input looks computed from Ueq")


_TRANSFORMS = {
    "affine": lambda y, a: 3.0 * y + 7.0,
    "negated": lambda y, a: -y,
    "log": lambda y, a: np.log(y),
    "reciprocal": lambda y, a: 1.0 / y,
    "square root": lambda y, a: np.sqrt(y),
    "exponential": lambda y, a: np.exp(y / y.max()),
    "logistic": lambda y, a: 1.0 / (1.0 + np.exp(-(y - np.median(y)) / y.std())),
    "ratio to an input": lambda y, a: y / a,
}


def _cohort(seed: int, n: int) -> pd.DataFrame:
    """Three positive inputs that predict a positive target only in part, as real data do."""
    rng = np.random.default_rng(seed)
    a, b, c = rng.lognormal(4.0, 0.3, n), rng.lognormal(1.0, 0.5, n), rng.uniform(0, 4, n)
    y = 50 * np.exp(0.6 * np.log(a / 55) + 0.2 * np.log(b) + 0.05 * c + rng.normal(0, 0.3, n))
    return pd.DataFrame({"a": a, "b": b, "c": c, "y": y})


@settings(max_examples=60, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), n=st.integers(30, 400),
       transform=st.sampled_from(sorted(_TRANSFORMS)), noise=st.floats(0.0, 1e-4))
def test_a_transform_of_the_target_is_always_flagged(seed, n, transform, noise):
    frame = _cohort(seed, n)
    leak = _TRANSFORMS[transform](frame["y"].to_numpy(), frame["a"].to_numpy())
    jitter = np.random.default_rng(seed + 1).normal(0, noise * leak.std(), n)
    frame["leak"] = leak + jitter
    leaks = columns.target_leaks(frame, "y", ["a", "leak"], base=["a", "b", "c"])
    assert "leak" in [x.column for x in leaks]
    assert all(x.partial_r2 >= columns.LEAK_PARTIAL_R2 for x in leaks)


@settings(max_examples=60, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), n=st.integers(columns.LEAK_MIN_ROWS, 400),
       shape=st.sampled_from(["normal", "lognormal", "integers"]))
def test_an_independent_column_is_never_flagged(seed, n, shape):
    frame = _cohort(seed, n)
    rng = np.random.default_rng(seed + 2)
    frame["random"] = {"normal": rng.normal(0, 1, n), "lognormal": rng.lognormal(0, 1, n),
                       "integers": rng.integers(0, 3, n).astype(float)}[shape]
    assert columns.target_leaks(frame, "y", ["random"], base=["a", "b", "c"]) == []


@settings(max_examples=60, deadline=None)
@given(n=st.integers(8, 60), k=st.integers(1, 5), collinear=st.booleans(),
       seed=st.integers(0, 2**32 - 1))
def test_press_matches_statsmodels(n, k, collinear, seed):
    """The hand-written leave-one-out residuals are statsmodels' OLSInfluence.resid_press."""
    from statsmodels.regression.linear_model import OLS
    from statsmodels.stats.outliers_influence import OLSInfluence

    rng = np.random.default_rng(seed)
    X = np.column_stack([np.ones(n), rng.normal(size=(n, k)) * rng.uniform(0.1, 100, k)])
    if collinear:  # a column the others determine: the fit must treat it as pinv does
        X = np.column_stack([X, X[:, 1] * 3 - 2])
    y = X[:, 1:].sum(axis=1) + rng.normal(size=n)
    expected = OLSInfluence(OLS(y, X).fit()).resid_press
    assert columns._press(X, y) == pytest.approx(float((expected ** 2).sum()), rel=1e-7)
