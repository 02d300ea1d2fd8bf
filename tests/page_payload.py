"""What a page sends to the browser, counted from an AppTest run: chart rows and table rows."""

from __future__ import annotations

import json

import pyarrow as pa
from streamlit.testing.v1 import AppTest


def chart_rows(at: AppTest) -> list[int]:
    """Rows of data in each chart on the page: the Arrow data sets streamlit ships apart and
    any data left inline in the spec."""
    counts = []
    for chart in at.get("vega_lite_chart"):
        spec = json.loads(chart.proto.spec)
        counts.append(sum(pa.ipc.open_stream(named.data.data).read_all().num_rows
                          for named in chart.proto.datasets)
                      + sum(len(v) for v in spec.get("datasets", {}).values()))
    return counts


def table_rows(at: AppTest) -> int:
    """Rows in every table (st.dataframe) on the page."""
    return sum(len(frame.value) for frame in at.dataframe)
