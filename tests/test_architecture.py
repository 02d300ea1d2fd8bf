"""The packages' import direction (docs/architecture.md), read from the code with `ast`.

Every import counts, also those inside functions (the lazy ones that keep start-up light).
"""

from __future__ import annotations

import ast
from dataclasses import fields
from pathlib import Path

import pytest

from bnapp.analyses.settings import AnalysisSettings

REPO = Path(__file__).resolve().parents[1]
PACKAGE = REPO / "bnapp"

# what each package may import from bnapp, besides itself and bnapp's own __init__
ALLOWED = {
    "intake": set(),
    "engine": set(),
    "analyses": {"engine", "intake"},
    "report": {"analyses", "engine", "intake"},
    "jobs": {"report", "analyses", "engine", "intake"},
    "ui": {"jobs", "report", "analyses", "engine", "intake"},
    "cli": {"jobs", "report", "analyses", "engine", "intake"},
}
STREAMLIT_ALLOWED = {"ui"}


def imported_modules(source: str) -> set[str]:
    """Absolute module names a source imports, at any depth of the code."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
            # `from bnapp import cli` names a package through an attribute
            if node.module == "bnapp":
                names.update(f"bnapp.{alias.name}" for alias in node.names)
    return names


def violations(package: str, source: str) -> list[str]:
    """The imports of one module of `package` that break the direction."""
    found = []
    for name in sorted(imported_modules(source)):
        top = name.split(".")[0]
        if top == "streamlit" and package not in STREAMLIT_ALLOWED:
            found.append(f"{name} (only bnapp/ui imports streamlit)")
        parts = name.split(".")
        if top == "bnapp" and len(parts) > 1 and parts[1] in ALLOWED:
            other = parts[1]
            if other != package and other not in ALLOWED[package]:
                found.append(f"{name} ({package} may import only {sorted(ALLOWED[package])})")
    return found


def _modules():
    for path in sorted(PACKAGE.rglob("*.py")):
        rel = path.relative_to(PACKAGE)
        if len(rel.parts) > 1:
            yield rel.parts[0], path


def test_every_module_sits_in_a_known_package():
    top_level = {p.name for p in PACKAGE.glob("*.py")}
    assert top_level == {"__init__.py", "__main__.py"}
    assert {package for package, _ in _modules()} == set(ALLOWED)


@pytest.mark.parametrize("package,path", list(_modules()),
                         ids=lambda v: str(v.relative_to(PACKAGE)) if isinstance(v, Path) else v)
def test_imports_point_down(package, path):
    assert violations(package, path.read_text()) == []


def test_the_library_imports_no_streamlit_outside_ui():
    for path in [REPO / "app.py", *sorted((REPO / "pages").glob("*.py"))]:
        assert "streamlit" in imported_modules(path.read_text()), path  # pages may, and do
    for package, path in _modules():
        if package not in STREAMLIT_ALLOWED:
            assert not any(m.split(".")[0] == "streamlit"
                           for m in imported_modules(path.read_text())), path


@pytest.mark.parametrize("package,source", [
    ("engine", "from bnapp.analyses import stages\n"),
    ("engine", "def f():\n    from bnapp.jobs.cache import run_key\n"),
    ("engine", "import bnapp.ui.widgets\n"),
    ("intake", "from bnapp.engine.model import ArchSpec\n"),
    ("analyses", "from bnapp import report\n"),
    ("report", "from bnapp.jobs import cache\n"),
    ("jobs", "from bnapp.cli import main\n"),
    ("analyses", "import streamlit as st\n"),
])
def test_a_forbidden_import_is_caught(package, source):
    assert violations(package, source)


@pytest.mark.parametrize("package,source", [
    ("analyses", "from bnapp.engine.results import RunResult\nfrom bnapp.intake import units\n"),
    ("jobs", "def f():\n    from bnapp.report import run_report\n"),
    ("ui", "import streamlit as st\nfrom bnapp.jobs import scheduler\n"),
    ("engine", "from bnapp import __version__\n"),
])
def test_an_allowed_import_passes(package, source):
    assert violations(package, source) == []


# --------------------------------------------------------------------------------------------
# the house rules of issue 25, each with a small synthetic source showing it can fail

MAX_LINES = 500
LONG_ALLOWED = {"engine/kernel.py"}  # the numba trainer: one compiled loop, kept whole
SETTING_PARAMETERS = {f.name for f in fields(AnalysisSettings) if f.name.startswith("n_")}
ANALYSIS_CALLS = {"compute", "cached_analysis", "call_key"}  # (…, fn, …): fn never a string


def module_name(path: Path) -> str:
    rel = path.relative_to(REPO).with_suffix("")
    parts = rel.parts[:-1] if rel.name == "__init__" else rel.parts
    return ".".join(parts)


def bnapp_imports(source: str, modules: set[str]) -> set[str]:
    """The bnapp modules a source imports, at any depth: `from bnapp.jobs import cache` names
    the module bnapp.jobs.cache, `from bnapp.jobs.cache import load` names bnapp.jobs.cache."""
    found = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
    return {name for name in found if name in modules}


def import_cycles(sources: dict[str, str]) -> list[list[str]]:
    """Cycles of the import graph of these modules (name -> source), each once; a package's
    __init__ (docstring only) is left out, as importing a submodule runs it first anyway."""
    modules = set(sources)
    graph = {name: sorted(bnapp_imports(source, modules) - {name})
             for name, source in sources.items()}
    cycles, done = [], set()

    def visit(name: str, path: list[str]) -> None:
        if name in path:
            cycle = path[path.index(name):]
            if frozenset(cycle) not in done:
                done.add(frozenset(cycle))
                cycles.append(cycle)
            return
        for other in graph[name]:
            if sources[other].strip().startswith('"""') and other.count(".") == 1:
                continue  # bnapp.<package>: its __init__
            visit(other, [*path, name])

    for name in sorted(graph):
        visit(name, [])
    return cycles


