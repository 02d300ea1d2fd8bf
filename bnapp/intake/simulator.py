"""A synthetic hemodialysis cohort from a two-pool, variable-volume urea kinetic model.

The model is the classical two-compartment (extracellular/intracellular) description of urea
during and after hemodialysis (Schneditz D, Daugirdas JT. Compartment effects in hemodialysis.
Semin Dial 2001;14:271-277; Depner TA. Prescribing Hemodialysis: A Guide to Urea Modeling.
Kluwer, 1991; Gotch FA, Sargent JA. Kidney Int 1985;28:526-534). Blood is sampled from the
extracellular pool (volume Ve, concentration Ce); the intracellular pool (Vi, Ci) exchanges urea
with it through the inter-compartment clearance Kc:

    d(Ve Ce)/dt = G - K Ce - Kc (Ce - Ci),   dVe/dt = -Qf  (during the session)
    d(Vi Ci)/dt = Kc (Ce - Ci),              Vi constant

with urea generation G, dialyzer clearance K (diffusive and convective) and ultrafiltration rate
Qf = UF / 240 min removing extracellular water linearly. After the 240-minute session K = Qf = 0
and the pools equilibrate for 60 minutes: the sample then drawn is Ueq. Urea distribution volume
V = f x post-dialysis weight (a Watson-like fraction), split 1/3 extracellular and 2/3 intracellular
at the end of the session; the extracellular pool starts UF litres larger. Both pools start at
Upre (the long interdialytic interval has equilibrated them). Every urea sample gets the
multiplicative assay noise of a clinical analyser (CV 1.1 %) and lab rounding.

The cohort is synthetic: no patient's data went into it, only the published cohort's summary
statistics, which the sampling distributions below were chosen to resemble.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

SESSION_MIN = 240.0
MID_SAMPLE_MIN = 120.0
REBOUND_MIN = 60.0
STEP_MIN = 10.0  # integration step during the session (Ve frozen at each step's midpoint)
ASSAY_CV = 0.011
EXTRACELLULAR_FRACTION = 1.0 / 3.0
REFERENCE_VOLUME_L = 38.0  # a typical urea distribution volume
COLUMNS = ("Upre", "U120", "Upos", "PP", "UF", "Ueq")


@dataclass(frozen=True)
class Patients:
    """One dialysis session per element (all arrays of the same length)."""

    upre: np.ndarray  # true pre-dialysis urea, mg/dL
    pp: np.ndarray  # pre-dialysis weight, kg
    uf: np.ndarray  # ultrafiltration volume, L
    water_fraction: np.ndarray  # urea distribution volume / post-dialysis weight
    k: np.ndarray  # dialyzer urea clearance, L/min
    kc: np.ndarray  # inter-compartment clearance, L/min
    g: np.ndarray  # urea generation, mg urea/min

    def __len__(self) -> int:
        return len(self.upre)

    @property
    def volume(self) -> np.ndarray:
        """Post-dialysis urea distribution volume, L."""
        return self.water_fraction * (self.pp - self.uf)


def _lognormal(rng: np.random.Generator, mean: float, sd: float, n: int) -> np.ndarray:
    """Log-normal draws with the given arithmetic mean and standard deviation."""
    sigma2 = np.log1p((sd / mean) ** 2)
    return rng.lognormal(np.log(mean) - sigma2 / 2, np.sqrt(sigma2), n)


def _gamma(rng: np.random.Generator, mean: float, sd: float, n: int) -> np.ndarray:
    shape = (mean / sd) ** 2
    return rng.gamma(shape, mean / shape, n)


def sample_patients(n: int, rng: np.random.Generator) -> Patients:
    """Draw n sessions' parameters (the distributions are the documented ones, docs/demo-data.md).

    Means and SDs are set so that the cohort's Upre, U120, Upos, PP and UF resemble the published
    cohort (149 +- 33, 79.5 +- 22.9, 53 +- 16.6 mg/dL, 72.5 +- 16.8 kg, 2.66 +- 1.15 L).
    """
    pp = _lognormal(rng, 72.5, 16.8, n)
    # UF scales with body size (in the published cohort UF/PP = 0.038 +- 0.016), capped at 8 %
    uf = pp * np.minimum(_gamma(rng, 0.037, 0.013, n), 0.08)
    water_fraction = rng.uniform(0.50, 0.60, n)
    volume = water_fraction * (pp - uf)
    # bigger patients get bigger dialyzers and blood flows: K grows mildly with V
    k = _lognormal(rng, 0.195, 0.039, n) * (volume / REFERENCE_VOLUME_L) ** 0.25
    return Patients(
        upre=_lognormal(rng, 149.0, 33.0, n),
        pp=pp,
        uf=uf,
        water_fraction=water_fraction,
        k=k,
        kc=_lognormal(rng, 0.75, 0.225, n),
        g=_lognormal(rng, 14.0, 4.2, n),
    )


def _phi1(z: np.ndarray) -> np.ndarray:
    """(e^z - 1) / z, equal to 1 at z = 0."""
    safe = np.where(z == 0, 1.0, z)
    return np.where(z == 0, 1.0, np.expm1(safe) / safe)


def _exact_step(ce, ci, ve, vi, k, kc, qf, g, h):
    """Advance (Ce, Ci) by h minutes with Ve held at `ve`: the exact solution of the linear system.

    x' = A x + [g / (10 Ve), 0] with A = [[-a, b], [c, -c]], a = (K + Kc - Qf)/Ve, b = Kc/Ve,
    c = Kc/Vi. A has real distinct eigenvalues l1 > l2 (discriminant ((a-c)/2)^2 + bc > 0), so
    f(A) = f(l2) I + (f(l1) - f(l2)) P1 with P1 = (A - l2 I)/(l1 - l2); x(h) = e^{Ah} x +
    h phi1(Ah) forcing.
    """
    a, b, c = (k + kc - qf) / ve, kc / ve, kc / vi
    disc = np.sqrt(((a - c) / 2) ** 2 + b * c)
    l2 = -(a + c) / 2 - disc
    l1 = c * (a - b) / l2  # det(A) / l2: no cancellation when l1 is near 0 (after dialysis)
    d = l1 - l2
    e1, e2 = np.exp(l1 * h), np.exp(l2 * h)
    f1, f2 = h * _phi1(l1 * h), h * _phi1(l2 * h)
    p11, p12, p21, p22 = (-a - l2) / d, b / d, c / d, (-c - l2) / d
    forcing = g / (10.0 * ve)  # mg/min into L -> mg/dL/min
    de, df = e1 - e2, f1 - f2
    ce_new = (e2 + de * p11) * ce + de * p12 * ci + (f2 + df * p11) * forcing
    ci_new = de * p21 * ce + (e2 + de * p22) * ci + df * p21 * forcing
    return ce_new, ci_new


def simulate_sessions(patients: Patients) -> dict[str, np.ndarray]:
    """True extracellular urea (mg/dL) at 120 and 240 min and after 60 min of rebound.

    Hand-written because it is the right tool here: scipy's solve_ivp integrates one system with
    one adaptive step and Python-level calls, far too slow for 10^6 patients. The model is linear
    with coefficients that change only through Ve(t), so freezing Ve at each 10-minute step's
    midpoint and applying the exact 2x2 matrix exponential, vectorized over all patients at once,
    is both fast and accurate (tests compare it with solve_ivp); the rebound phase has constant
    volumes and is one exact step.
    """
    v = patients.volume
    vi = (1.0 - EXTRACELLULAR_FRACTION) * v
    ve_end = EXTRACELLULAR_FRACTION * v
    qf = patients.uf / SESSION_MIN
    ce = patients.upre.astype(np.float64)
    ci = ce.copy()
    out = {}
    n_steps = int(round(SESSION_MIN / STEP_MIN))
    for i in range(n_steps):
        ve_mid = ve_end + qf * (SESSION_MIN - (i + 0.5) * STEP_MIN)
        ce, ci = _exact_step(ce, ci, ve_mid, vi, patients.k, patients.kc, qf, patients.g, STEP_MIN)
        if (i + 1) * STEP_MIN == MID_SAMPLE_MIN:
            out["U120"] = ce
    out["Upos"] = ce
    zero = np.zeros_like(ce)
    out["Ueq"], _ = _exact_step(ce, ci, ve_end, vi, zero, patients.kc, zero, patients.g,
                                REBOUND_MIN)
    return out


def simulate_cohort(n: int, seed: int) -> pd.DataFrame:
    """n synthetic sessions: Upre, U120, Upos, PP, UF, Ueq as a lab would report them.

    Urea (mg/dL) carries assay noise (CV 1.1 %) and is rounded to 0.1 mg/dL, PP to 0.1 kg, UF to
    0.1 L. The same (n, seed) gives the same table on every run (numpy's PCG64 Generator).
    """
    if n < 1:
        raise ValueError(f"n must be at least 1, got {n}")
    rng = np.random.default_rng(seed)
    patients = sample_patients(n, rng)
    urea = {"Upre": patients.upre, **simulate_sessions(patients)}
    measured = {name: np.round(values * (1.0 + ASSAY_CV * rng.standard_normal(n)), 1)
                for name, values in urea.items()}
    return pd.DataFrame({
        "Upre": measured["Upre"], "U120": measured["U120"], "Upos": measured["Upos"],
        "PP": np.round(patients.pp, 1), "UF": np.round(patients.uf, 1), "Ueq": measured["Ueq"],
    }, columns=list(COLUMNS))

