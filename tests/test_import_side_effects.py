"""``import cfmd`` (and its sub-packages) changes no global setting of other packages."""

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src"

_PROBE = textwrap.dedent(
    """
    import json, logging, sys, warnings
    import mudata, scvi

    def settings():
        return {
            "mudata.pull_on_update": repr(mudata._core.config.OPTIONS["pull_on_update"]),
            "mudata.options": repr(sorted(mudata._core.config.OPTIONS.items())),
            "scvi.settings.verbosity": scvi.settings.verbosity,
            "scvi.settings.seed": repr(scvi.settings.seed),
            "logging.scvi": logging.getLogger("scvi").level,
            "logging.lightning": logging.getLogger("lightning").level,
            "logging.lightning.pytorch": logging.getLogger("lightning.pytorch").level,
            "logging.root": logging.getLogger().level,
            "warnings.filters": len(warnings.filters),
        }

    before = settings()
    import cfmd, cfmd.models, cfmd.tl, cfmd.pp, cfmd.pl
    print(json.dumps({"before": before, "after": settings()}))
    """
)


@pytest.mark.slow  # a fresh interpreter imports scvi, lightning and cfmd: ~10 s
def test_import_changes_no_global_setting():
    env = {"PYTHONPATH": str(SRC), "OMP_NUM_THREADS": "1", "MPLBACKEND": "Agg"}
    out = subprocess.run(
        [sys.executable, "-c", _PROBE], capture_output=True, text=True, env={**__import__("os").environ, **env}
    )
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result["before"] == result["after"]
    assert result["after"]["mudata.pull_on_update"] == "None"  # the user's (default) option, not cfmd's
