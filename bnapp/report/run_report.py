"""Every table and figure of one run, and the files the Export page and `analyze` write from them.

`run_tables` / `run_figures` compute a run's analyses and charts; `build_export` turns them into a
ZIP (figures as PNG + SVG, tables as CSV + XLSX) and a self-contained HTML report that says how
to reproduce the run. Text from the user's file (names, columns, cells) reaches those files only
through `bnapp.report.export`, which escapes it for HTML and neutralizes it for spreadsheets.
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
import pandas as pd

from bnapp import __version__
from bnapp.analyses import agreement, baselines, concordance, explain, stages, verdict
from bnapp.analyses.cohort_intervals import run_replicates
from bnapp.analyses.layer_tables import importance_tables, layer_rows, parameter_tables, tag_layer
from bnapp.analyses.settings import SETTINGS
from bnapp.engine.model import ArchSpec
from bnapp.engine.protocols import Protocol
from bnapp.engine.results import RunResult, network_layers
from bnapp.intake.data import DEMO_PATH, STUDY_INPUTS, STUDY_TARGET, Dataset, dropped_summary
from bnapp.intake.units import UNIT_LABELS, target_unit
from bnapp.report import (
    agreement_charts,
    bn_charts,
    export,
    importance_charts,
    model_card,
    network_charts,
    page_tables,
)
from bnapp.report.markup import unescape_md
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


def run_tables(run: RunResult, *, n_permutations: int = SETTINGS.n_permutations,
               n_boot: int = SETTINGS.n_boot, seed: int = SETTINGS.seed,
               interval: float = SETTINGS.interval_level, groups=None,
               n_replicates: int = SETTINGS.n_replicates) -> dict[str, pd.DataFrame]:
    """Every analysis table of a run, keyed by file stem; stages and sensitivity cover the input
    and every hidden layer (told apart by the `layer` and `hidden_layer` columns); agreement,
    calibration, coverage and predictions with prediction intervals at level `interval`; the
    association and concordance intervals over cohorts like this one (run_replicates(run,
    groups, n_replicates), trained once for both), and the verdict per layer and definition."""
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
    preds = baselines.fold_predictions(run)  # every method's test rows, shared by four tables
    base = baselines.baselines(run, preds)
    return {
        **parameter_tables(run),
        "stage_quantiles": quantiles,
        **found,
        "baselines": base,
        "error_intervals": baselines.error_intervals(run, **cohort),
        "paired_comparison": baselines.paired_comparison(run, base),
        "loss_curves": loss,
        "gamma_curves": gamma,
        **model_card.trust_tables(run, interval, preds),
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


def gamma_figures(sens: pd.DataFrame, lines: pd.DataFrame, spec: ArchSpec, target: str, *,
                  metric: str = "bias", suffix: str = "") -> dict[str, alt.TopLevelMixin]:
    """|γ| against `metric` per layer with a BN and ablation mode: one run's (gamma_scatter) or,
    when the tables carry `input_mode`, both input modes side by side (input_mode_scatter)."""
    draw = bn_charts.input_mode_scatter if "input_mode" in sens.columns else bn_charts.gamma_scatter
    lines = lines[lines["metric"] == metric].drop(columns="metric")
    figures = {}
    for layer in network_layers(spec):
        rows = layer_rows(sens, layer)
        for mode in rows.dropna(subset=["gamma"])["mode"].unique():
            figures[f"gamma_vs_{metric}_{layer.stem}_{mode}{suffix}"] = draw(
                rows, layer_rows(lines, layer), metric, mode, target=target)
    return figures


def run_figures(run: RunResult, tables: dict[str, pd.DataFrame]) -> dict[str, alt.TopLevelMixin]:
    """The charts of run_tables' output, keyed by file stem."""
    figures = {
        "architecture": network_charts.architecture_chart(run.spec, len(run.features), run.features,
                                                          target=run.target),
        "baselines": network_charts.baseline_chart(tables["baselines"], target=run.target),
    }
    for layer in network_layers(run.spec):
        per_fold = layer_rows(tables["bn_parameters_per_fold"], layer)
        figures[f"parameters_{layer.stem}"] = bn_charts.parameter_chart(
            per_fold.drop(columns=["layer", "hidden_layer"]),
            page_tables.layer_title(run.spec, layer))
        quantiles = layer_rows(tables["stage_quantiles"], layer)
        figures[f"stages_{layer.stem}"] = bn_charts.stage_boxplot(
            quantiles.drop(columns=["layer", "hidden_layer"]),
            page_tables.layer_title(run.spec, layer),
            layer=layer.kind)
    figures |= gamma_figures(tables["sensitivity"], tables["fit_lines"], run.spec, run.target)
    if len(tables["loss_curves"]):
        figures["loss"] = network_charts.loss_curves(tables["loss_curves"],
                                                     stages.held_out_errors(run), target=run.target)
    if len(tables["gamma_curves"]):
        figures["gamma_trajectories"] = network_charts.gamma_trajectories(tables["gamma_curves"])
    return figures | agreement_figures(run, tables) | importance_figures(run, tables)


