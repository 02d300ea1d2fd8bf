"""The intake API beyond load_dataset: a file's headers, the detected mapping, files of sessions to
predict for (no outcome), and the Predict form's values for a network's own inputs."""

from __future__ import annotations

import io

import numpy as np
import openpyxl
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bnapp.intake import data
from bnapp.intake.data import (
    STUDY_COLUMNS,
    STUDY_INPUTS,
    DataError,
    detect_mapping,
    load_dataset,
    load_sessions,
    parse_patient,
    read_headers,
)
from bnapp.intake.headers import ALIASES
from bnapp.intake.units import PLAUSIBLE_RANGES, UREA_COLUMNS, UREA_FACTORS

PROPERTY = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
# names a study column is found by, leaving out those that state a unit (BUN, mmol/L, mg/dL)
PLAIN_NAMES = {canon: [canon, canon.lower(), canon.upper()] + [
    a for a in names if not any(u in a for u in ("bun", "mmol", "mg"))]
    for canon, names in ALIASES.items()}
BAD_CELLS = ["", "abc", "inf", "-1", "99999", "0", "NA"]


# ------------------------------------------------------------------------ headers and mapping

def test_read_headers_match_what_load_dataset_maps(urea_csv):
    headers = read_headers(urea_csv.read_bytes(), "Urea.csv")
    assert headers == pd.read_csv(urea_csv, nrows=0).columns.tolist()
    assert read_headers(urea_csv) == headers  # a path, named by the file itself
    ds = load_dataset(urea_csv)
    assert set(ds.mapping.values()) | set(ds.extra_columns) == set(headers)


def test_read_headers_of_a_workbook_and_a_semicolon_csv():
    frame = pd.DataFrame({" Urea pre ": [1.0], "peso": [70.0]})
    book = io.BytesIO()
    frame.to_excel(book, index=False)
    assert read_headers(book.getvalue(), "s.xlsx") == ["Urea pre", "peso"]
    assert read_headers(b"a;b;c\n1,5;2;3\n", "s.csv") == ["a", "b", "c"]


@pytest.mark.parametrize(("content", "message"), [
    (b"%PDF-1.4 ...", "x.pdf: this is a PDF"),
    (b"", "x.pdf: the file is empty"),
    (b"a,A\n1,2\n", "appears twice|differ only in case"),
])
def test_read_headers_refuse_what_load_dataset_refuses(content, message):
    with pytest.raises(DataError, match=message) as mine:
        read_headers(content, "x.pdf")
    with pytest.raises(DataError) as theirs:
        load_dataset(content, "x.pdf")
    assert str(mine.value) == str(theirs.value)


def test_detect_mapping_agrees_with_load_dataset(urea_csv):
    headers = read_headers(urea_csv.read_bytes(), "Urea.csv")
    assert detect_mapping(headers) == load_dataset(urea_csv).mapping


def test_detect_mapping_uses_aliases_and_leaves_unknown_or_ambiguous_columns_open():
    headers = ["urea_pre", "Urea 120 min", "BUN post", "weight", "pre urea", "UF", "x"]
    guess = detect_mapping(headers)
    assert list(guess) == STUDY_COLUMNS
    assert guess["Upre"] is None  # "urea_pre" and "pre urea" could both be Upre
    assert guess["U120"] == "Urea 120 min" and guess["Upos"] == "BUN post"
    assert guess["PP"] == "weight" and guess["UF"] == "UF" and guess["Ueq"] is None
    assert detect_mapping(["weight", "PP"])["PP"] == "PP"  # an exact name beats an alias


@st.composite
def headed_files(draw):
    """Headers drawn from study names, aliases and others; cells plausible for the column each
    header would be taken for (so only the headers decide whether load_dataset accepts it)."""
    pool = [n for names in PLAIN_NAMES.values() for n in names] + ["note", "x", "Kt", "peso2"]
    headers = draw(st.lists(st.sampled_from(pool), min_size=2, max_size=9,
                            unique_by=lambda h: h.casefold()))
    guess = detect_mapping(headers)
    holds = {header: canon for canon, header in guess.items() if header is not None}
    base = {"Upre": 150, "U120": 80, "Upos": 50, "PP": 60, "UF": 1, "Ueq": 55}
    rows = [[f"{base[holds[h]] + (i / 10 if holds[h] == 'UF' else i)}" if h in holds else "1"
             for h in headers] for i in range(4)]
    return headers, rows, guess


