"""Figures and tables out of the app: PNG/SVG, CSV/XLSX, one ZIP, a self-contained HTML report.

Everything is built in memory. Text that came from a user's file is treated as hostile: table
text cells are neutralized against spreadsheet formula injection, file and sheet names are
sanitized, and the HTML report escapes every string and loads nothing from anywhere.
"""

from __future__ import annotations

import base64
import html
import io
import re
import unicodedata
import zipfile
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime

import altair as alt
import pandas as pd
import vl_convert as vlc
from markdown_it import MarkdownIt

from bnapp.intake.units import LIBRARY_DISPLAY, DisplayUnits
from bnapp.report import agreement_charts, importance_charts, page_tables
from bnapp.report.cells import safe_table, table_csv
from bnapp.report.page_tables import GROUP_ERRORS, PAIRED_DIFFERENCES
from bnapp.report.style import metric_power, show_metrics

MAX_FILENAME = 80
REPORT_MAX_ROWS = 500
_WINDOWS_RESERVED = {"CON", "PRN", "AUX", "NUL", *(f"COM{i}" for i in range(1, 10)),
                     *(f"LPT{i}" for i in range(1, 10))}


# ---------------------------------------------------------------- figures

def _vl_version() -> str | None:
    """The Vega-Lite version Altair wrote the spec for, if vl-convert bundles it."""
    version = ".".join(alt.SCHEMA_VERSION.lstrip("v").split(".")[:2])
    return version if version in vlc.get_vegalite_versions() else None


def _spec(chart: alt.TopLevelMixin) -> dict:
    return chart.to_dict()


def chart_png(chart: alt.TopLevelMixin, scale: float = 2) -> bytes:
    """PNG bytes of a chart (scale 2: sharp at paper size). External data URLs are refused."""
    return vlc.vegalite_to_png(_spec(chart), vl_version=_vl_version(), scale=scale,
                               allowed_base_urls=[])


def chart_svg(chart: alt.TopLevelMixin) -> str:
    """SVG text of a chart; Vega writes every label as escaped XML text."""
    return vlc.vegalite_to_svg(_spec(chart), vl_version=_vl_version(), allowed_base_urls=[])


@dataclass(frozen=True)
class Rendered:
    """A chart drawn once, as PNG and SVG, for exports that need both."""

    png: bytes
    svg: str


def render(chart: alt.TopLevelMixin | Rendered) -> Rendered:
    return chart if isinstance(chart, Rendered) else Rendered(chart_png(chart), chart_svg(chart))


# ---------------------------------------------------------------- tables

def safe_filename(s: str, max_length: int = MAX_FILENAME) -> str:
    """An ASCII file name with no path, no leading dot and no reserved name; never empty."""
    ascii_text = unicodedata.normalize("NFKD", str(s)).encode("ascii", "ignore").decode()
    name = re.sub(r"[^A-Za-z0-9._-]+", "_", ascii_text).strip("._-")
    name = name[:max_length].rstrip("._-")
    if name.split(".")[0].upper() in _WINDOWS_RESERVED:
        name = "file_" + name[: max_length - 5]
    return name or "export"


def _sheet_name(name: str, taken: set[str]) -> str:
    """Excel's rules: at most 31 characters, none of []:*?/\\, no edge apostrophe, unique."""
    base = re.sub(r"[\[\]:*?/\\\x00-\x1f]", "_", str(name)).strip("'").strip() or "Sheet"
    if base.lower() == "history":  # reserved by Excel
        base = "History_"
    base = base[:31]
    candidate, k = base, 2
    while candidate.lower() in taken:
        suffix = f" ({k})"
        candidate, k = base[: 31 - len(suffix)] + suffix, k + 1
    taken.add(candidate.lower())
    return candidate


