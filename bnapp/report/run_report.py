"""Every table and figure of one run, and the files the Export page and `analyze` write from them.

`run_tables` / `run_figures` (of `bnapp.report.run_charts`) compute a run's analyses and
charts; `export_options` say how the files show them (units, session lengths); `build_export`
turns them into a ZIP (figures as PNG + SVG, tables as CSV + XLSX) and a self-contained HTML
report that says how to reproduce the run. Text from the user's file (names, columns, cells)
reaches those files only through `bnapp.report.export`, which escapes it for HTML and
neutralizes it for spreadsheets.
"""

from __future__ import annotations

import io
import json
import os
import shlex
import zipfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import altair as alt
import numpy as np
import pandas as pd

from bnapp import __version__
from bnapp.analyses import baselines, concordance, explain, stages, verdict
from bnapp.analyses.cohort_intervals import run_replicates
from bnapp.analyses.layer_tables import importance_tables, parameter_tables, tag_layer
from bnapp.analyses.settings import SETTINGS
from bnapp.engine.model import ArchSpec
from bnapp.engine.protocols import Protocol
from bnapp.engine.results import RunResult, network_layers
from bnapp.intake.data import DEMO_PATH, STUDY_INPUTS, STUDY_TARGET, Dataset, dropped_summary
from bnapp.intake.duration import STUDY_ACCESS, STUDY_HOURS
from bnapp.intake.units import LIBRARY_DISPLAY, UNIT_LABELS, UREA_UNIT_NAMES, DisplayUnits
from bnapp.report import export, model_card, page_tables
from bnapp.report.markup import unescape_md
from bnapp.report.model_card import session_words
from bnapp.report.run_charts import run_figures
from bnapp.report.style import with_unit

CLI_OUT = "bnapp-results"  # the output folder the reproduce command writes to
# The tables the HTML report shows in full (the ZIP holds all of them): file stem -> heading.
REPORT_TABLES = {
    "architecture": "Architecture and parameter counts",
    "bn_parameters": "BN parameters of each layer, mean and SD across folds (the input layer's "
                     "is study table 2)",
    "association": "γ against importance: correlations with bootstrap intervals",
    "concordance": "|γ| against every definition of importance (Shapley, integrated gradients, "
                   "ablations): rank agreement per fold, mean and bootstrap interval over folds",
    "baselines": "Network against linear regression and the clinical formulas",
    "paired_comparison": "Network against each baseline, paired over folds: read p_value (the "
                         "Nadeau–Bengio corrected t); wilcoxon_p ignores that the folds share "
                         "training rows, so it is too small",
    "agreement": "Agreement with the measured value (Bland–Altman; proportional bias: the "
                 "difference regressed on the method's own value, 1 − the calibration slope)",
    "calibration": "Calibration: measured regressed on predicted",
    "share_within": "Sessions within a clinically acceptable difference of the measured value "
                    "(tolerance), per method, with Wilson 95 % intervals",
    "coverage": "Coverage of the prediction intervals on the test rows: cv_plus (the intervals "
                "Predict gives, nested) and split_conformal (own fold ± the other folds' "
                "residuals)",
    "data_dropped_by_reason": "Rows dropped while reading the data, by reason",
}
Progress = Callable[[float, str], None]
# export options that change how the files show the analyses, not the analyses (run_tables')
PRESENTATION = ("display", "length_column")