@PROPERTY
@given(headed_files())
def test_load_dataset_accepts_a_file_exactly_when_every_column_is_detected(file):
    headers, rows, guess = file
    raw = "\n".join(",".join(r) for r in [headers, *rows]).encode()
    assert read_headers(raw, "f.csv") == headers
    if None in guess.values():
        with pytest.raises(DataError, match="not found|could each be"):
            load_dataset(raw, "f.csv")
    else:
        assert load_dataset(raw, "f.csv").mapping == guess


# ---------------------------------------------------------------------- files of sessions

@st.composite
def session_files(draw):
    """A CSV of sessions (the study inputs under names load_dataset knows, two extra columns, some
    cells broken) in a urea unit, and where a Ueq column could go."""
    units = draw(st.sampled_from(["mg/dL", "mmol/L", "BUN"]))
    factor = UREA_FACTORS[units]
    names = {c: draw(st.sampled_from(PLAIN_NAMES[c])) for c in STUDY_INPUTS}
    valid = {c: (st.integers(6, 390).map(lambda v: f"{v / factor:.10g}") if c in UREA_COLUMNS
                 else st.integers(*map(int, PLAUSIBLE_RANGES[c])).map(str) if c == "PP"
                 else st.integers(0, 99).map(lambda v: f"{v / 10:g}"))
             for c in STUDY_INPUTS}
    columns = {names[c]: c for c in STUDY_INPUTS}
    table = {name: [] for name in [*columns, "note", "Kt"]}
    for i in range(draw(st.integers(1, 20))):
        for name, canon in columns.items():
            broken = draw(st.integers(0, 5)) == 0
            table[name].append(draw(st.sampled_from(BAD_CELLS) if broken else valid[canon]))
        table["note"].append(f"visit {i}")  # never blank, with or without Ueq the same rows
        table["Kt"].append(draw(st.one_of(st.integers(30, 60).map(str),
                                          st.sampled_from(BAD_CELLS))))
    order = draw(st.permutations(list(table)))
    return {name: table[name] for name in order}, units, draw(st.integers(0, len(order)))


def _csv(table: dict[str, list[str]]) -> bytes:
    return pd.DataFrame(table).to_csv(index=False).encode()


@PROPERTY
@given(session_files())
@pytest.mark.slow
def test_sessions_are_read_as_load_dataset_reads_them_with_a_ueq_column(file):
    table, units, where = file
    n = len(next(iter(table.values())))
    ueq = f"{399 / UREA_FACTORS[units]:.10g}"  # plausible and above any plausible Upos
    with_ueq = dict(list(table.items())[:where] + [("Ueq", [ueq] * n)]
                    + list(table.items())[where:])
    try:
        full = load_dataset(_csv(with_ueq), "s.csv", units=units)
    except DataError as err:
        if "same value" in str(err):  # a constant input: refused for training only
            assert load_sessions(_csv(table), STUDY_INPUTS, "s.csv", units=units).n_usable >= 2
        else:
            with pytest.raises(DataError) as refused:
                load_sessions(_csv(table), STUDY_INPUTS, "s.csv", units=units)
            assert str(refused.value) == str(err)
        return
    sessions = load_sessions(_csv(table), STUDY_INPUTS, "s.csv", units=units)
    pd.testing.assert_frame_equal(sessions.frame, full.frame.drop(columns="Ueq"))
    np.testing.assert_array_equal(sessions.row_numbers, full.row_numbers)
    pd.testing.assert_frame_equal(sessions.dropped, full.dropped)
    assert (sessions.n_read, sessions.units, sessions.extra_columns) == (
        full.n_read, full.units, full.extra_columns)
    assert sessions.mapping == {c: h for c, h in full.mapping.items() if c != "Ueq"}
    assert sessions.column_units == {c: u for c, u in full.column_units.items() if c != "Ueq"}
    assert sessions.notes == [note for note in full.notes if "'Ueq'" not in note]


