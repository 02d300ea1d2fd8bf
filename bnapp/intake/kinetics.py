"""Clinical urea-kinetic formulas: the dialysis dose (Kt/V) and the equilibrated urea they imply.

- Second-generation single-pool Kt/V (Daugirdas JT, J Am Soc Nephrol 1993;4:1205-1213):
  spKt/V = -ln(R - 0.008 t) + (4 - 3.5 R) UF / W, R = Upos/Upre, t in hours, UF in litres,
  W the post-dialysis weight in kg (PP - UF).
- Equilibrated Kt/V by the Daugirdas-Schneditz rate equation (Daugirdas JT, Schneditz D, ASAIO J
  1995;41:M719-M724): eKt/V = spKt/V - 0.6 spKt/V / t + 0.03 for an arterial (arteriovenous)
  access, spKt/V - 0.47 spKt/V / t + 0.02 for a venous access (catheter), t in hours.
- Equilibrated Kt/V by Tattersall's formula (Tattersall JE et al., Nephrol Dial Transplant 1996;
  11 Suppl 2:75-80): eKt/V = spKt/V T / (T + 35), T in minutes.
- Ueq from an eKt/V: the R that makes the spKt/V equation give eKt/V, times Upre.

The session length t (T) may differ per session. Every function takes numpy arrays (or scalars, broadcast together) and returns float64 arrays.
Inputs with no answer give NaN, never an exception: a non-positive Upre or post-dialysis weight,
R - 0.008 t <= 0 (the logarithm is undefined), non-finite values, and an eKt/V that no R reaches
(possible only when UF < 0). The demo-cohort simulator lives in `bnapp.intake.simulator`.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
import pandas as pd

from bnapp.intake.simulator import simulate_cohort

__all__ = [
    "ACCESS_TYPES",
    "ektv_rate_equation",
    "ektv_tattersall",
    "predict_ueq",
    "simulate_cohort",
    "sp_ktv",
    "ueq_from_ektv",
]

ArrayLike = np.ndarray | float

# coefficients of the Daugirdas 1993 formula and Tattersall's time constant
UREA_GENERATION_PER_HOUR = 0.008
UF_INTERCEPT, UF_SLOPE = 4.0, 3.5
TATTERSALL_TDI_MIN = 35.0
# the rate equation's (slope, intercept) per vascular access
RATE_COEFFICIENTS = {"arterial": (0.6, 0.03), "venous": (0.47, 0.02)}
ACCESS_TYPES = tuple(RATE_COEFFICIENTS)


def _f64(*values: ArrayLike) -> list[np.ndarray]:
    return [np.asarray(v, dtype=np.float64) for v in np.broadcast_arrays(*values)]


def sp_ktv(upre: ArrayLike, upos: ArrayLike, uf: ArrayLike, post_weight: ArrayLike,
           t_hours: ArrayLike = 4.0) -> np.ndarray:
    """Daugirdas second-generation spKt/V; NaN where R - 0.008 t <= 0 or Upre, W <= 0."""
    upre, upos, uf, w, t = _f64(upre, upos, uf, post_weight, t_hours)
    with np.errstate(divide="ignore", invalid="ignore"):
        r = upos / upre
        arg = r - UREA_GENERATION_PER_HOUR * t
        ktv = -np.log(arg) + (UF_INTERCEPT - UF_SLOPE * r) * uf / w
    ok = (upre > 0) & (w > 0) & (arg > 0) & np.isfinite(ktv)
    return np.where(ok, ktv, np.nan)


def ektv_rate_equation(spktv: ArrayLike, t_hours: ArrayLike = 4.0,
                       access: str = "arterial") -> np.ndarray:
    """Daugirdas-Schneditz rate equation: spKt/V - a spKt/V / t + b, (a, b) = (0.6, 0.03) for an
    arterial access and (0.47, 0.02) for a venous one."""
    slope, intercept = RATE_COEFFICIENTS[access]
    sp, t = _f64(spktv, t_hours)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(t > 0, sp - slope * sp / t + intercept, np.nan)


def ektv_tattersall(spktv: ArrayLike, t_min: ArrayLike = 240.0,
                    tdi: ArrayLike = TATTERSALL_TDI_MIN) -> np.ndarray:
    """Tattersall's eKt/V = spKt/V T / (T + tdi), T and tdi in minutes."""
    sp, t, tdi = _f64(spktv, t_min, tdi)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where((t > 0) & (tdi >= 0), sp * t / (t + tdi), np.nan)


def ueq_from_ektv(ektv: ArrayLike, upre: ArrayLike, uf: ArrayLike, post_weight: ArrayLike,
                  t_hours: ArrayLike = 4.0) -> np.ndarray:
    """Ueq = R Upre for the R at which the spKt/V equation equals `ektv` (NaN if none).

    Closed form instead of root finding: with x = R - c (c = 0.008 t), a = UF/W and b = 3.5 a,
    the equation -ln x + (4 - 3.5 (x + c)) a = e reads ln x + b x = k with k = (4 - 3.5 c) a - e,
    whose solution is x = exp(k - W0(b e^k)) (W0 the principal Lambert W; b = 0 gives x = e^k).
    For UF >= 0 the spKt/V equation is strictly decreasing in R, so this root is the only one.
    For UF < 0 (fluid gained) it is the root on the decreasing branch, where R is realistic, and
    there is none when b e^k < -1/e.
    """
    from scipy.special import lambertw  # here: the session-length check needs no scipy

    e, upre, uf, w, t = _f64(ektv, upre, uf, post_weight, t_hours)
    c = UREA_GENERATION_PER_HOUR * t
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        a = uf / w
        k = (UF_INTERCEPT - UF_SLOPE * c) * a - e
        z = UF_SLOPE * a * np.exp(k)
        branch = lambertw(z, 0)
        # lambertw returns complex values; W0 is real exactly when z >= -1/e
        real = np.isfinite(z) & (z >= -np.exp(-1.0))
        r = c + np.exp(k - branch.real)
        ueq = r * upre
    ok = real & (upre > 0) & (w > 0) & np.isfinite(ueq)
    return np.where(ok, ueq, np.nan)


def predict_ueq(frame: pd.DataFrame,
                method: Literal["rate_equation", "tattersall"] = "rate_equation",
                t_hours: ArrayLike = 4.0, access: str = "arterial") -> np.ndarray:
    """Ueq (mg/dL) from Upre, Upos, PP and UF via spKt/V and the chosen eKt/V formula; t_hours
    one length or one per row, access for the rate equation.

    The post-dialysis weight is PP - UF. NaN marks rows with no answer (see module docstring).
    """
    missing = [c for c in ("Upre", "Upos", "PP", "UF") if c not in frame.columns]
    if missing:
        raise KeyError(f"predict_ueq needs columns {', '.join(missing)}")
    upre, upos, pp, uf = (frame[c].to_numpy(dtype=np.float64) for c in ("Upre", "Upos", "PP", "UF"))
    post_weight = pp - uf
    sp = sp_ktv(upre, upos, uf, post_weight, t_hours)
    if method == "rate_equation":
        ektv = ektv_rate_equation(sp, t_hours, access)
    elif method == "tattersall":
        ektv = ektv_tattersall(sp, 60.0 * np.asarray(t_hours, dtype=np.float64))
    else:
        raise ValueError(f"unknown method {method!r}: use 'rate_equation' or 'tattersall'")
    return ueq_from_ektv(ektv, upre, uf, post_weight, t_hours)
