"""Every intake entry point, fed random input, returns a result or a DataError and nothing else."""

from __future__ import annotations

import io

import numpy as np
import openpyxl
import pandas as pd
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from bnapp.intake.data import (
    STUDY_COLUMNS,
    STUDY_INPUTS,
    DataError,
    Dataset,
    detect_mapping,
    load_dataset,
    load_sessions,
    parse_mapping,
    parse_patient,
    read_headers,
)
from bnapp.intake.headers import ALIASES
from bnapp.intake.units import PLAUSIBLE_RANGES

FUZZ = settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])

printable = st.text(st.characters(exclude_categories=("Cc", "Cs")), max_size=8)
header_names = st.one_of(
    st.sampled_from(STUDY_COLUMNS),
    st.sampled_from([a for names in ALIASES.values() for a in names]),
    st.sampled_from(["", " ", "Upre ", "UPOS", "BUN pre", "Upre (mmol/L)", "<b>x</b>", "=1+1"]),
    printable, st.text(max_size=4),
)
cells = st.one_of(
    st.floats(min_value=-10, max_value=500, allow_nan=False).map(lambda v: f"{v:.3g}"),
    st.integers(min_value=0, max_value=300).map(str),
    st.sampled_from(["", " ", "NA", "nan", "inf", "-", "1,5", "1.234,5", "abc", '"', "=A1"]),
    printable, st.text(max_size=3),
)


def _outcome(call):
    """Run call; a Dataset or DataError is fine, anything else fails the test."""
    try:
        result = call()
    except DataError as exc:
        message = str(exc)
        assert message and "\n" not in message and "\r" not in message
        event("refused")
        return None
    event("accepted")
    return result


def _check_dataset(ds: Dataset) -> None:
    assert isinstance(ds, Dataset)
    assert ds.n_usable >= 1 and ds.n_usable + ds.n_dropped == ds.n_read
    assert len(ds.row_numbers) == ds.n_usable and (np.diff(ds.row_numbers) > 0).all()
    assert ds.dropped.row.nunique() == ds.n_dropped
    assert not set(ds.dropped.row) & set(ds.row_numbers)
    X = ds.X(STUDY_COLUMNS)
    assert X.dtype == np.float64 and np.isfinite(X).all()
    for j, column in enumerate(STUDY_COLUMNS):
        low, high = PLAUSIBLE_RANGES[column]
        assert ((X[:, j] >= low) & (X[:, j] <= high)).all()
    assert (ds.y() >= ds.frame.Upos.to_numpy()).all()
    assert len(ds.fingerprint()) == 64


def _table_text(header, rows, sep, quote) -> str:
    def line(values):
        return sep.join(f'"{v}"' if quote else v for v in values)

    return "\n".join([line(header)] + [line(r) for r in rows])


def _check_sessions(ds: Dataset, features: list[str]) -> None:
    """A sessions file's Dataset: the same bookkeeping, the asked-for inputs clean."""
    assert ds.n_usable >= 1 and ds.n_usable + ds.n_dropped == ds.n_read
    assert ds.dropped.row.nunique() == ds.n_dropped
    assert not set(ds.dropped.row) & set(ds.row_numbers)
    X = ds.X(features)
    assert X.dtype == np.float64 and np.isfinite(X).all()
    for j, column in enumerate(features):
        low, high = PLAUSIBLE_RANGES.get(column, (-np.inf, np.inf))
        assert ((X[:, j] >= low) & (X[:, j] <= high)).all()


@FUZZ
@given(st.binary(max_size=2000))
def test_random_bytes(raw):
    ds = _outcome(lambda: load_dataset(raw, "random.bin"))
    if ds is not None:
        _check_dataset(ds)
    headers = _outcome(lambda: read_headers(raw, "random.bin"))
    if headers is not None:
        assert all(isinstance(h, str) and h == h.strip() for h in headers)
        assert set(detect_mapping(headers)) == set(STUDY_COLUMNS)
    sessions = _outcome(lambda: load_sessions(raw, STUDY_INPUTS, "random.bin"))
    if sessions is not None:
        _check_sessions(sessions, STUDY_INPUTS)


@FUZZ
@given(st.binary(max_size=600))
def test_random_bytes_after_a_valid_header(raw):
    data = ",".join(STUDY_COLUMNS).encode() + b"\n" + raw
    ds = _outcome(lambda: load_dataset(data, "random.csv"))
    if ds is not None:
        _check_dataset(ds)


@st.composite
def tables(draw):
    width = draw(st.integers(1, 9))
    unique = {"unique_by": lambda h: h.strip().casefold()} if draw(st.booleans()) else {}
    if draw(st.booleans()):
        header = draw(st.lists(header_names, max_size=max(width - 6, 0), **unique))
        header = draw(st.permutations(STUDY_COLUMNS)) + [
            h for h in header if h.strip().casefold() not in {c.casefold() for c in STUDY_COLUMNS}]
    else:
        header = draw(st.lists(header_names, min_size=width, max_size=width, **unique))
    plausible = [st.integers(int(PLAUSIBLE_RANGES[h][0]) + 1, int(PLAUSIBLE_RANGES[h][1])).map(str)
                 if h in PLAUSIBLE_RANGES else cells for h in header]
    valid = st.tuples(*plausible).map(list)
    rows = draw(st.lists(st.one_of(
        valid, valid, valid,
        st.lists(cells, min_size=len(header), max_size=len(header)),
        st.lists(cells, max_size=len(header) + 1),
    ), max_size=25))
    return header, rows