def run_tables(run: RunResult, *, n_permutations: int = SETTINGS.n_permutations,
               n_boot: int = SETTINGS.n_boot, seed: int = SETTINGS.seed,
               interval: float = SETTINGS.interval_level, groups=None,
               n_replicates: int = SETTINGS.n_replicates, t_hours=STUDY_HOURS,
               access: str = STUDY_ACCESS) -> dict[str, pd.DataFrame]:
    """Every analysis table of a run, keyed by file stem; stages and sensitivity cover the input
    and every hidden layer (told apart by the `layer` and `hidden_layer` columns); agreement,
    calibration, coverage and predictions with prediction intervals at level `interval`; the
    association and concordance intervals over cohorts like this one (run_replicates(run,
    groups, n_replicates), trained once for both), and the verdict per layer and definition;
    the formulas and eKt/V for sessions of t_hours (one, or one per row) through `access`."""
    replicates = run_replicates(run, groups, n_replicates, seed)
    cohort = {"replicates": replicates, "n_replicates": 0}  # none built a second time
    found = importance_tables(run, n_permutations=n_permutations, n_boot=n_boot, seed=seed,
                              **cohort)
    quantiles = pd.concat([tag_layer(stages.stage_summary(run, layer), layer)
                           for layer in network_layers(run.spec)], ignore_index=True)
    loss, gamma = stages.training_curves(run)
    explained = concordance.importance_report(run, n_permutations=n_permutations, n_boot=n_boot,
                                              seed=seed, sens=found["sensitivity"], **cohort)
    ice, pdp = explain.ice_pdp(run, seed=seed)
    # every method's test rows, shared by four tables
    preds = baselines.fold_predictions(run, t_hours, access)
    base = baselines.baselines(run, preds)
    return {
        **parameter_tables(run),
        "stage_quantiles": quantiles,
        **found,
        "baselines": base,
        "error_intervals": baselines.error_intervals(run, **cohort, t_hours=t_hours,
                                                     access=access),
        "paired_comparison": baselines.paired_comparison(run, base),
        "loss_curves": loss,
        "gamma_curves": gamma,
        **model_card.trust_tables(run, interval, preds, t_hours, access),
        "importance": explained["importance"],
        "concordance": explained["concordance"],
        "verdict": layer_verdicts(run, explained["concordance"], explained["importance"]),
        "shapley_values": explained["shapley"],
        "ice": ice,
        "pdp": pdp,
    }


def layer_verdicts(run: RunResult, concordance_table: pd.DataFrame,
                   importance: pd.DataFrame) -> pd.DataFrame:
    """verdict.verdict of every layer with a BN, tagged with its layer."""
    found = [tag_layer(verdict.verdict(concordance_table, importance, layer), layer)
             for layer in network_layers(run.spec) if page_tables.has_bn(run.spec, layer)]
    return pd.concat(found, ignore_index=True) if found else pd.DataFrame(
        columns=["layer", "hidden_layer", *verdict.VERDICT_COLUMNS])


# ------------------------------------------------------------------------- what the run was made of

def analysis_options(*, n_permutations: int = SETTINGS.n_permutations,
                     n_boot: int = SETTINGS.n_boot, t_hours=STUDY_HOURS,
                     access: str = STUDY_ACCESS) -> dict[str, object]:
    """run_tables' keyword arguments: the Export page's ablation shuffles and bootstrap
    resamples, with the settings' seed (the pages' and the CLI's too), and the formulas'
    session hours (one, or one per row of the run) and access (the pages' formula_length)."""
    hours = float(t_hours) if np.ndim(t_hours) == 0 else np.asarray(t_hours, dtype=np.float64)
    return {"n_permutations": int(n_permutations), "n_boot": int(n_boot), "seed": SETTINGS.seed,
            "t_hours": hours, "access": access}


def export_options(display: DisplayUnits = LIBRARY_DISPLAY, length_column: str | None = None,
                   **analysis) -> dict[str, object]:
    """The Export job's options: analysis_options(**analysis), the units its files show values
    in, and the data set's column the session lengths came from (None: one length)."""
    return {**analysis_options(**analysis), "display": display.urea,
            "length_column": length_column}


def table_options(options: Mapping[str, object]) -> dict[str, object]:
    """run_tables' keyword arguments among export options."""
    return {k: v for k, v in options.items() if k not in PRESENTATION}


def presentation(options: Mapping[str, object] | None) -> dict[str, object]:
    """What export options say about the files, as model_card's keywords: display units and
    session lengths (the study's 4 h, arterial, when not given)."""
    options = options or {}
    return {"display": DisplayUnits(options.get("display", LIBRARY_DISPLAY.urea)),
            "t_hours": options.get("t_hours", STUDY_HOURS),
            "access": options.get("access", STUDY_ACCESS),
            "length_column": options.get("length_column")}


