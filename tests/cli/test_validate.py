"""`python -m bnapp validate`: the report, its exit codes, and refusals as one line."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from bnapp.cli import main

REPO_ROOT = Path(__file__).resolve().parents[2]


def test_validate_reports_the_seed_file(urea_csv, capsys):
    assert main(["validate", str(urea_csv)]) == 0
    out = capsys.readouterr().out
    assert out.splitlines()[0] == "Urea.csv: 129 rows read, 109 usable, 20 dropped"
    assert "  Ueq < Upos: 20" in out
    assert "row 10, Ueq = 49 (Upos 51): Ueq < Upos" in out
    assert "columns mapped: Upre <- 'Upre', U120 <- 'U120'" in out
    assert "extra columns: 'Uann', 'centro', 'Req', 'Uf/pp', 'Ktveq'" in out


def test_validate_with_mapping_and_units(tmp_path, capsys):
    path = tmp_path / "mine.csv"
    path.write_text("pre;mid;post;kg;uf;eq\n25;13;8,5;70;2;9\n27;14;9;71;2,5;10\n")
    args = ["validate", str(path), "--mapping", "Upre=pre,U120=mid,Upos=post,PP=kg,UF=uf,Ueq=eq"]
    assert main([*args, "--units", "mmol/L"]) == 0
    out = capsys.readouterr().out
    assert "mine.csv: 2 rows read, 2 usable, 0 dropped" in out
    assert "'pre' read as urea mmol/L, x 6.006 -> urea mg/dL" in out
    assert "Upre <- 'pre'" in out and "extra columns: none" in out


def test_validate_refuses_in_one_line(tmp_path, capsys):
    path = tmp_path / "page.csv"
    path.write_text("<html><body>not data</body></html>")
    assert main(["validate", str(path)]) == 2
    err = capsys.readouterr().err
    assert err == "error: page.csv: this is an HTML or XML page, not a table; save the table as CSV or XLSX\n"


def test_validate_refuses_bad_options_and_missing_files(tmp_path, urea_csv, capsys):
    assert main(["validate", str(tmp_path / "none.csv")]) == 2
    assert "none.csv: no such file" in capsys.readouterr().err
    assert main(["validate", str(urea_csv), "--units", "grams"]) == 2
    assert "unknown urea unit 'grams'" in capsys.readouterr().err
    assert main(["validate", str(urea_csv), "--mapping", "Upre"]) == 2
    assert "should look like Upre=<your column name>" in capsys.readouterr().err


def test_validate_as_a_real_command(urea_csv, tmp_path):
    ok = subprocess.run([sys.executable, "-m", "bnapp", "validate", str(urea_csv)],
                        capture_output=True, text=True, cwd=REPO_ROOT)
    assert ok.returncode == 0 and "129 rows read, 109 usable, 20 dropped" in ok.stdout
    empty = tmp_path / "empty.csv"
    empty.write_bytes(b"")
    bad = subprocess.run([sys.executable, "-m", "bnapp", "validate", str(empty)],
                         capture_output=True, text=True, cwd=REPO_ROOT)
    assert bad.returncode == 2 and "Traceback" not in bad.stderr
    assert bad.stderr.strip().splitlines() == [
        "error: empty.csv: the file is empty; export the table again with its header row"]