@FUZZ
@given(tables(), st.sampled_from([",", ";", "\t"]), st.booleans(),
       st.sampled_from(["utf-8", "utf-8-sig", "latin-1", "utf-16"]),
       st.sampled_from(["\n", "\r\n"]), st.sampled_from(["mg/dL", "mmol/L", "BUN"]))
@pytest.mark.slow
def test_random_csv_tables(table, sep, quote, encoding, eol, units):
    header, rows = table
    text = _table_text(header, rows, sep, quote).replace("\n", eol)
    raw = text.encode(encoding, errors="replace")
    ds = _outcome(lambda: load_dataset(raw, "table.csv", units=units))
    if ds is not None:
        _check_dataset(ds)
    features = [h for h in dict.fromkeys(header) if h.strip()][:3] or STUDY_INPUTS
    sessions = _outcome(lambda: load_sessions(raw, features, "table.csv", units=units))
    if sessions is not None:
        _check_sessions(sessions, features)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(tables(), st.booleans())
@pytest.mark.slow
def test_random_xlsx_tables(table, numbers):
    header, rows = table
    book = openpyxl.Workbook()
    sheet = book.active
    for values in [header, *rows]:
        cells_out = []
        for v in values:
            try:
                cells_out.append(float(v) if numbers else v)
            except ValueError:
                cells_out.append(v)
        try:
            sheet.append(cells_out)
        except (ValueError, openpyxl.utils.exceptions.IllegalCharacterError):
            return  # openpyxl refuses to write control characters; nothing to read back
    buf = io.BytesIO()
    book.save(buf)
    ds = _outcome(lambda: load_dataset(buf.getvalue(), "table.xlsx"))
    if ds is not None:
        _check_dataset(ds)


def _valid_xlsx() -> bytes:
    """A small workbook the reader accepts: the study's six columns, eight sessions."""
    book = openpyxl.Workbook()
    book.active.append(list(STUDY_COLUMNS))
    for i in range(8):
        book.active.append([150 + i, 80 + i, 50 + i, 60 + i, 1 + i / 10, 55 + 2 * i])
    buf = io.BytesIO()
    book.save(buf)
    return buf.getvalue()


VALID_XLSX = _valid_xlsx()


def test_the_undamaged_workbook_is_accepted():
    assert load_dataset(VALID_XLSX, "ok.xlsx").n_usable == 8


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.tuples(st.integers(0, len(VALID_XLSX) - 1), st.integers(0, 255)), max_size=12),
       st.integers(16, len(VALID_XLSX)))
def test_damaged_xlsx_bytes(flips, keep):
    """A workbook with bytes overwritten and cut short (a broken download, a disk error), given
    to every reader that takes XLSX: a data set or a DataError, nothing else."""
    raw = bytearray(VALID_XLSX)
    for at, value in flips:
        raw[at] = value
    raw = bytes(raw[:keep])
    ds = _outcome(lambda: load_dataset(raw, "damaged.xlsx"))
    if ds is not None:
        _check_dataset(ds)
    headers = _outcome(lambda: read_headers(raw, "damaged.xlsx"))
    if headers is not None:
        assert all(isinstance(h, str) for h in headers)
    sessions = _outcome(lambda: load_sessions(raw, STUDY_INPUTS, "damaged.xlsx"))
    if sessions is not None:
        _check_sessions(sessions, STUDY_INPUTS)


VALID_CSV = ("a,b,c,d,e,f,Upre\n" + "\n".join(
    f"{150 + i},{80 + i},{50 + i},{60 + i},{1 + i / 10},{55 + 2 * i},1" for i in range(8))).encode()


RIGHT_MAPPING = dict(zip(STUDY_COLUMNS, "abcdef", strict=True))


@FUZZ
@given(st.dictionaries(st.one_of(st.sampled_from(STUDY_COLUMNS + ["upre", "X"]), st.text(max_size=5)),
                       st.one_of(st.sampled_from(list("abcdef") + ["Upre", " A ", "zz"]),
                                 st.text(max_size=5), st.integers()),
                       max_size=2),
       st.booleans())
def test_random_mappings(changes, from_right_one):
    mapping = {**RIGHT_MAPPING, **changes} if from_right_one else changes
    ds = _outcome(lambda: load_dataset(VALID_CSV, "mapped.csv", mapping=mapping))
    if ds is not None:
        _check_dataset(ds)


@FUZZ
@given(st.text(max_size=60))
def test_random_mapping_text(text):
    mapping = _outcome(lambda: parse_mapping(text))
    if mapping is not None:
        assert all(k and v and k == k.strip() and v == v.strip() for k, v in mapping.items())
        _outcome(lambda: load_dataset(VALID_CSV, "mapped.csv", mapping=mapping))