def agreement_figures(run: RunResult, tables: Mapping[str, pd.DataFrame]) -> dict[str, alt.TopLevelMixin]:
    """Per quantity, the share within the acceptable difference, a Bland–Altman plot per method
    (dots named by their row in the data file, the acceptable difference drawn) and
    calibration; interval coverage."""
    points = agreement.identify(agreement.agreement_points(run), run.row_ids)
    curves = agreement.calibration_curves(points)
    share = tables["share_within"]
    figures = {}
    # each chart filters the rows it is given: split the points (a million sessions: 8M lines)
    # once, not once per chart
    for quantity, of_quantity in points.groupby("quantity", sort=False):
        figures[f"share_within_{quantity}"] = agreement_charts.share_within_chart(share, quantity)
        tolerance = share.loc[share["quantity"] == quantity, "tolerance"].iloc[0]
        for method, rows in of_quantity.groupby("method", sort=False):
            figures[f"bland_altman_{method}_{quantity}"] = agreement_charts.bland_altman_chart(
                rows, tables["agreement"], method, quantity, tolerance=float(tolerance))
        figures[f"calibration_{quantity}"] = agreement_charts.calibration_chart(
            of_quantity, curves, tables["calibration"], quantity)
    coverage = tables["coverage"]
    figures["interval_coverage"] = agreement_charts.coverage_chart(
        coverage, float(coverage["level"].iloc[0]), target_unit(run.target))
    return figures


def importance_figures(run: RunResult, tables: dict[str, pd.DataFrame]) -> dict[str, alt.TopLevelMixin]:
    """The Importance page's figures: per layer the importance per definition and, where the
    layer has a BN, the concordance heatmap; ICE/PDP of the inputs."""
    figures = {}
    for layer in network_layers(run.spec):
        title = page_tables.layer_title(run.spec, layer)
        conc = layer_rows(tables["concordance"], layer)
        if len(conc):
            figures[f"concordance_{layer.stem}"] = importance_charts.concordance_heatmap(
                conc, title, n_units=len(run.unit_names(layer)))
        figures[f"importance_{layer.stem}"] = importance_charts.importance_bars(
            layer_rows(tables["importance"], layer), title)
    figures["ice_pdp"] = importance_charts.ice_pdp_chart(tables["ice"], tables["pdp"],
                                                         target=run.target)
    return figures


# ------------------------------------------------------------------------- what the run was made of

def analysis_options(*, n_permutations: int = SETTINGS.n_permutations,
                     n_boot: int = SETTINGS.n_boot) -> dict[str, int]:
    """run_tables' keyword arguments: the Export page's ablation shuffles and bootstrap
    resamples, with the settings' seed (the pages' and the CLI's too)."""
    return {"n_permutations": int(n_permutations), "n_boot": int(n_boot), "seed": SETTINGS.seed}


def data_summary(run: RunResult, data_name: str, dataset: Dataset | None = None) -> dict[str, object]:
    """Label -> value lines about the data; rows read and dropped only when `dataset` (the run's
    own data set) is given."""
    summary: dict[str, object] = {"Data set": data_name}
    if dataset is not None:
        summary |= {
            "Rows read": dataset.n_read,
            "Rows usable": dataset.n_usable,
            "Rows dropped": (f"{dataset.n_dropped} (why: see the validation report in the ZIP)"
                             if dataset.n_dropped else 0),
            "Columns": ", ".join(with_unit(str(c)) for c in dataset.frame.columns),
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
        "Inputs": ", ".join(with_unit(f) for f in run.features),
        "Target": with_unit(run.target),
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


def cli_command(run: RunResult, data_name: str, options: Mapping[str, int]) -> tuple[str, list[str]]:
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
    grouping = ({k: protocol[k] for k in ("kind", "group_by", "group_hash")}
                if protocol.get("group_by") else {})
    if grouping:  # the same column of the same file gives the same labels, so the same hash
        args += ["--protocol", grouping["kind"], "--group-by", grouping["group_by"]]
    bn_decay = {"bn_decay": protocol["bn_decay"]} if "bn_decay" in protocol else {}
    if bn_decay:  # in the dict only when not the default
        args += ["--bn-decay", bn_decay["bn_decay"]]
    command = "python -m bnapp analyze " + shlex.join(args)

    differences = []
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


def reproduction_settings(run: RunResult, *, run_key: str, data_name: str,
                          dataset: Dataset | None = None,
                          options: Mapping[str, int] | None = None) -> dict[str, object]:
    """Everything needed to train and analyse this run again, as JSON-ready values."""
    options = options or analysis_options()
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
        "analysis": dict(options),
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
        "Command that runs it again": settings["cli_command"],
        "What the command does differently": "; ".join(settings["cli_command_differs_in"])
                                             or "nothing",
    }
    return _as_table(rows, "setting")


