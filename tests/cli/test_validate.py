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
    path.write_text("pre;mid;post;kg;uf;eq\n25;13;8,5;70;2;9\n27;14;9;71;2,5;10\n"
                    "22;12;8;65;1,5;8,6\n30;16;10;80;3;11\n")
    args = ["validate", str(path), "--mapping", "Upre=pre,U120=mid,Upos=post,PP=kg,UF=uf,Ueq=eq"]
    assert main([*args, "--units", "mmol/L"]) == 0
    out = capsys.readouterr().out
    assert "mine.csv: 4 rows read, 4 usable, 0 dropped" in out
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


def _rows_file(path: Path, n: int) -> Path:
    """n usable sessions with varied values (study columns, mg/dL)."""
    lines = ["Upre,U120,Upos,PP,UF,Ueq"]
    lines += [f"{150 + 3 * i},{80 + i},{50 + i},{60 + i % 7},{1.5 + 0.1 * (i % 5)},{55 + i}"
              for i in range(n)]
    path.write_text("\n".join(lines) + "\n")
    return path


def test_validate_exits_2_when_no_protocol_can_train(tmp_path, capsys):
    from bnapp.intake.data import rows_needed

    assert main(["validate", str(_rows_file(tmp_path / "one.csv", 1))]) == 2
    captured = capsys.readouterr()
    assert "one.csv: 1 rows read, 1 usable" in captured.out  # the report comes first
    smallest = rows_needed(2)  # 2-fold cross-validation: the smallest protocol
    assert captured.err == (f"error: one.csv: 1 usable row: too few to train anything; even "
                            f"2-fold cross-validation needs at least {smallest} usable rows\n")
    assert main(["validate", str(_rows_file(tmp_path / "few.csv", smallest - 1))]) == 2
    assert main(["validate", str(_rows_file(tmp_path / "enough.csv", smallest))]) == 0


def test_validate_warns_when_rows_are_too_few_for_ten_folds(tmp_path, capsys):
    from bnapp.intake.data import rows_needed

    assert main(["validate", str(_rows_file(tmp_path / "fifteen.csv", 15))]) == 0
    out = capsys.readouterr().out
    need = rows_needed(10)
    most = max(k for k in range(2, 10) if rows_needed(k) <= 15)
    assert 15 < need and most == 7  # 2 test rows per fold: 7 folds need 14 rows, 8 need 16
    assert (f"warning: 15 usable rows are too few for the default 10-fold cross-validation, "
            f"which needs at least {need}; use at most {most} folds or add rows") in out
    assert main(["validate", str(_rows_file(tmp_path / "plenty.csv", need))]) == 0
    assert "too few" not in capsys.readouterr().out


def test_validate_points_to_grouping_for_an_id_column(urea_csv, tmp_path, capsys):
    assert main(["validate", str(urea_csv)]) == 0
    out = capsys.readouterr().out
    assert "note: column 'centro' looks like a patient or unit identifier (2 values, up to 61 " \
           "rows each): validate with --protocol group-kfold --group-by 'centro'" in out
    path = _rows_file(tmp_path / "ids.csv", 24)
    lines = path.read_text().splitlines()
    path.write_text("\n".join([lines[0] + ",visit", *(f"{line},{i}" for i, line in
                                                      enumerate(lines[1:]))]) + "\n")
    assert main(["validate", str(path)]) == 0  # a distinct number on every row is no group
    assert "note:" not in capsys.readouterr().out
