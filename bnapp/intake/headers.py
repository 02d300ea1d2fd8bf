"""Which of a file's columns holds which study column: the headers cleaned, the study
columns' aliases, and the user's mapping.

A column is found by its exact name (any case) or, for a study column, one of its ALIASES; a
mapping the user gives comes first. Duplicate names, two candidates for one column, a missing
column or a mapping naming no column refuse the file with one line naming them and the fix.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence

import pandas as pd

from bnapp.intake.reading import DataError, Table, clean, names_text, quote
from bnapp.intake.rules import NUMBER, blank
from bnapp.intake.units import STUDY_COLUMNS

# Column-name aliases, compared after _name_key() (lower case, letters and digits only, bracketed
# parts and trailing unit words removed): "urea_pre", "Pre urea (mg/dL)" and "UREA PRE" all match.
ALIASES = {
    "Upre": ["upre", "ureapre", "preurea", "predialysisurea", "ureapredialysis", "ureabefore",
             "ureastart", "urea0", "u0", "bunpre", "prebun", "predialysisbun", "bun0"],
    "U120": ["u120", "urea120", "urea120min", "ureamid", "midurea", "ureaintra", "intraurea",
             "u2h", "urea2h", "bun120", "bunmid", "midbun"],
    "Upos": ["upos", "upost", "ureapos", "ureapost", "posturea", "postdialysisurea",
             "ureapostdialysis", "ureaend", "endurea", "urea240", "u240", "bunpost", "postbun",
             "bunpos", "postdialysisbun"],
    "Ueq": ["ueq", "ureaeq", "equrea", "equilibratedurea", "ureaequilibrated",
            "equilibratedposturea", "reboundurea", "ureareb", "urea300", "buneq", "eqbun",
            "equilibratedbun", "bunequilibrated"],
    "PP": ["pp", "weight", "preweight", "weightpre", "predialysisweight", "bodyweight", "bw",
           "prebw", "wt", "prewt", "weightbefore", "peso", "pesopre", "pesoprevio"],
    "UF": ["uf", "ufvolume", "ufvol", "ultrafiltration", "ultrafiltrationvolume", "netuf",
           "ufnet", "totaluf", "uftotal"],
}
_ALIAS_TO_CANON = {alias: canon for canon, names in ALIASES.items() for alias in names}
_UNIT_WORDS = {"mg", "dl", "mgdl", "mmol", "l", "mmoll", "kg", "liters", "litres", "liter", "litre"}


def clean_headers(table: Table, name: str) -> tuple[list[str], pd.DataFrame]:
    """Stripped header names; unnamed empty columns removed; duplicates refused."""
    body = table.body
    headers, keep = [], []
    for pos, raw in enumerate(table.headers):
        header = clean(str(raw)).strip()
        column_empty = pos not in body.columns or blank(body[pos]).all()
        if not header:
            if column_empty:
                continue
            header = f"(unnamed column {pos + 1})"
        headers.append(header)
        keep.append(pos)
    body = body.reindex(columns=keep)
    body.columns = range(len(keep))
    seen: dict[str, str] = {}
    for header in headers:
        key = header.casefold()
        if key in seen:
            what = (f"the column name {quote(header)} appears twice" if seen[key] == header else
                    f"the column names {quote(seen[key])} and {quote(header)} differ only in "
                    "case or spaces")
            raise DataError(f"{name}: {what}; rename one of them so every name is unique")
        seen[key] = header
    return headers, body


def _name_key(header: str) -> str:
    words = re.findall(r"[a-z0-9]+", re.sub(r"[(\[].*?[)\]]", " ", header.casefold()))
    while len(words) > 1 and words[-1] in _UNIT_WORDS:
        words.pop()
    return "".join(words)


def canonical_name(text: str) -> str | None:
    """The study column a name or alias stands for, or None."""
    exact = {c.casefold(): c for c in STUDY_COLUMNS}
    return exact.get(text.strip().casefold()) or _ALIAS_TO_CANON.get(_name_key(text))


def candidates(headers: Sequence[str], column: str, free: list[int]) -> list[int]:
    """Positions among `free` that could hold `column`: its exact name (any case) beats a study
    column's aliases."""
    exact = [i for i in free if headers[i].casefold() == column.casefold()]
    if exact or column not in STUDY_COLUMNS:
        return exact
    return [i for i in free if _ALIAS_TO_CANON.get(_name_key(headers[i])) == column]


def resolve_columns(headers: list[str], mapping, name: str, wanted: list[str],
                    training: bool) -> dict[str, int]:
    """wanted column -> header position: the user's mapping first, then names and aliases
    (other columns first, so a study alias never takes a column wanted by its own name)."""
    found = _user_mapping(headers, mapping, name)
    used = set(found.values())
    for column in sorted(wanted, key=lambda c: c in STUDY_COLUMNS):
        if column in found:
            continue
        hits = candidates(headers, column, [i for i in range(len(headers)) if i not in used])
        if len(hits) > 1:
            both = " and ".join(quote(headers[i]) for i in hits[:3])
            fix = f"map the right one explicitly ({column}=<column>)" if training else \
                "keep one of them"
            raise DataError(f"{name}: columns {both} could each be {column}; {fix}")
        if hits:
            found[column] = hits[0]
            used.add(hits[0])
    missing = [c for c in wanted if c not in found]
    if missing:
        fix = (f"Rename the columns or map them (e.g. {missing[0]}=<your column>)." if training
               else f"The network needs {names_text(wanted)}: rename the columns to match.")
        hint = (" The first row holds numbers: add a header row." if headers and all(
            NUMBER.fullmatch(h) for h in headers) else "")
        raise DataError(f"{name}: required column(s) {', '.join(missing)} not found; found "
                        f"{names_text(headers)}. {fix}{hint}")
    return found


def _user_mapping(headers: list[str], mapping, name: str) -> dict[str, int]:
    if mapping is None:
        return {}
    if not isinstance(mapping, Mapping):
        raise DataError("the column mapping must be pairs like Upre=<your column>")
    by_name = {h.casefold(): i for i, h in enumerate(headers)}
    found: dict[str, int] = {}
    for key, header in mapping.items():
        if not isinstance(key, str) or not isinstance(header, str):
            raise DataError("the column mapping must pair names with names, like Upre=urea_pre")
        canon = {c.casefold(): c for c in STUDY_COLUMNS}.get(key.strip().casefold())
        if canon is None:
            raise DataError(f"mapping {quote(key)}: not a study column; map one of "
                            f"{', '.join(STUDY_COLUMNS)}")
        pos = by_name.get(clean(header).strip().casefold())
        if pos is None:
            raise DataError(f"{name}: mapping {canon}={quote(header)}: no such column; found "
                            f"{names_text(headers)}")
        if pos in found.values():
            raise DataError(f"mapping: column {quote(headers[pos])} is mapped twice; "
                            "map each study column to a different column")
        found[canon] = pos
    return found