form_values = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True), st.integers(-10**6, 10**6),
    st.sampled_from(["150", " 70,5 ", "2.5", "", "abc", "1,2,3", "1e3", "-5", "+3", "True"]),
    st.text(max_size=8), st.booleans(), st.none(),
)


VALID_FORM = {"Upre": "150", "U120": "80", "Upos": "50", "PP": "70,5", "UF": "2", "Ueq": ""}


@FUZZ
@given(st.dictionaries(st.one_of(st.sampled_from(STUDY_COLUMNS + ["weight", "bun pre"]),
                                 st.text(max_size=6)), form_values, max_size=3),
       st.booleans(), st.sampled_from(["mg/dL", "mmol/L", "BUN", "bogus"]))
def test_random_patient_forms(changes, from_valid_form, units):
    values = {**VALID_FORM, **changes} if from_valid_form else changes
    for required in (["Upre", "UF"], ["PP", "weight"], []):
        few = _outcome(lambda required=required: parse_patient(values, units, required=required))
        if few is not None:
            assert len(few) == 1 and set(required) <= set(few.columns)
            assert np.isfinite(few.to_numpy(dtype=np.float64)).all()
    row = _outcome(lambda: parse_patient(values, units))
    if row is not None:
        assert isinstance(row, pd.DataFrame) and len(row) == 1
        assert list(row.columns[:5]) == STUDY_INPUTS
        assert np.isfinite(row.to_numpy(dtype=np.float64)).all()
        for column in STUDY_INPUTS:
            low, high = PLAUSIBLE_RANGES[column]
            assert low <= row[column][0] <= high


@FUZZ
@given(st.one_of(st.sampled_from(["mg/dL", "MG/DL", "mmol/l", " mmol ", "BUN", "bun mg/dL"]),
                 st.text(max_size=10), st.integers(), st.none()))
def test_random_units(units):
    ds = _outcome(lambda: load_dataset(VALID_CSV, "u.csv", mapping=RIGHT_MAPPING, units=units))
    assert ds is None or ds.units in ("mg/dL", "mmol/L", "BUN")


BAD_CELLS = {  # cell text -> columns where it is a problem
    "": STUDY_COLUMNS, "abc": STUDY_COLUMNS, "inf": STUDY_COLUMNS, "-1": STUDY_COLUMNS,
    "99999": STUDY_COLUMNS, "0": [c for c in STUDY_COLUMNS if c != "UF"],
}


@st.composite
def sessions(draw):
    """Valid sessions (in study order) and, per row, the cells to break: {column: bad text}."""
    n = draw(st.integers(2, 30))
    urea = st.integers(10, 390)
    rows, broken = [], []
    for _ in range(n):
        upre, u120, upos = draw(urea), draw(urea), draw(urea)
        ueq = upos + draw(st.integers(0, 400 - upos))
        rows.append([upre, u120, upos, draw(st.integers(30, 200)),
                     draw(st.integers(0, 90)) / 10, ueq])
        bad = draw(st.dictionaries(st.sampled_from(STUDY_COLUMNS), st.sampled_from(list(BAD_CELLS)),
                                   max_size=2)) if draw(st.integers(0, 3)) == 0 else {}
        broken.append({c: v for c, v in bad.items() if c in BAD_CELLS[v]})
        if draw(st.integers(0, 9)) == 0 and upos > 5:
            rows[-1][5] = upos - 1  # the study's rule: dropped
            broken[-1]["rule"] = True
    return rows, broken


@FUZZ
@given(sessions(), st.permutations(range(6)), st.sampled_from([",", ";", "\t"]))
@pytest.mark.slow
def test_exactly_the_broken_rows_are_dropped(table, order, sep):
    rows, broken = table
    header = [STUDY_COLUMNS[j] for j in order]
    lines = [sep.join(header)]
    for row, bad in zip(rows, broken, strict=True):
        cells = {c: bad.get(c, f"{v:g}") for c, v in zip(STUDY_COLUMNS, row, strict=True)}
        lines.append(sep.join(cells[c] for c in header))
    raw = "\n".join(lines).encode()
    kept = [i for i, bad in enumerate(broken) if not bad]
    values = np.array([rows[i] for i in kept], dtype=np.float64).reshape(-1, 6)
    constant = len(kept) >= 2 and (values[:, :5].min(axis=0) == values[:, :5].max(axis=0)).any()
    if not kept or constant:
        try:
            load_dataset(raw, "s.csv")
        except DataError as exc:
            assert "none of the" in str(exc) or "no usable value" in str(exc) or constant
            return
        raise AssertionError("a file without usable or variable rows was accepted")
    ds = load_dataset(raw, "s.csv")
    _check_dataset(ds)
    assert ds.row_numbers.tolist() == [i + 2 for i in kept]
    assert sorted(set(ds.dropped.row)) == [i + 2 for i, bad in enumerate(broken) if bad]
    np.testing.assert_array_equal(ds.X(STUDY_COLUMNS), values)
