"""The packages' import direction (docs/architecture.md), read from the code with `ast`.

Every import counts, also those inside functions (the lazy ones that keep start-up light).
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

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
    ("ui", "import streamlit as st\nfrom bnapp.jobs import runner\n"),
    ("engine", "from bnapp import __version__\n"),
])
def test_an_allowed_import_passes(package, source):
    assert violations(package, source) == []