def private_imports(source: str, module: str) -> list[str]:
    """Names starting with _ that a module takes from another bnapp module: imported by name,
    or read as an attribute of an imported module."""
    found, aliases = [], {}
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("bnapp"):
            for alias in node.names:
                if node.module != module and alias.name.startswith("_") \
                        and not alias.name.startswith("__"):
                    found.append(f"{node.module}.{alias.name}")
                aliases[alias.asname or alias.name] = f"{node.module}.{alias.name}"
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.startswith("bnapp."):
                    aliases[alias.asname or alias.name] = alias.name
    for node in ast.walk(ast.parse(source)):
        if (isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name)
                and node.value.id in aliases and node.attr.startswith("_")
                and not node.attr.startswith("__") and aliases[node.value.id] != module):
            found.append(f"{aliases[node.value.id]}.{node.attr}")
    return sorted(set(found))


def analyses_named_by_a_string(source: str) -> list[str]:
    """Calls of compute / cached_analysis / call_key naming their analysis by a string."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if not isinstance(node, ast.Call):
            continue
        name = getattr(node.func, "attr", getattr(node.func, "id", ""))
        if name in ANALYSIS_CALLS and any(isinstance(a, ast.Constant) and isinstance(a.value, str)
                                          for a in node.args[:2]):
            found.append(f"line {node.lineno}: {name}")
    return found


def literal_setting_defaults(source: str) -> list[str]:
    """Parameters named like an analysis setting (n_boot, n_permutations, ...) whose default
    is written as a literal instead of read from bnapp.analyses.settings."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if not isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            continue
        a = node.args
        positional = [*a.posonlyargs, *a.args]
        pairs = [*zip(positional[len(positional) - len(a.defaults):], a.defaults, strict=True),
                 *((arg, d) for arg, d in zip(a.kwonlyargs, a.kw_defaults, strict=True) if d)]
        found += [f"{node.name}({arg.arg}={ast.unparse(default)})" for arg, default in pairs
                  if arg.arg in SETTING_PARAMETERS and isinstance(default, ast.Constant)]
    return found