def export_figures(run: RunResult, tables: Mapping[str, pd.DataFrame],
                   options: Mapping[str, object] | None) -> dict[str, alt.TopLevelMixin]:
    """run_figures of run_tables' output as export `options` say (units, session lengths)."""
    shown = presentation(options)
    return run_figures(run, tables, display=shown["display"], t_hours=shown["t_hours"],
                       access=shown["access"])


def data_summary(run: RunResult, data_name: str, dataset: Dataset | None = None,
                 options: Mapping[str, object] | None = None) -> dict[str, object]:
    """Label -> value lines about the data; rows read and dropped only when `dataset` (the run's
    own data set) is given; the units and session lengths of export `options`."""
    shown = presentation(options)
    display = shown["display"]
    summary: dict[str, object] = {"Data set": data_name}
    if dataset is not None:
        summary |= {
            "Rows read": dataset.n_read,
            "Rows usable": dataset.n_usable,
            "Rows dropped": (f"{dataset.n_dropped} (why: see the validation report in the ZIP)"
                             if dataset.n_dropped else 0),
            "Columns": ", ".join(with_unit(str(c), display) for c in dataset.frame.columns),
            "Urea units in the file": UNIT_LABELS.get(dataset.units, dataset.units),
            "Column mapping": ", ".join(f"{canon} ← {header}"
                                        for canon, header in dataset.mapping.items()),
        }
        if dataset.notes:
            summary["Notes"] = "; ".join(dataset.notes)
    else:
        summary["Validation report"] = ("not included: this data set is not loaded in the "
                                        "session (load it on the Data page to add it)")
    summary |= {
        "Sessions kept together by": unescape_md(model_card.grouping_words(run.protocol)),
        "Rows used by the run": len(run.y),
        "Inputs": ", ".join(with_unit(f, display) for f in run.features),
        "Target": with_unit(run.target, display),
        "Results shown in": f"{UREA_UNIT_NAMES[display.urea]} for urea",
        "Session length and access (formulas, eKt/V)": unescape_md(session_words(
            shown["t_hours"], shown["access"], shown["length_column"])),
    }
    return summary


def data_tables(dataset: Dataset) -> dict[str, pd.DataFrame]:
    """The data set's validation report: every dropped row's problem, and counts by reason."""
    return {"data_dropped_rows": dataset.dropped, "data_dropped_by_reason": dropped_summary(dataset)}


def architecture_table(spec: ArchSpec, n_inputs: int) -> pd.DataFrame:
    counts = spec.param_counts(n_inputs)
    rows = {"architecture": spec.label, "input mode": spec.input_mode,
            "hidden layers": ", ".join(map(str, spec.hidden)), "activation": spec.activation,
            "output activation": spec.output_activation, "BN on the inputs": spec.input_bn,
            "BN after hidden layers": spec.hidden_bn, "trainable parameters": counts.trainable,
            "non-trainable parameters (BN moving statistics)": counts.non_trainable,
            "total parameters": counts.total}
    return _as_table(rows, "property")


def _as_table(items: Mapping[str, object], key: str) -> pd.DataFrame:
    return pd.DataFrame({key: list(items), "value": [str(v) for v in items.values()]})