def table_xlsx(tables: pd.DataFrame | Mapping[str, pd.DataFrame]) -> bytes:
    """An XLSX workbook: one sheet per table (a single DataFrame goes on sheet "table")."""
    if isinstance(tables, pd.DataFrame):
        tables = {"table": tables}
    if not tables:
        raise ValueError("table_xlsx needs at least one table")
    buffer, taken = io.BytesIO(), set()
    with pd.ExcelWriter(buffer, engine="openpyxl") as writer:
        for name, df in tables.items():
            safe_table(df).to_excel(writer, sheet_name=_sheet_name(name, taken), index=False)
    return buffer.getvalue()


# ---------------------------------------------------------------- tables in the shown units

# run_tables' tables no page converts with a helper of its own: table -> (columns of values of
# the run's target, i.e. a prediction, error or difference of it; columns in its square)
TARGET_COLUMNS = {
    "error_intervals": (("estimate", "ci_low", "ci_high"), ()),  # RMSE and MAE
    "paired_comparison": (PAIRED_DIFFERENCES, ()),
    "groups": (GROUP_ERRORS, ()),  # analyze's, of a grouped run
    "loss_curves": ((), ("loss", "val_loss")),  # mean squared error
    "predictions": (("measured", "predicted", "pi_low", "pi_high"), ()),
    "shapley_values": (("value", "base_value", "prediction"), ()),
    "ice": (("prediction",), ()),
    "pdp": (("pdp", "pdp_low", "pdp_high", "pdp_sd"), ()),
}


def shown_tables(tables: Mapping[str, pd.DataFrame], *, target: str, input_mode: str,
                 display: DisplayUnits = LIBRARY_DISPLAY) -> dict[str, pd.DataFrame]:
    """run_tables' tables (library units) with their values in `display`'s units, each as the
    page showing it converts it; γ, β, R², eKt/V, shares, correlations, p-values and normalized
    values as they are. input_mode: the run's ('raw': the input BN's moving statistics are in
    the inputs' units; 'zscore': of z-scores, unitless)."""
    if display == LIBRARY_DISPLAY:
        return dict(tables)
    return {name: _shown_table(name, table, target, input_mode, display)
            for name, table in tables.items()}


def _shown_table(name: str, table: pd.DataFrame, target: str, input_mode: str,
                 display: DisplayUnits) -> pd.DataFrame:
    if name in ("baselines", "sensitivity"):
        return show_metrics(table, target, display)
    if name in ("agreement", "calibration", "share_within"):  # per row: Ueq, or eKt/V
        return agreement_charts.shown(table, display)
    if name == "coverage":
        return agreement_charts.shown(table, display, target)
    if name in ("bn_parameters", "bn_parameters_per_fold"):
        return page_tables.shown_parameters(table, display, input_mode)
    if name == "stage_quantiles":
        return page_tables.shown_stages(table, display)
    if name == "fit_lines":  # y: the metric of each row; x: |γ|
        return _by_power(table, "y", table["metric"].map(metric_power), target, display)
    if name == "importance":
        powers = table["definition"].astype(str).map(importance_charts.importance_power)
        return _by_power(table, "importance", powers, target, display)
    plain, squared = TARGET_COLUMNS.get(name, ((), ()))
    table = display.show(display.show(table, target, plain), target, squared, power=2)
    if name in ("ice", "pdp"):  # the input's value on each row, in that input's unit
        table = display.show_by(table, "unit", ["value"])
    return table


def _by_power(table: pd.DataFrame, column: str, powers: pd.Series, target: str,
              display: DisplayUnits) -> pd.DataFrame:
    """`column` in the shown unit of the target raised to each row's power."""
    return table.assign(**{column: table[column] / display.factor(target) ** powers.to_numpy()})


# ---------------------------------------------------------------- bundle

def _unique(name: str, taken: set[str]) -> str:
    candidate, k = name, 2
    while candidate.lower() in taken:
        candidate, k = f"{name}-{k}", k + 1
    taken.add(candidate.lower())
    return candidate