def _report_tables(run: RunResult, tables: Mapping[str, pd.DataFrame]) -> dict[str, pd.DataFrame]:
    own = {"architecture": architecture_table(run.spec, len(run.features)), **tables}
    return {heading: own[stem] for stem, heading in REPORT_TABLES.items() if stem in own}


def _html(run: RunResult, tables: Mapping[str, pd.DataFrame],
          figures: Mapping[str, alt.TopLevelMixin | export.Rendered], *, data_name: str,
          summary: Mapping[str, object], settings: Mapping[str, object],
          card: str | None = None, captions: Mapping[str, str] | None = None) -> str:
    return export.html_report(f"bnapp report: {run.spec.label} on {data_name}", summary=summary,
                              figures=figures, tables=_report_tables(run, tables),
                              settings=settings_table(settings), model_card=card,
                              captions=captions,
                              headline=unescape_md(page_tables.run_verdict_sentence(run, tables)))


def report_html(run: RunResult, tables: Mapping[str, pd.DataFrame],
                figures: Mapping[str, alt.TopLevelMixin], *, run_key: str, data_name: str,
                dataset: Dataset | None = None, options: Mapping[str, int] | None = None) -> str:
    """The self-contained HTML report of a run: data summary, architecture, every figure, the
    main tables and the settings (with the CLI command) that reproduce it.

    tables: run_tables' output, plus data_tables(dataset) when the data set is at hand;
    dataset: the run's own data set, or None when it is not loaded (then rows read and dropped
    and the data fingerprint are left out); options: the run_tables arguments used.
    """
    settings = reproduction_settings(run, run_key=run_key, data_name=data_name, dataset=dataset,
                                     options=options)
    card = model_card.model_card(run, tables, data_name=data_name, dataset=dataset)
    return _html(run, tables, figures, data_name=data_name, settings=settings,
                 summary=data_summary(run, data_name, dataset), card=card)


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
                 dataset: Dataset | None = None, options: Mapping[str, int] | None = None,
                 progress: Progress | None = None) -> ExportBundle:
    """The ZIP (every figure as PNG and SVG; every table as CSV and XLSX, with the data summary,
    the architecture, the settings and, when `dataset` is the run's own data, its validation
    report) and the HTML report. `dataset` is the run's own data set, or None when it is not at
    hand (jobs.cache.trained_on tells). progress(fraction, message) is called as figures are
    drawn."""
    settings = reproduction_settings(run, run_key=run_key, data_name=data_name, dataset=dataset,
                                     options=options)
    summary = data_summary(run, data_name, dataset)
    all_tables = {**tables, **(data_tables(dataset) if dataset is not None else {}),
                  "data_summary": _as_table(summary, "item"),
                  "architecture": architecture_table(run.spec, len(run.features)),
                  "settings": _as_table({k: json.dumps(v, ensure_ascii=False, default=str)
                                         for k, v in settings.items()}, "setting")}
    drawn, captions = {}, {name: export.caption(chart) for name, chart in figures.items()}
    for i, (name, chart) in enumerate(figures.items()):
        if progress is not None:
            progress(i / len(figures), f"Drawing figure {i + 1} of {len(figures)}: {name}")
        drawn[name] = export.render(chart)
    card = model_card.model_card(run, tables, data_name=data_name, dataset=dataset)
    zipped = export.export_zip(drawn, all_tables, files={"model_card.md": card})
    html = _html(run, all_tables, drawn, data_name=data_name, summary=summary, settings=settings,
                 card=card, captions=captions)
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