def cli_command(run: RunResult, data_name: str,
                options: Mapping[str, object]) -> tuple[str, list[str]]:
    """`python -m bnapp analyze ...` for this run, and what the command cannot reproduce
    (`analyze` trains plain k-fold CV of the study's inputs and target)."""
    spec, protocol = run.spec, run.protocol
    # the bundled demo cohort is found at data/<name> from the repository's root
    path = f"data/{data_name}" if data_name == DEMO_PATH.name else data_name
    path = f"./{path}" if path.startswith("-") else path  # never read as an option
    args = ["--data", path, "--out", CLI_OUT, "--mode", spec.input_mode,
            "--arch", ",".join(map(str, spec.hidden)), "--activation", spec.activation,
            "--output-activation", spec.output_activation]
    args += ["--no-input-bn"] * (not spec.input_bn) + ["--no-hidden-bn"] * (not spec.hidden_bn)
    args += ["--folds", str(protocol.get("folds", 10)), "--epochs", str(protocol.get("epochs", 200)),
             "--seed", str(protocol.get("seed", 0)),
             "--permutations", str(options["n_permutations"]),
             "--n-boot", str(options["n_boot"])]
    length, differences = _length_args(presentation(options))
    args += length
    grouping = ({k: protocol[k] for k in ("kind", "group_by", "group_hash")}
                if protocol.get("group_by") else {})
    if grouping:  # the same column of the same file gives the same labels, so the same hash
        args += ["--protocol", grouping["kind"], "--group-by", grouping["group_by"]]
    bn_decay = {"bn_decay": protocol["bn_decay"]} if "bn_decay" in protocol else {}
    if bn_decay:  # in the dict only when not the default
        args += ["--bn-decay", bn_decay["bn_decay"]]
    command = "python -m bnapp analyze " + shlex.join(args)

    cli_protocol = {**Protocol(kind="kfold", folds=int(protocol.get("folds", 10)),
                               epochs=int(protocol.get("epochs", 200)),
                               seed=protocol.get("seed", 0)).to_dict(), **grouping, **bn_decay}
    differences += [f"protocol {k} = {protocol.get(k)!r} (the command uses {v!r})"
                    for k, v in cli_protocol.items() if protocol.get(k) != v]
    if list(run.features) != list(STUDY_INPUTS):
        differences.append(f"inputs {', '.join(run.features)} (the command uses the study's "
                           f"{', '.join(STUDY_INPUTS)})")
    if run.target != STUDY_TARGET:
        differences.append(f"target {run.target} (the command uses {STUDY_TARGET})")
    return command, differences


def _length_args(shown: Mapping[str, object]) -> tuple[list[str], list[str]]:
    """`analyze` options giving presentation()'s units and session lengths, and what they
    cannot give."""
    hours, column, access = shown["t_hours"], shown["length_column"], shown["access"]
    args = [f"--length-column={column}"] if column else []  # '=': a name may start with '-'
    if not column and np.ndim(hours) == 0 and hours != STUDY_HOURS:
        args += ["--minutes", f"{hours * 60:.10g}"]
    args += ["--access", access] * (access != STUDY_ACCESS)
    display = shown["display"]
    args += ["--show-units", display.urea] * (display != LIBRARY_DISPLAY)
    unnamed = not column and np.ndim(hours) > 0
    return args, ["session lengths given row by row without a column (the command takes "
                  "--minutes or --length-column)"] * unnamed


def reproduction_settings(run: RunResult, *, run_key: str, data_name: str,
                          dataset: Dataset | None = None,
                          options: Mapping[str, object] | None = None) -> dict[str, object]:
    """Everything needed to train and analyse this run again, as JSON-ready values."""
    options = options or analysis_options()
    shown = presentation(options)
    hours = shown["t_hours"]
    command, differences = cli_command(run, data_name, options)
    if dataset is not None and dataset.units != "mg/dL":  # `analyze` reads urea as mg/dL
        differences.append(f"urea read as {UNIT_LABELS.get(dataset.units, dataset.units)} "
                           "(the command reads urea mg/dL)")
    counts = run.spec.param_counts(len(run.features))
    return {
        "bnapp_version": __version__,
        "data": {"name": data_name,
                 "fingerprint": dataset.fingerprint() if dataset is not None else None,
                 "rows_used": len(run.y),
                 "units": dataset.units if dataset is not None else None},
        "features": list(run.features),
        "target": run.target,
        "architecture": run.spec.to_dict(),
        "architecture_label": run.spec.label,
        "parameters": {"trainable": counts.trainable, "non_trainable": counts.non_trainable,
                       "total": counts.total},
        "protocol": dict(run.protocol),
        "analysis": {k: options[k] for k in ("n_permutations", "n_boot", "seed")},
        "session_length": {"minutes": float(hours) * 60 if np.ndim(hours) == 0 else None,
                           "column": shown["length_column"], "access": shown["access"],
                           "words": unescape_md(session_words(hours, shown["access"],
                                                              shown["length_column"]))},
        "shown_in": shown["display"].urea,
        "run_key": run_key,
        "cli_command": command,
        "cli_command_differs_in": differences,
    }