def export_zip(figures: Mapping[str, alt.TopLevelMixin | Rendered],
               tables: Mapping[str, pd.DataFrame], files: Mapping[str, str] | None = None) -> bytes:
    """A ZIP of figures/<name>.png and .svg and tables/<name>.csv and .xlsx, names sanitized,
    and text `files` (name -> content, e.g. the model card) at its top level."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        taken: set[str] = set()
        for name, chart in figures.items():
            stem = _unique(safe_filename(name), taken)
            drawn = render(chart)
            archive.writestr(f"figures/{stem}.png", drawn.png)
            archive.writestr(f"figures/{stem}.svg", drawn.svg)
        taken = set()
        for name, df in tables.items():
            stem = _unique(safe_filename(name), taken)
            archive.writestr(f"tables/{stem}.csv", table_csv(df))
            archive.writestr(f"tables/{stem}.xlsx", table_xlsx({name: df}))
        for name, text in (files or {}).items():
            archive.writestr(safe_filename(name), text)
    return buffer.getvalue()


# ---------------------------------------------------------------- HTML report

# fits a 1,400 px window: the text column is at most 1,240 px wide; a wider table scrolls in its
# own box with its first (key) column kept in view
_STYLE = """
body { font-family: "DejaVu Sans", Helvetica, Arial, sans-serif; max-width: 1240px;
       margin: 2em auto; padding: 0 1em; color: #222; line-height: 1.45; }
h1 { font-size: 1.6em; } h2 { font-size: 1.25em; margin-top: 2em;
     border-bottom: 1px solid #ccc; padding-bottom: .2em; }
.scroll { max-width: 100%; overflow-x: auto; margin: .5em 0 1.5em; }
table { border-collapse: collapse; font-size: .85em; }
th, td { border: 1px solid #ddd; padding: .25em .5em; text-align: right; }
th:first-child, td:first-child { position: sticky; left: 0; background: #fff; text-align: left; }
th, th:first-child { background: #f3f3f3; } dt { font-weight: bold; }
dd { margin: 0 0 .4em 1.5em; } figure { margin: 1em 0 2em; }
figure img { max-width: 100%; height: auto; }
figcaption { font-size: .9em; color: #555; max-width: 60em; }
code { white-space: pre-wrap; word-break: break-all; font-size: .85em; }
.note { color: #555; font-size: .9em; } td.text { text-align: left; }
"""
# Defence in depth: even if something slipped through escaping, the page may run no script and
# fetch nothing (images are data: URIs, the style is inline).
_CSP = "default-src 'none'; img-src data:; style-src 'unsafe-inline'"


def _e(value: object) -> str:
    return html.escape(str(value), quote=True)


def caption(chart: alt.TopLevelMixin) -> str:
    """A chart's title and subtitle as sentences: 'Loss during training. Mean squared …'."""
    title = chart.title if isinstance(chart.title, alt.TitleParams) else None
    if title is None:
        return ""
    lines = title.subtitle if isinstance(title.subtitle, list | tuple) else [title.subtitle]
    return " ".join(_sentence(str(line)) for line in [title.text, *lines]
                    if isinstance(line, str) and line.strip())


def _sentence(text: str) -> str:
    text = text.strip()
    return text if text[-1] in ".!?:" else f"{text}."


def _figure_html(name: str, chart: alt.TopLevelMixin | Rendered, words: str) -> str:
    # an SVG shown through <img> is inert: browsers run no script and load nothing inside it
    drawn = chart.svg if isinstance(chart, Rendered) else chart_svg(chart)
    svg = base64.b64encode(drawn.encode("utf-8")).decode("ascii")
    return (f'<figure><img alt="{_e(name)}" src="data:image/svg+xml;base64,{svg}">'
            f"<figcaption>{_e(words or name)}</figcaption></figure>")


# CommonMark with raw HTML off (a '<script>' in the text stays text) and GitHub's tables
_MARKDOWN = MarkdownIt("commonmark", {"html": False}).enable("table")


def markdown_html(markdown: str, *, demote: int = 1) -> str:
    """bnapp's Markdown (the model card) as HTML: headings `demote` levels lower, so the card's
    title sits under the report's own; each table in a box of its own that scrolls."""
    tokens = _MARKDOWN.parse(markdown)
    for token in tokens:
        if token.type in ("heading_open", "heading_close"):
            token.tag = f"h{min(int(token.tag[1]) + demote, 6)}"
    body = _MARKDOWN.renderer.render(tokens, _MARKDOWN.options, {})
    # with raw HTML off, no "<table>" in the output comes from the text
    return body.replace("<table>", '<div class="scroll"><table>').replace("</table>",
                                                                          "</table></div>")


def _table_html(df: pd.DataFrame, max_rows: int) -> str:
    shown = df if isinstance(df.index, pd.RangeIndex) else df.reset_index()
    head = "".join(f"<th>{_e(c)}</th>" for c in shown.columns)
    body = []
    for row in shown.head(max_rows).itertuples(index=False):
        cells = "".join(f"<td>{_e(_format_cell(v))}</td>" if _is_number(v) else
                        f'<td class="text">{_e(_format_cell(v))}</td>' for v in row)
        body.append(f"<tr>{cells}</tr>")
    note = (f'<p class="note">First {max_rows:,} of {len(shown):,} rows; the full table is in '
            "the export ZIP.</p>" if len(shown) > max_rows else "")
    return (f'<div class="scroll"><table><thead><tr>{head}</tr></thead>'
            f"<tbody>{''.join(body)}</tbody></table></div>{note}")


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _format_cell(value: object) -> str:
    if isinstance(value, float):
        return "" if pd.isna(value) else f"{value:.4g}"
    return "" if value is None else str(value)


def html_report(title: str, *, summary: Mapping[str, object],
                figures: Mapping[str, alt.TopLevelMixin | Rendered],
                tables: Mapping[str, pd.DataFrame], settings: pd.DataFrame,
                max_rows: int = REPORT_MAX_ROWS, model_card: str | None = None,
                captions: Mapping[str, str] | None = None,
                headline: str | None = None) -> str:
    """One self-contained HTML page describing a run.

    title: the report's heading; summary: label -> value lines about the data (name, rows
    usable/dropped, ...); figures: name -> chart (the architecture chart among them), each
    embedded as a base64 SVG image under its caption (captions[name], else the chart's title
    and subtitle as sentences, else its name); tables: heading -> DataFrame (first `max_rows`
    rows shown); settings: what reproduces the run, as a table of readable rows; model_card:
    Markdown, rendered with raw HTML off; headline: the plain-text sentence the report opens
    with. Every string is HTML-escaped; the page references no
    external resource and its Content-Security-Policy forbids scripts and fetches.
    """
    stamp = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    summary_html = "".join(f"<dt>{_e(k)}</dt><dd>{_e(v)}</dd>" for k, v in summary.items())
    captions = captions or {}
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f'<meta http-equiv="Content-Security-Policy" content="{_CSP}">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{_e(title)}</title><style>{_STYLE}</style></head><body>",
        f"<h1>{_e(title)}</h1>",
        *([f'<p class="headline">{_e(headline)}</p>'] if headline else []),
        f'<p class="note">Generated by bnapp on {stamp}.</p>',
        f"<h2>Data</h2><dl>{summary_html}</dl>",
    ]
    if model_card:
        parts.append(markdown_html(model_card))
    if figures:
        parts.append("<h2>Figures</h2>")
        parts += [_figure_html(name, chart, captions.get(name) or (
            "" if isinstance(chart, Rendered) else caption(chart)))
                  for name, chart in figures.items()]
    if tables:
        parts.append("<h2>Tables</h2>")
        for name, df in tables.items():
            parts += [f"<h3>{_e(name)}</h3>", _table_html(df, max_rows)]
    parts += ["<h2>Settings to reproduce this run</h2>", _table_html(settings, len(settings)),
              "</body></html>"]
    return "\n".join(parts)