SESSIONS_CSV = ("Urea pre (mg/dL);urea_120;Post urea;Weight;UF;note\n"
                "96,0;61,2;43,0;89,4;2,2;a\n"
                "182,6;114,6;abc;102,8;3,3;b\n"
                "\n"
                "149,5;100,1;70,7;91,8;4,1;c\n")


def test_a_sessions_file_needs_no_outcome_and_lists_bad_rows():
    sessions = load_sessions(SESSIONS_CSV.encode(), STUDY_INPUTS, "visits.csv")
    assert (sessions.name, sessions.n_read, sessions.n_usable) == ("visits.csv", 3, 2)
    np.testing.assert_array_equal(sessions.row_numbers, [2, 5])  # spreadsheet rows, header = 1
    np.testing.assert_allclose(sessions.X(STUDY_INPUTS)[1], [149.5, 100.1, 70.7, 91.8, 4.1])
    assert sessions.mapping["Upos"] == "Post urea" and sessions.extra_columns == ["note"]
    bad = sessions.dropped.iloc[0]
    assert (bad.row, bad.column, bad.value, bad.reason) == (3, "Post urea", "abc", "not a number")


def test_a_sessions_file_needs_only_the_inputs_asked_for():
    text = "Upre,UF,Ueq\n150,2,60\n120,1.5,50\n"
    sessions = load_sessions(text.encode(), ["UF", "Upre"], "three.csv")
    assert list(sessions.frame.columns) == ["UF", "Upre", "Ueq (unused)"]
    np.testing.assert_array_equal(sessions.X(["Upre", "UF"]), [[150, 2], [120, 1.5]])
    with pytest.raises(DataError, match="required column.*Upos"):
        load_sessions(text.encode(), ["Upre", "Upos"], "three.csv")


def test_sessions_in_mmol_per_litre_are_converted():
    mmol = "Upre,U120,Upos,PP,UF\n20,12,8,70,2\n25,15,10,80,3\n"
    frame = load_sessions(mmol.encode(), STUDY_INPUTS, "s.csv", units="mmol/L").frame
    np.testing.assert_allclose(frame["Upre"], [20 * 6.006, 25 * 6.006], rtol=1e-9)
    np.testing.assert_allclose(frame["PP"], [70, 80])  # weights are not urea


def test_one_patients_sessions_may_repeat_an_input():
    text = "Upre,U120,Upos,PP,UF\n150,80,50,70,2\n140,75,45,70,2\n"
    assert load_sessions(text.encode(), STUDY_INPUTS, "s.csv").n_usable == 2
    with pytest.raises(DataError, match="same value 70 in every usable row"):
        load_dataset(text.replace("UF\n", "UF,Ueq\n").replace(",2\n", ",2,60\n").encode(), "s.csv")


def test_a_workbook_of_sessions_with_an_extra_input():
    book = openpyxl.Workbook()
    book.active.append(["UPRE", "U120", "UPOS", "PP", "UF", "Kt"])
    book.active.append([150, 80, 50, 70, 2.5, 48.0])
    book.active.append([120, 70, 45, 60, 2.0, "high"])
    buf = io.BytesIO()
    book.save(buf)
    sessions = load_sessions(buf.getvalue(), [*STUDY_INPUTS, "Kt"], "s.xlsx")
    assert sessions.row_numbers.tolist() == [2] and sessions.frame.loc[0, "Kt"] == 48.0
    assert sessions.dropped.iloc[0].to_dict() == {"row": 3, "column": "Kt", "value": "high",
                                                  "reason": "not a number"}


