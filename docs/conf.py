"""Sphinx configuration of the cfmd documentation (``make docs``).

Builds offline: no intersphinx, no remote resources at build time. Tutorials (``../tutorials``, linked into the
source tree as ``docs/tutorials``) are MyST-markdown notebooks executed by myst-nb during the build.

Environment variables
---------------------
CFMD_DOCS_EXECUTE
    myst-nb execution mode: ``force`` (default: every notebook is re-run, so the pages always show what the current
    code gives), ``cache`` (re-run only notebooks whose code changed; results of unchanged notebooks are reused even
    if the package changed) or ``off`` (no execution: notebooks are rendered without outputs).
"""

from __future__ import annotations

import os
import re
import sys
from datetime import date
from pathlib import Path

from sphinx.util import logging as sphinx_logging

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
# The tutorials are sized for a 2-core machine: one OpenMP/BLAS thread per process (more threads slow torch down).
os.environ.setdefault("OMP_NUM_THREADS", "1")
# Make the source tree importable even where cfmd is not installed in editable mode.
sys.path.insert(0, str(ROOT / "src"))

import cfmd  # noqa: E402

# -- Project -------------------------------------------------------------------------------------------------------
project = "cfmd"
author = "cfmd developers"
copyright = f"{date.today().year}, {author}"
release = cfmd.__version__
version = ".".join(release.split(".")[:2])

# -- General -------------------------------------------------------------------------------------------------------
extensions = [
    "myst_nb",  # MyST markdown + notebooks (includes myst_parser)
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "sphinx.ext.napoleon",
    "sphinx_autodoc_typehints",  # after napoleon
    "sphinx.ext.mathjax",
    "sphinx.ext.viewcode",
]
templates_path = ["_templates"]
exclude_patterns = ["_build", "**.ipynb_checkpoints", "Thumbs.db", ".DS_Store"]
source_suffix = {".rst": "restructuredtext", ".md": "myst-nb", ".ipynb": "myst-nb"}
master_doc = "index"
default_role = "literal"
pygments_style = "default"
nitpicky = False  # no intersphinx (offline build): references to numpy/anndata/torch cannot resolve

# -- MyST ----------------------------------------------------------------------------------------------------------
myst_enable_extensions = ["amsmath", "colon_fence", "deflist", "dollarmath", "substitution"]
myst_heading_anchors = 3
myst_url_schemes = ["http", "https", "mailto"]

# -- Notebook execution (myst-nb) ------------------------------------------------------------------------------------
nb_execution_mode = os.environ.get("CFMD_DOCS_EXECUTE", "force")
if nb_execution_mode not in {"force", "cache", "off"}:
    raise ValueError(f"CFMD_DOCS_EXECUTE must be 'force', 'cache' or 'off'; got {nb_execution_mode!r}.")
nb_execution_timeout = 900  # seconds per cell; the slowest cell takes 1-3 minutes on 2 cores (more when loaded)
nb_execution_raise_on_error = True  # a failing tutorial fails the build
nb_execution_show_tb = True
nb_execution_cache_path = str(HERE / "_build" / ".jupyter_cache")
nb_merge_streams = True
nb_output_stderr = "show"
nb_kernel_rgx_aliases = {".*": "python3"}  # run every notebook in the interpreter that runs Sphinx

# -- autodoc / autosummary / napoleon ------------------------------------------------------------------------------
autosummary_generate = True
autosummary_imported_members = False
autodoc_member_order = "bysource"
autodoc_default_options = {"members": True, "show-inheritance": False}
autodoc_typehints = "description"
autodoc_typehints_format = "short"
autodoc_preserve_defaults = True
napoleon_google_docstring = False
napoleon_numpy_docstring = True
napoleon_include_init_with_doc = False
napoleon_use_rtype = True
napoleon_use_param = True
typehints_defaults = "braces"
typehints_document_rtype = True
always_use_bars_union = True
typehints_use_signature = False

# -- HTML ----------------------------------------------------------------------------------------------------------
html_theme = "sphinx_book_theme"
html_title = "cfmd"
html_static_path = ["_static"]
html_css_files = ["css/custom.css"]
html_show_sphinx = False
html_theme_options = {
    "show_toc_level": 2,
    "navigation_with_keys": False,
    "use_download_button": True,
    "launch_buttons": {},
    "home_page_in_toc": True,
}

# -- API completeness check ----------------------------------------------------------------------------------------
#: Public namespaces and the reference page that must list every name in their ``__all__``.
API_PAGES = {
    "cfmd": "api/layout.md",
    "cfmd.pp": "api/pp.md",
    "cfmd.tl": "api/tl.md",
    "cfmd.metrics": "api/metrics.md",
    "cfmd.pl": "api/pl.md",
    "cfmd.models": "api/models.md",
    "cfmd.models.nn": "api/models.md",
    "cfmd.datasets": "api/datasets.md",
}
#: Names of ``cfmd.__all__`` that are sub-packages (documented on their own pages).
_SUBPACKAGES = {"datasets", "metrics", "models", "pl", "pp", "tl"}


def _check_api_listing(app) -> None:
    """Warn (an error under ``-W``) when a public name is missing from its API page."""
    import importlib

    logger = sphinx_logging.getLogger(__name__)
    for module_name, page in API_PAGES.items():
        module = importlib.import_module(module_name)
        text = (HERE / page).read_text()
        listed = set(re.findall(r"^\s+([A-Za-z_][\w.]*)\s*$", text, flags=re.MULTILINE))
        prefix = f"{module_name}."
        for name in getattr(module, "__all__", []):
            if module_name == "cfmd" and name in _SUBPACKAGES:
                continue
            if name not in listed and f"{prefix}{name}" not in listed:
                logger.warning(
                    "API reference: %s%s is public (in __all__) but not listed in docs/%s; add it to an autosummary "
                    "table there.",
                    prefix,
                    name,
                    page,
                )


