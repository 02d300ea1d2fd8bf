"""Clinical formulas: hand-worked values, a round trip, an independent root finder, the seed data."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.optimize import brentq, least_squares

from bnapp.intake.kinetics import (
    ektv_rate_equation,
    ektv_tattersall,
    predict_ueq,
    sp_ktv,
    ueq_from_ektv,
)


def test_sp_ktv_hand_worked():
    # Upre 150, Upos 50, UF 3 L, PP 73 kg -> W 70 kg, t 4 h: R = 1/3
    expected = -math.log(1 / 3 - 0.008 * 4) + (4 - 3.5 / 3) * 3 / 70
    assert expected == pytest.approx(1.3210, abs=1e-4)  # -ln(0.30133) + 2.8333 * 3 / 70
    assert sp_ktv(150, 50, 3, 70) == pytest.approx(expected, rel=1e-12)
    # 3.5-hour session, no ultrafiltration: only the logarithm is left
    assert sp_ktv(120, 48, 0, 60, t_hours=3.5) == pytest.approx(-math.log(0.4 - 0.028), rel=1e-12)


def test_ektv_formulas_hand_worked():
    assert ektv_rate_equation(1.3) == pytest.approx(1.3 - 0.6 * 1.3 / 4 + 0.03)  # 1.135
    assert ektv_rate_equation(1.3) == pytest.approx(1.135, abs=1e-12)
    assert ektv_rate_equation(1.2, t_hours=3.0) == pytest.approx(1.2 - 0.24 + 0.03)
    assert ektv_tattersall(1.3) == pytest.approx(1.3 * 240 / 275)  # 1.13455
    assert ektv_tattersall(1.1, t_min=180, tdi=35) == pytest.approx(1.1 * 180 / 215)


def test_ueq_hand_worked():
    # UF = 0: -ln(R - 0.032) = e, so R = 0.032 + exp(-e)
    assert ueq_from_ektv(1.2, 150, 0, 70) == pytest.approx(150 * (0.032 + math.exp(-1.2)))
    # with UF the solved R must satisfy the spKt/V equation written out by hand
    ueq = float(ueq_from_ektv(1.1, 140, 2.5, 65))
    r = ueq / 140
    assert -math.log(r - 0.032) + (4 - 3.5 * r) * 2.5 / 65 == pytest.approx(1.1, abs=1e-12)


def _brentq_ueq(e, upre, uf, w, t):
    c = 0.008 * t
    f = lambda r: -math.log(r - c) + (4 - 3.5 * r) * uf / w - e  # noqa: E731
    return upre * brentq(f, c + 1e-12, 50.0, xtol=1e-15, rtol=1e-14)


def test_ueq_matches_an_independent_root_finder():
    rng = np.random.default_rng(3)
    e, upre = rng.uniform(0.3, 2.5, 40), rng.uniform(60, 250, 40)
    uf, w, t = rng.uniform(0, 6, 40), rng.uniform(35, 140, 40), rng.uniform(2.5, 5.5, 40)
    reference = [_brentq_ueq(*args) for args in zip(e, upre, uf, w, t, strict=True)]
    np.testing.assert_allclose(ueq_from_ektv(e, upre, uf, w, t), reference, rtol=1e-10)


@settings(max_examples=300, deadline=None)
@given(ektv=st.floats(0.05, 4.0), upre=st.floats(20, 400), uf=st.floats(0, 8),
       w=st.floats(25, 200), t=st.floats(1.5, 8.0))
def test_round_trip(ektv, upre, uf, w, t):
    ueq = ueq_from_ektv(ektv, upre, uf, w, t)
    assert np.isfinite(ueq) and ueq > 0.008 * t * upre
    assert sp_ktv(upre, ueq, uf, w, t) == pytest.approx(ektv, abs=1e-9)


@settings(max_examples=200, deadline=None)
@given(ektv=st.floats(-1.0, 4.0), uf=st.floats(-5, -0.01), w=st.floats(25, 200))
def test_negative_uf_root_or_nan(ektv, uf, w):
    """Fluid gain: a root on the decreasing branch when one exists, NaN otherwise."""
    ueq = ueq_from_ektv(ektv, 150.0, uf, w)
    r_min = 0.032 + w / (3.5 * -uf)  # where the spKt/V equation turns round
    has_root = sp_ktv(150.0, 150.0 * r_min, uf, w) <= ektv
    assert np.isfinite(ueq) == has_root
    if has_root:
        assert ueq / 150.0 <= r_min * (1 + 1e-9)
        assert sp_ktv(150.0, ueq, uf, w) == pytest.approx(ektv, abs=1e-8)


def test_impossible_inputs_give_nan_without_warnings():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        sp = sp_ktv([150, 150, 0, 150, np.nan, 150], [4.8, 3, 50, 50, 50, 50],
                    [2, 2, 2, 2, 2, 2], [60, 60, 60, 0, 60, -5])
        assert np.isnan(sp).all()  # R - 0.032 = 0, < 0, Upre 0, W 0, NaN, W < 0
        ueq = ueq_from_ektv([1.0, 1.0, np.nan, -1.0], [0, 150, 150, 150], [2, 2, 2, -3],
                            [60, 0, 60, 60])
        assert np.isnan(ueq).all()  # Upre 0, W 0, NaN target, UF < 0 with no root
        assert np.isnan(ektv_rate_equation(1.2, t_hours=0.0))
        assert np.isnan(ektv_tattersall(1.2, t_min=0.0))


def test_vectorized_shapes_broadcast():
    sp = sp_ktv(np.full((3, 4), 150.0), 50.0, np.linspace(0, 3, 4), 70.0)
    assert sp.shape == (3, 4) and sp.dtype == np.float64
    assert np.all(np.diff(sp[0]) > 0)  # more UF, more Kt/V


def test_equilibrated_is_below_single_pool_and_ueq_above_upos():
    sp = sp_ktv(150.0, np.linspace(30, 90, 13), 2.5, 68.0)
    for ektv in (ektv_rate_equation(sp), ektv_tattersall(sp)):
        assert np.all(ektv < sp)
        assert np.all(ueq_from_ektv(ektv, 150.0, 2.5, 68.0) > np.linspace(30, 90, 13))


def test_predict_ueq_composes_the_formulas():
    frame = pd.DataFrame({"Upre": [150.0, 120.0], "Upos": [50.0, 45.0], "PP": [73.0, 60.0],
                          "UF": [3.0, 1.5], "U120": [80.0, 70.0]})
    w = frame.PP - frame.UF
    sp = -np.log(frame.Upos / frame.Upre - 0.032) + (4 - 3.5 * frame.Upos / frame.Upre) * frame.UF / w
    for method, ektv in (("rate_equation", sp - 0.15 * sp + 0.03),
                         ("tattersall", sp * 240 / 275)):
        expected = ueq_from_ektv(ektv, frame.Upre, frame.UF, w)
        np.testing.assert_allclose(predict_ueq(frame, method=method), expected, rtol=1e-12)
    with pytest.raises(KeyError, match="PP"):
        predict_ueq(frame.drop(columns="PP"))
    with pytest.raises(ValueError, match="unknown method"):
        predict_ueq(frame, method="gotch")


def test_seed_ktveq_column(urea_csv):
    """`Ktveq` of the study's Urea.csv is a Kt/V with Ueq in place of Upos, but not quite ours.

    Our Daugirdas formula (t = 4 h, W = PP - UF) agrees within 1 % on 120 of 129 rows (median
    0.33 %). The other 9 are off by 1.2-3.5 %: all high-R (R > 0.56), low-dose (Ktveq < 0.75)
    sessions, where the UF terms of the two formulas drift apart and weigh more. The seed column
    follows -ln(R - 0.032) + (4 - 3 R) UF / PP to 2e-9 on every row: coefficient 3 instead of
    3.5 and pre- instead of post-dialysis weight. We found this variant in no publication;
    neither do the published ones reproduce the column (1989 first generation
    -ln(R - 0.008 t - UF/W): 65 of 129 within 1 %; -ln(R - 0.03) + ...: 90; W = PP: 96).
    """
    d = pd.read_csv(urea_csv)
    r = d.Ueq / d.Upre
    seed_variant = -np.log(r - 0.008 * 4) + (4 - 3 * r) * d.UF / d.PP
    np.testing.assert_allclose(seed_variant, d.Ktveq, rtol=1e-8)

    ours = sp_ktv(d.Upre, d.Ueq, d.UF, d.PP - d.UF, t_hours=4.0)
    rel = np.abs(ours / d.Ktveq - 1)
    off = rel >= 0.01
    assert int((~off).sum()) == 120 and np.median(rel) < 0.004
    assert d.index[off].tolist() == [19, 23, 35, 57, 75, 80, 84, 92, 110]
    assert (r[off] > 0.56).all() and (d.Ktveq[off] < 0.75).all()
    assert rel.max() < 0.035
    # the round trip recovers the seed's Ueq from our spKt/V
    np.testing.assert_allclose(ueq_from_ektv(ours, d.Upre, d.UF, d.PP - d.UF), d.Ueq, rtol=1e-10)


def test_seed_ktveq_coefficients_found_by_a_free_fit(urea_csv):
    """Fitting -ln(R - c) + (a - b R) UF / W freely to the seed's Ktveq recovers a = 4, b = 3,
    c = 0.032 exactly with W = PP; with W = PP - UF no coefficients fit every row."""
    d = pd.read_csv(urea_csv)
    r = (d.Ueq / d.Upre).to_numpy()

    def fit(weight):
        def residual(p):
            return -np.log(r - p[2]) + (p[0] - p[1] * r) * d.UF / weight - d.Ktveq
        return least_squares(residual, [4.0, 3.5, 0.032], xtol=1e-15, ftol=1e-15, gtol=1e-15)

    pre = fit(d.PP)
    np.testing.assert_allclose(pre.x, [4.0, 3.0, 0.032], atol=1e-6)
    assert np.abs(pre.fun).max() < 1e-8
    assert np.abs(fit(d.PP - d.UF).fun).max() > 5e-3


@pytest.mark.parametrize(("variant", "within_1pct"), [
    ("first generation, -ln(R - 0.008 t - UF/W)", 65),
    ("0.03 for 0.008 t", 90),
    ("pre-dialysis weight", 96),
])
def test_published_variants_do_not_reproduce_the_seed_ktveq(urea_csv, variant, within_1pct):
    d = pd.read_csv(urea_csv)
    r, w = d.Ueq / d.Upre, d.PP - d.UF
    ktv = {
        "first generation, -ln(R - 0.008 t - UF/W)": -np.log(r - 0.032 - d.UF / w),
        "0.03 for 0.008 t": -np.log(r - 0.03) + (4 - 3.5 * r) * d.UF / w,
        "pre-dialysis weight": sp_ktv(d.Upre, d.Ueq, d.UF, d.PP),
    }[variant]
    assert int((np.abs(ktv / d.Ktveq - 1) < 0.01).sum()) == within_1pct