@pytest.mark.parametrize(("text", "message"), [
    ("Upre,U120,PP,UF\n150,80,70,2\n", "required column(s) Upos not found"),
    ("Upre,U120,Upos,PP,UF\n150,80,50,7000,2\n", "'PP' (PP) has no usable value"),
    ("Upre,U120,Upos,PP,UF\n150,80,abc,70,2\n150,80,50,-1,2\n", "none of the 2 rows"),
    ("Upre,U120,Upos,PP,UF\n", "no data rows"),
    ("urea_pre,Urea pre,U120,Upos,PP,UF\n1,2,3,4,5,6\n", "could each be Upre; keep one"),
])
def test_unusable_sessions_files_are_refused_by_name(text, message):
    with pytest.raises(DataError, match=message.replace("(", r"\(").replace(")", r"\)")) as err:
        load_sessions(text.encode(), STUDY_INPUTS, "visits.csv")
    assert str(err.value).startswith("visits.csv: ")


@pytest.mark.parametrize("features", [[], [""], [3]])
def test_sessions_need_named_inputs(features):
    with pytest.raises(DataError, match="non-empty list of column names"):
        load_sessions(b"Upre\n1\n", features, "s.csv")


# ------------------------------------------------------------------------------ form values

INPUT_VALUES = st.fixed_dictionaries({
    "Upre": st.floats(100, 300), "U120": st.floats(50, 200), "Upos": st.floats(20, 100),
    "PP": st.floats(40, 150), "UF": st.floats(0, 5)})


@settings(max_examples=100, deadline=None)
@given(INPUT_VALUES, st.lists(st.sampled_from(STUDY_INPUTS), min_size=1, max_size=5, unique=True),
       st.sampled_from(["mg/dL", "mmol/L", "BUN"]))
def test_a_network_s_own_inputs_are_enough(values, required, units):
    values = {c: v / UREA_FACTORS[units] if c in UREA_COLUMNS else v for c, v in values.items()}
    full = parse_patient(values, units)
    mine = parse_patient({c: values[c] for c in required}, units, required=required)
    expected = full[[c for c in STUDY_INPUTS if c in required]]
    pd.testing.assert_frame_equal(mine, expected)


def test_only_the_required_inputs_must_be_given():
    with pytest.raises(DataError, match="Upos: missing; enter a value in mg/dL"):
        parse_patient({"Upre": 150, "UF": 2}, required=["Upre", "Upos", "UF"])
    with pytest.raises(DataError, match="Kt: missing; enter a number"):
        parse_patient({"Upre": 150}, required=["Upre", "Kt"])
    row = parse_patient({"Upre": "150", "Kt": " 48,5 ", "PP": None, "U120": ""},
                        required=["Upre", "Kt"])
    assert row.to_dict("records") == [{"Upre": 150.0, "Kt": 48.5}]  # empty optional fields left out


def test_optional_study_fields_are_still_checked():
    with pytest.raises(DataError, match="PP: 7000 kg is outside"):
        parse_patient({"Upre": 150, "PP": 7000}, required=["Upre"])
    with pytest.raises(DataError, match="below Upos"):
        parse_patient({"Upos": 60, "Ueq": 50}, required=["Upos"])
    with pytest.raises(DataError, match="Upre: missing; enter a number"):
        parse_patient({"Upre": " "}, required=["Upre"])


def test_a_required_name_is_taken_as_it_is_not_as_an_alias():
    # a network may use a file's own "weight" column beside PP: the field is not PP's alias
    row = parse_patient({"PP": 70, "weight": 3}, required=["PP", "weight"])
    assert row.to_dict("records") == [{"PP": 70.0, "weight": 3.0}]
    assert parse_patient({"weight": 70}, required=[]).columns.tolist() == ["PP"]
    with pytest.raises(DataError, match="no values given"):
        parse_patient({"PP": ""}, required=[])


@pytest.mark.parametrize(("given", "canonical"), [
    ("mg/dL", "mg/dL"), ("MMOL/l", "mmol/L"), ("bun mg/dL", "BUN")])
def test_urea_unit_names_the_choice(given, canonical):
    assert data.urea_unit(given) == canonical


def test_an_unknown_urea_unit_is_refused():
    with pytest.raises(DataError, match="unknown urea unit 'g/L'; use one of mg/dL, mmol/L, BUN"):
        data.urea_unit("g/L")