# ------------------------------------------------------------------------------------ the files

def settings_table(settings: Mapping[str, object]) -> pd.DataFrame:
    """reproduction_settings as readable rows (the HTML report's): words, not dicts or hashes;
    the ZIP's settings table keeps every value, the run key and data fingerprint among them."""
    data, analysis = settings["data"], settings["analysis"]
    counts = settings["parameters"]
    units = f"; {UNIT_LABELS.get(data['units'], data['units'])} in the file" if data["units"] else ""
    rows = {
        "bnapp version": settings["bnapp_version"],
        "Data set": f"{data['name']} ({data['rows_used']} rows used{units})",
        "Inputs": ", ".join(with_unit(f) for f in settings["features"]),
        "Target": with_unit(settings["target"]),
        "Network": f"{settings['architecture_label']}: {counts['trainable']} trainable "
                   f"parameters and {counts['non_trainable']} BN moving statistics",
        "Validation": unescape_md(model_card.protocol_words(settings["protocol"])),
        "Sessions kept together by": unescape_md(
            model_card.grouping_words(settings["protocol"])),
        "Analyses": f"{analysis['n_permutations']} shuffles per permutation ablation, "
                    f"{analysis['n_boot']} bootstrap resamples, seed {analysis['seed']}",
        "Session length and access (formulas, eKt/V)": settings.get(
            "session_length", {}).get("words", unescape_md(session_words())),
        "Results shown in": UREA_UNIT_NAMES[settings.get("shown_in", LIBRARY_DISPLAY.urea)],
        "Command that runs it again": settings["cli_command"],
        "What the command does differently": "; ".join(settings["cli_command_differs_in"])
                                             or "nothing",
    }
    return _as_table(rows, "setting")


def _report_tables(run: RunResult, tables: Mapping[str, pd.DataFrame]) -> dict[str, pd.DataFrame]:
    own = {"architecture": architecture_table(run.spec, len(run.features)), **tables}
    return {heading: own[stem] for stem, heading in REPORT_TABLES.items() if stem in own}


def _documents(run: RunResult, tables: Mapping[str, pd.DataFrame], *, run_key: str,
               data_name: str, dataset: Dataset | None,
               options: Mapping[str, object] | None) -> dict[str, object]:
    """What the ZIP and the HTML report share: the settings, the data summary, the model card,
    the opening sentence and `tables` (run_tables', library units) in the shown units."""
    shown = presentation(options)
    display = shown["display"]
    return {
        "settings": reproduction_settings(run, run_key=run_key, data_name=data_name,
                                          dataset=dataset, options=options),
        "summary": data_summary(run, data_name, dataset, options),
        "card": model_card.model_card(run, tables, data_name=data_name, dataset=dataset, **shown),
        "headline": unescape_md(page_tables.run_verdict_sentence(run, tables, display)),
        "tables": export.shown_tables(tables, target=run.target,
                                      input_mode=run.spec.input_mode, display=display),
    }


def _html(run: RunResult, documents: Mapping[str, object], tables: Mapping[str, pd.DataFrame],
          figures: Mapping[str, alt.TopLevelMixin | export.Rendered], *, data_name: str,
          captions: Mapping[str, str] | None = None) -> str:
    return export.html_report(f"bnapp report: {run.spec.label} on {data_name}",
                              summary=documents["summary"], figures=figures,
                              tables=_report_tables(run, tables),
                              settings=settings_table(documents["settings"]),
                              model_card=documents["card"], captions=captions,
                              headline=documents["headline"])