def _skip_foreign_members(app, what, name, obj, skip, options):
    """Document the members a class gets from cfmd (its own and cfmd mixins'), not those of scvi-tools, Lightning
    or torch base classes (documented by those projects, and not always valid reStructuredText here)."""
    if what not in {"class", "exception"}:
        return None
    target = obj.fget if isinstance(obj, property) else getattr(obj, "__func__", obj)
    module = getattr(target, "__module__", None) or getattr(getattr(target, "__objclass__", None), "__module__", None)
    if module is None:
        return None
    return None if module.split(".")[0] == "cfmd" else True


_SECTION_NAMES = {
    "Parameters", "Other Parameters", "Returns", "Yields", "Raises", "Warns", "See Also", "Notes", "References",
    "Examples", "Attributes", "Methods",
}  # fmt: skip


_RETURNS_BODIES: dict[tuple[str, str], list[str]] = {}


def _is_section_header(lines: list[str], i: int, names=None) -> bool:
    return (
        i + 1 < len(lines)
        and lines[i].strip() != ""
        and lines[i] == lines[i].lstrip()
        and (names is None or lines[i].strip() in names)
        and set(lines[i + 1].strip()) == {"-"}
    )


def _take_returns_section(app, what, name, obj, options, lines: list[str]) -> None:
    """Before napoleon: take the numpydoc *Returns* section out of the docstring (see :func:`_put_returns_field`)."""
    for i in range(len(lines)):
        if _is_section_header(lines, i, {"Returns"}):
            j = i + 2
            while j < len(lines) and not _is_section_header(lines, j, _SECTION_NAMES):
                j += 1
            body = lines[i + 2 : j]
            while body and not body[-1].strip():
                body.pop()
            while body and not body[0].strip():
                body.pop(0)
            _RETURNS_BODIES[(what, name)] = body
            del lines[i:j]
            return


def _put_returns_field(app, what, name, obj, options, lines: list[str]) -> None:
    """After napoleon and sphinx-autodoc-typehints: put the *Returns* body back as one ``:returns:`` field.

    cfmd's *Returns* sections are prose plus a definition list of the fields a function writes
    (``.obsm[key_added]`` followed by an indented description), as the project's function contract asks. Napoleon
    would read every unindented line as a separate ``type`` entry and break that prose apart; as the body of one
    ``:returns:`` field, reStructuredText renders it as written.
    """
    body = _RETURNS_BODIES.pop((what, name), None)
    if not body:
        return
    rtype = [line for line in lines if line.startswith(":rtype:")]
    lines[:] = [line for line in lines if not line.startswith(":rtype:")]
    at = next(
        (k for k, line in enumerate(lines) if line.startswith((".. rubric::", ".. seealso::", ":raises"))), len(lines)
    )
    lines[at:at] = ["", ":returns:", *(f"    {line}" if line.strip() else "" for line in body), *rtype, ""]


def _attribute_doc(module_name: str, attr: str, obj) -> list[str] | None:
    """The ``#:`` doc comment of a module-level constant, looked up where it is defined (a private submodule)."""
    import importlib

    from sphinx.pycode import ModuleAnalyzer

    module = importlib.import_module(module_name)
    candidates = [module_name] + sorted(
        m for m in sys.modules if m.startswith(f"{module_name}.") and getattr(sys.modules[m], attr, None) is obj
    )
    if module_name == "cfmd":  # cfmd's constants live in cfmd._layout
        candidates += sorted(
            m for m in sys.modules if m.startswith("cfmd._") and getattr(sys.modules[m], attr, None) is obj
        )
    del module
    for candidate in candidates:
        try:
            docs = ModuleAnalyzer.for_module(candidate).find_attr_docs()
        except Exception:  # noqa: BLE001 - a module without source: no comment to find
            continue
        if ("", attr) in docs:
            return [line for line in docs[("", attr)] if line is not None]
    return None


def _constant_value(obj) -> list[str]:
    """A short, deterministic rendering of a constant's value (no memory addresses)."""
    import pprint

    if isinstance(obj, dict) and not all(isinstance(v, str | int | float | tuple | list) for v in obj.values()):
        text = f"keys: {list(obj)!r}"
    else:
        text = pprint.pformat(obj, width=100, sort_dicts=False)
    if len(text) > 3000:
        return []
    return ["", ".. code-block:: python", "", *(f"   {line}" for line in text.splitlines()), ""]


def _data_docstrings(app, what, name, obj, options, lines: list[str]) -> None:
    """Constants: their ``#:`` comment and value instead of the docstring of their type (``dict``, ``tuple``)."""
    if what != "data":
        return
    module_name, _, attr = name.rpartition(".")
    doc = _attribute_doc(module_name, attr, obj) or []
    lines[:] = [*doc, *_constant_value(obj)]


def setup(app):
    """Register the API completeness check, the member filter and the docstring handlers."""
    app.connect("builder-inited", _check_api_listing)
    app.connect("autodoc-skip-member", _skip_foreign_members)
    app.connect("autodoc-process-docstring", _take_returns_section, priority=400)  # before napoleon (500)
    app.connect("autodoc-process-docstring", _put_returns_field, priority=600)  # after napoleon and typehints
    app.connect("autodoc-process-docstring", _data_docstrings, priority=400)