def _library():
    return {module_name(path): path.read_text() for path in sorted(PACKAGE.rglob("*.py"))}


def _relative(path: Path) -> str:
    return str(path.relative_to(PACKAGE))


def test_no_import_cycle_among_bnapp_modules():
    assert import_cycles(_library()) == []


@pytest.mark.parametrize("path", sorted(PACKAGE.rglob("*.py")), ids=_relative)
def test_no_private_name_from_another_module(path):
    assert private_imports(path.read_text(), module_name(path)) == []


@pytest.mark.parametrize("path", [*sorted(PACKAGE.rglob("*.py")),
                                  *sorted((REPO / "pages").glob("*.py"))], ids=str)
def test_analyses_are_named_by_their_function(path):
    assert analyses_named_by_a_string(path.read_text()) == []


@pytest.mark.parametrize("path", [p for p in sorted(PACKAGE.rglob("*.py"))
                                  if _relative(p) not in LONG_ALLOWED], ids=_relative)
def test_library_files_stay_short(path):
    assert len(path.read_text().splitlines()) <= MAX_LINES


@pytest.mark.parametrize("path", sorted(PACKAGE.rglob("*.py")), ids=_relative)
def test_analysis_settings_are_not_written_as_literals(path):
    assert literal_setting_defaults(path.read_text()) == []


def test_an_import_cycle_is_caught_lazy_imports_included():
    sources = {"bnapp.jobs.a": "from bnapp.jobs import b\n",
               "bnapp.jobs.b": "def f():\n    from bnapp.jobs.c import g\n",
               "bnapp.jobs.c": "import bnapp.jobs.a\n",
               "bnapp.jobs.d": "from bnapp.jobs import a\n"}
    assert import_cycles(sources) == [["bnapp.jobs.a", "bnapp.jobs.b", "bnapp.jobs.c"]]
    del sources["bnapp.jobs.c"]
    assert import_cycles(sources) == []


@pytest.mark.parametrize("source", [
    "from bnapp.report.charts import _finish\n",
    "from bnapp.jobs import cache\ncache._warn('x')\n",
    "import bnapp.jobs.cache as c\ndef f():\n    return c._sinks\n",
])
def test_a_private_name_from_another_module_is_caught(source):
    assert private_imports(source, "bnapp.report.page_tables")


def test_own_and_public_names_pass():
    source = ("from bnapp.report.page_tables import _number\nfrom bnapp.jobs import cache\n"
              "cache.warn('x')\nprint(cache.__name__)\n")
    assert private_imports(source, "bnapp.report.page_tables") == []


@pytest.mark.parametrize("source,caught", [
    ("widgets.compute(entry, 'bn_parameters', layer)\n", True),
    ("cache.cached_analysis(key, 'bnapp.stages.bn_parameters', run)\n", True),
    ("widgets.compute(entry, stages.bn_parameters, layer, label='x')\n", False),
])
def test_an_analysis_named_by_a_string_is_caught(source, caught):
    assert bool(analyses_named_by_a_string(source)) == caught


def test_a_long_file_is_caught(tmp_path):
    long = tmp_path / "long.py"
    long.write_text("x = 1\n" * (MAX_LINES + 1))
    with pytest.raises(AssertionError):
        test_library_files_stay_short(long)


@pytest.mark.parametrize("source,caught", [
    ("def f(run, n_boot=2000):\n    pass\n", True),
    ("def f(run, *, n_permutations: int = 10):\n    pass\n", True),
    ("def f(run, n_boot=SETTINGS.n_boot, seed=0, *, n_background=SETTINGS.n_background):\n"
     "    pass\n", False),
])
def test_a_literal_setting_default_is_caught(source, caught):
    assert bool(literal_setting_defaults(source)) == caught