def report_html(run: RunResult, tables: Mapping[str, pd.DataFrame],
                figures: Mapping[str, alt.TopLevelMixin], *, run_key: str, data_name: str,
                dataset: Dataset | None = None,
                options: Mapping[str, object] | None = None) -> str:
    """The self-contained HTML report of a run: data summary, architecture, every figure, the
    main tables and the settings (with the CLI command) that reproduce it.

    tables: run_tables' output, plus data_tables(dataset) when the data set is at hand;
    dataset: the run's own data set, or None when it is not loaded (then rows read and dropped
    and the data fingerprint are left out); options: export_options (or the run_tables
    arguments) used: the tables are shown in its display units.
    """
    documents = _documents(run, tables, run_key=run_key, data_name=data_name, dataset=dataset,
                           options=options)
    return _html(run, documents, documents["tables"], figures, data_name=data_name)


@dataclass(frozen=True)
class ExportBundle:
    """The Export page's downloads: the ZIP, the HTML report and their file names."""

    zip_bytes: bytes
    zip_name: str
    html: str
    html_name: str
    has_validation_report: bool  # False when the run's data set was not at hand


def export_names(data_name: str, run_key: str) -> tuple[str, str]:
    """(ZIP, HTML) file names carrying the data set's name and the run's short key."""
    stem = export.safe_filename(os.path.splitext(data_name)[0], 40)
    base = f"bnapp_{stem}_{run_key[:8]}"
    return f"{base}.zip", f"{base}_report.html"


def build_export(run: RunResult, tables: Mapping[str, pd.DataFrame],
                 figures: Mapping[str, alt.TopLevelMixin], *, run_key: str, data_name: str,
                 dataset: Dataset | None = None, options: Mapping[str, object] | None = None,
                 progress: Progress | None = None) -> ExportBundle:
    """The ZIP (every figure as PNG and SVG; every table as CSV and XLSX, with the data summary,
    the architecture, the settings and, when `dataset` is the run's own data, its validation
    report) and the HTML report. tables: run_tables' (library units), figures: run_figures';
    options: export_options (the tables are shown in its display units, the report names its
    session lengths). `dataset` is the run's own data set, or None when it is not at hand
    (jobs.cache.trained_on tells). progress(fraction, message) is called as figures are
    drawn."""
    documents = _documents(run, tables, run_key=run_key, data_name=data_name, dataset=dataset,
                           options=options)
    all_tables = {**documents["tables"], **(data_tables(dataset) if dataset is not None else {}),
                  "data_summary": _as_table(documents["summary"], "item"),
                  "architecture": architecture_table(run.spec, len(run.features)),
                  "settings": _as_table({k: json.dumps(v, ensure_ascii=False, default=str)
                                         for k, v in documents["settings"].items()},
                                        "setting")}
    drawn, captions = {}, {name: export.caption(chart) for name, chart in figures.items()}
    for i, (name, chart) in enumerate(figures.items()):
        if progress is not None:
            progress(i / len(figures), f"Drawing figure {i + 1} of {len(figures)}: {name}")
        drawn[name] = export.render(chart)
    zipped = export.export_zip(drawn, all_tables, files={"model_card.md": documents["card"]})
    html = _html(run, documents, all_tables, drawn, data_name=data_name, captions=captions)
    if progress is not None:
        progress(1.0, "Done")
    zip_name, html_name = export_names(data_name, run_key)
    return ExportBundle(zipped, zip_name, html, html_name, dataset is not None)


def zip_contents(zip_bytes: bytes) -> pd.DataFrame:
    """file, what it is, size in kB: the listing of an export ZIP."""
    kinds = {".png": "figure (PNG image)", ".svg": "figure (SVG vector graphics)",
             ".csv": "table (CSV)", ".xlsx": "table (Excel workbook)",
             ".md": "model card (Markdown)"}
    with zipfile.ZipFile(io.BytesIO(zip_bytes)) as archive:
        infos = archive.infolist()
    return pd.DataFrame({
        "file": [i.filename for i in infos],
        "content": [kinds.get(os.path.splitext(i.filename)[1], "") for i in infos],
        "size_kB": [round(i.file_size / 1024, 1) for i in infos],
    })
