"""The ``cfmd`` command line: help, exit codes, one-line errors, and impute / benchmark / demo on tiny cohorts."""

from __future__ import annotations

import argparse
import inspect
import subprocess
import sys
from pathlib import Path

import mudata
import numpy as np
import pandas as pd
import pytest

import cfmd
from cfmd import _cli, _demo
from cfmd._cli import EXIT_FAILURE, EXIT_INPUT, EXIT_OK, EXIT_OUTPUT_EXISTS, EXIT_USAGE, main
from cfmd._report import benchmark_figures, benchmark_report, demo_figures

PLANTED = ["--geneformer-key", "transcriptomic_context", "--gene-embedding-key", "structural_features"]
TINY = {"rmd_kwargs": {"d_model": 16, "d_feedforward": 32, "d_gene_hidden": 8, "n_heads": 2}, "d_hidden": 16}
QUICK_BENCHMARK = ["--methods", "zero_mask", "ridge", "--seeds", "1", "--n-boot", "20", "--loco", "none"]


# ---------------------------------------------------------------------------------------------- fixtures
@pytest.fixture(scope="module")
def cohort_file(tmp_path_factory) -> Path:
    """200 x 300 synthetic cohort with a split and a (2-epoch) StructuredVAE latent, as .h5mu. Do not modify.

    200 patients: the test split then has 8 events, enough for a C-index (fewer than 5 give NaN, see evaluate).
    """
    mdata = cfmd.datasets.synthetic_cohort(n_patients=200, n_genes=300, seed=0)
    cfmd.tl.split_patients(mdata, seed=0)
    cfmd.tl.fit_latent(mdata, max_epochs=2, seed=0, train_kwargs={"enable_progress_bar": False})
    path = tmp_path_factory.mktemp("cohort") / "cohort.h5mu"
    mdata.write(path)
    return path


@pytest.fixture(scope="module")
def results_mdata(cohort_file):
    """The cohort with what ``cfmd demo`` adds: ``X_cfmd`` and ``X_cfmd_tiny`` for every patient. Copy before use."""
    mdata = mudata.read_h5mu(cohort_file)
    options = {"max_epochs": 1, "fill": "all", "model_kwargs": TINY, "train_kwargs": {"enable_progress_bar": False}}
    cfmd.tl.impute(mdata, geneformer_key="transcriptomic_context", gene_embedding_key="structural_features", **options)
    rng = np.random.default_rng(0)
    mdata.obsm["X_cfmd_tiny"] = (mdata.obsm["X_cfmd"] + rng.normal(size=mdata.obsm["X_cfmd"].shape)).astype("float32")
    return mdata


@pytest.fixture
def fake_latent_umap(monkeypatch):
    """Replace ``cfmd.tl/pl.latent_umap`` (the UMAP JIT-compiles for ~20 s; tested in test_pl) by recording stubs."""
    calls = []

    def embed(mdata, **kwargs):
        for key in (kwargs["observed_key"], kwargs["imputed_keys"]):
            mdata.obsm[cfmd.tl.umap_key(key)] = np.zeros((mdata.n_obs, 2))

    def stub(mdata, *, save=None, return_fig=False, **kwargs):
        import matplotlib.pyplot as plt

        calls.append(kwargs)
        fig, _ = plt.subplots(1, 2)
        fig.savefig(save)
        return fig if return_fig else None

    monkeypatch.setattr(cfmd.pl, "latent_umap", stub)
    monkeypatch.setattr(cfmd.tl, "latent_umap", embed)
    return calls


def run(capsys, *argv: str) -> tuple[int, str, str]:
    code = main([str(a) for a in argv])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def assert_one_error_line(err: str, fragment: str = "") -> None:
    lines = err.strip().splitlines()
    errors = [line for line in lines if line.startswith("cfmd: error: ")]
    assert len(errors) == 1 and lines[-1] == errors[0], err
    assert "Traceback" not in err
    assert fragment in errors[0], errors[0]


# ---------------------------------------------------------------------------------------------- help
def _subparsers(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    action = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return dict(action.choices)


@pytest.mark.parametrize("command", [None, "demo", "impute", "benchmark", "prioritize", "rescue"])
def test_help_lists_every_option_with_its_default(capsys, command):
    parser = _cli.build_parser()
    target = parser if command is None else _subparsers(parser)[command]
    code, out, err = run(capsys, *([command] if command else []), "--help")
    assert code == EXIT_OK and err == ""
    options = [a for a in target._actions if a.option_strings and a.dest not in ("help", "version")]
    assert options
    for action in options:
        assert any(flag in out for flag in action.option_strings), action.option_strings
        assert ("required" if action.required else "default") in action.help, action.option_strings
    assert "exit codes:" in out and "examples:" in out
    for code_number in _cli.EXIT_CODES:
        assert f"  {code_number} " in out
    if command is None:
        assert all(name in out for name in ("demo", "impute", "benchmark", "prioritize", "rescue"))
    if command == "benchmark":
        assert "cfmd_split" in out and all(name in out for name in cfmd.tl.METHODS)


def test_version(capsys):
    code, out, _ = run(capsys, "--version")
    assert code == EXIT_OK and out.strip() == f"cfmd {cfmd.__version__}"


def test_console_script_help():
    script = Path(sys.executable).with_name("cfmd")
    if not script.is_file():
        pytest.skip(f"console script not installed next to {sys.executable}")
    done = subprocess.run([str(script), "--help"], capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("usage: cfmd") and "exit codes:" in done.stdout and "benchmark" in done.stdout


# ---------------------------------------------------------------------------------------------- errors
@pytest.mark.parametrize(
    "argv",
    [
        ["--no-such-option"],
        [],
        ["impute", "x.h5mu"],
        ["impute", "x.h5mu", "--out", "y.txt"],
        ["impute", "x.h5mu", "--out", "y.h5mu", "--model", "m", "--save-model", "n"],
        ["impute", "x.h5mu", "--out", "y.h5mu", "--fill", "some"],
        ["benchmark", "x.h5mu", "--out", "d", "--methods", "cfdm"],
        ["benchmark", "x.h5mu", "--out", "d", "--seeds", "-1"],
        ["benchmark", "x.h5mu", "--out", "d", "--n-boot", "0"],
        ["demo", "--patients", "5"],
        ["demo", "--genes", "many"],
        ["-q", "demo", "-v"],
    ],
)
def test_usage_errors_exit_2(capsys, tmp_path, monkeypatch, argv):
    monkeypatch.chdir(tmp_path)
    code, out, err = run(capsys, *argv)
    assert code == EXIT_USAGE
    assert "error:" in err.strip().splitlines()[-1] and "Traceback" not in err
    assert not list(tmp_path.iterdir())  # nothing written


def _without(cohort_file: Path, tmp_path: Path, what: str) -> Path:
    mdata = mudata.read_h5mu(cohort_file)
    if what == "rna":
        mdata = mudata.MuData({"meth": mdata["meth"].copy()})
    elif what == "latent":
        del mdata.obsm["X_structured"]
    elif what == "split":
        del mdata.obs["cfmd_split"]
    path = tmp_path / f"no_{what}.h5mu"
    mdata.write(path)
    return path


@pytest.mark.parametrize(
    ("command", "problem", "fragment"),
    [
        ("impute", "missing", "does not exist"),
        ("impute", "folder", "is not a file"),
        ("impute", "not_h5mu", "cannot read"),
        ("impute", "rna", "no modality 'rna'"),
        ("impute", "latent", "'X_structured'"),
        ("impute", "no_model", "saved CFMD model"),
        ("impute", "same_keys", "`key_added` must differ"),
        ("benchmark", "missing", "does not exist"),
        ("benchmark", "rna", "no modality 'rna'"),
        ("benchmark", "latent", "no observed latent"),
        ("benchmark", "split", "no patient split"),
        ("benchmark", "teacher", "no Geneformer embedding 'X_geneformer'"),
    ],
)
def test_input_errors_exit_3_with_one_line(capsys, tmp_path, cohort_file, command, problem, fragment):
    before = cohort_file.stat().st_mtime_ns
    extra = []
    if problem == "missing":
        source = tmp_path / "missing.h5mu"
    elif problem == "folder":
        source = tmp_path / "a_folder.h5mu"
        source.mkdir()
    elif problem == "not_h5mu":
        source = tmp_path / "table.h5mu"
        source.write_text("patient,gene\n")
    elif problem in ("rna", "latent", "split"):
        source = _without(cohort_file, tmp_path, problem)
    else:
        source = cohort_file
    if problem == "no_model":
        (tmp_path / "empty_model").mkdir()
        extra = ["--model", tmp_path / "empty_model"]
    elif problem == "same_keys":
        extra = [*PLANTED, "--key-added", "X_structured"]
    elif problem != "teacher":
        extra = PLANTED
    out = tmp_path / ("out.h5mu" if command == "impute" else "out")
    more = QUICK_BENCHMARK if command == "benchmark" and problem != "teacher" else []
    if problem == "teacher":
        more = ["--methods", "cfmd", "--seeds", "1"]
    code, stdout, err = run(capsys, command, source, "--out", out, *extra, *more)
    assert code == EXIT_INPUT, err
    assert_one_error_line(err, fragment)
    assert stdout == "" and not out.exists()
    assert cohort_file.stat().st_mtime_ns == before


def test_quiet_error_is_exactly_one_line_and_debug_adds_the_traceback(capsys, tmp_path, cohort_file):
    source = _without(cohort_file, tmp_path, "rna")
    code, _, err = run(capsys, "impute", source, "--out", tmp_path / "out.h5mu", "--quiet")
    assert code == EXIT_INPUT and len(err.splitlines()) == 1 and err.startswith("cfmd: error: ")
    code, _, err = run(capsys, "--debug", "impute", source, "--out", tmp_path / "out.h5mu")
    assert code == EXIT_INPUT and "Traceback" in err and err.strip().splitlines()[-1].startswith("cfmd: error: ")


def test_existing_outputs_exit_4_before_reading_the_input(capsys, tmp_path):
    garbage = tmp_path / "garbage.h5mu"
    garbage.write_text("not hdf5")  # would be exit 3 if it were read
    existing_file = tmp_path / "exists.h5mu"
    existing_file.write_text("keep me")
    full = tmp_path / "full"
    full.mkdir()
    (full / "keep.txt").write_text("keep me")
    folder = tmp_path / "folder.h5mu"
    folder.mkdir()
    cases = [
        ["impute", garbage, "--out", existing_file],
        ["impute", garbage, "--out", tmp_path / "new.h5mu", "--save-model", full],
        ["impute", garbage, "--out", folder, "--overwrite"],  # a folder is not an output file
        ["benchmark", garbage, "--out", full],
        ["benchmark", garbage, "--out", existing_file, "--overwrite"],
        ["demo", "--out", full],
    ]
    for argv in cases:
        code, _, err = run(capsys, *argv)
        assert code == EXIT_OUTPUT_EXISTS, (argv, err)
        assert_one_error_line(err)
    assert existing_file.read_text() == "keep me" and (full / "keep.txt").read_text() == "keep me"
    assert not (tmp_path / "new.h5mu").exists()


def test_unexpected_failure_exits_1_with_one_line(capsys, tmp_path, cohort_file, monkeypatch):
    def broken(*args, **kwargs):
        raise RuntimeError("boom")

    monkeypatch.setattr(cfmd.tl, "impute", broken)
    argv = ["impute", cohort_file, "--out", tmp_path / "out.h5mu", *PLANTED]
    code, _, err = run(capsys, *argv)
    assert code == EXIT_FAILURE
    assert_one_error_line(err, "unexpected failure: RuntimeError: boom (rerun with --debug")
    assert not (tmp_path / "out.h5mu").exists()
    code, _, err = run(capsys, *argv, "--debug")
    assert code == EXIT_FAILURE and "Traceback" in err and 'raise RuntimeError("boom")' in err


def test_what_the_training_stack_prints_goes_to_stderr(capsys, tmp_path, cohort_file, monkeypatch):
    def chatty_impute(mdata, **kwargs):
        print("Monitored metric validation_loss did not improve in the last 40 records.")
        mdata.obsm[kwargs["key_added"]] = np.zeros((mdata.n_obs, 3), dtype="float32")

    monkeypatch.setattr(cfmd.tl, "impute", chatty_impute)
    out = tmp_path / "out.h5mu"
    code, stdout, err = run(capsys, "impute", cohort_file, "--out", out, *PLANTED)
    assert code == EXIT_OK and stdout == f"{out}\n" and "Monitored metric" in err
    code, stdout, err = run(capsys, "impute", cohort_file, "--out", out, *PLANTED, "--overwrite", "--quiet")
    assert code == EXIT_OK and stdout == f"{out}\n" and err == ""


# ---------------------------------------------------------------------------------------------- impute
@pytest.mark.slow
def test_impute_trains_saves_and_applies_a_model(capsys, tmp_path, cohort_file):
    trained, model = tmp_path / "trained.h5mu", tmp_path / "model"
    argv = ["impute", cohort_file, "--out", trained, "--save-model", model, "--max-epochs", "1", "--fill", "all"]
    code, out, err = run(capsys, *argv, *PLANTED)
    assert code == EXIT_OK, err
    assert out.strip() == str(trained) and (model / "model.safetensors").is_file()
    assert "[cfmd " in err and "GPU available" not in err and "Seed set" not in err  # progress, no banners
    result = mudata.read_h5mu(trained)
    assert result.obsm["X_cfmd"].shape == (200, 328) and np.isfinite(result.obsm["X_cfmd"]).all()
    assert result.uns["X_cfmd"]["fill"] == "all" and "X_cfmd_layout" in result.uns

    applied = tmp_path / "applied.h5mu"
    code, out, err = run(capsys, "impute", cohort_file, "--out", applied, "--model", model, "--quiet")
    assert code == EXIT_OK and err == "" and out.strip() == str(applied)
    result = mudata.read_h5mu(applied)
    observed = np.isfinite(np.asarray(result.obsm["X_structured"])).all(axis=1)
    np.testing.assert_array_equal(result.obsm["X_cfmd"][observed], np.asarray(result.obsm["X_structured"])[observed])
    provenance = result.obsm["X_cfmd_provenance"]["meth"].astype(str)
    assert (provenance[observed] == "observed").all() and (provenance[~observed] == "imputed").all()
    assert result.uns["X_cfmd"]["model_path"] == str(model)

    code, _, err = run(capsys, "impute", cohort_file, "--out", applied, "--model", model, "--max-epochs", "3")
    assert code == EXIT_OUTPUT_EXISTS
    code, _, err = run(
        capsys, "impute", cohort_file, "--out", applied, "--model", model, "--max-epochs", "3", "--overwrite"
    )
    assert code == EXIT_OK and "--max-epochs only apply to training" in err
    assert not [p for p in tmp_path.iterdir() if ".partial-" in p.name]


# ---------------------------------------------------------------------------------------------- benchmark
@pytest.mark.slow
def test_benchmark_writes_tables_figures_and_report(capsys, tmp_path, cohort_file):
    out = tmp_path / "bench"
    code, stdout, err = run(capsys, "benchmark", cohort_file, "--out", out, *QUICK_BENCHMARK, *PLANTED)
    assert code == EXIT_OK, err
    assert stdout.startswith("| method | label | latent_r2") and "Ridge Regression (RNA-only)" in stdout
    for name in ("table1", "table2", "table3", "slices", "per_cancer_type", "timing"):
        assert (out / "tables" / f"{name}.csv").is_file()
    table3 = pd.read_csv(out / "tables" / "table3.csv")
    assert list(table3["method"]) == ["zero_mask", "ridge"]
    assert (out / "tables" / "tables.md").is_file()
    assert (out / "figures" / "slice_r2.png").stat().st_size > 0
    assert (out / "figures" / "reconstruction_utility.png").stat().st_size > 0
    assert not (out / "figures" / "loco.png").exists()
    report = (out / "report.md").read_text()
    for fragment in (
        "# cfmd benchmark report",
        "--methods zero_mask ridge",
        str(cohort_file),
        "200 patients x 300 features",
        "train 130",
        "Table 3",
        "![slice_r2](figures/slice_r2.png)",
        "[tables/table3.csv](tables/table3.csv)",
        "## Timings",
        "method `ridge`",
    ):
        assert fragment in report, fragment
    assert f"{table3.set_index('method').loc['ridge', 'latent_r2']:.3f}" in report

    code, _, err = run(capsys, "benchmark", cohort_file, "--out", out, *QUICK_BENCHMARK, *PLANTED)
    assert code == EXIT_OUTPUT_EXISTS
    code, _, err = run(capsys, "benchmark", cohort_file, "--out", out, *QUICK_BENCHMARK, *PLANTED, "--overwrite", "-q")
    assert code == EXIT_OK and err == ""


def test_benchmark_figures_and_report_with_loco(tmp_path):
    methods = ["zero_mask", "ridge"]
    slices = pd.DataFrame(
        [
            {"method": m, "slice": s, "kind": k, "dims": d, "r2": r, "r2_low": r - 0.05, "r2_high": r + 0.05}
            for m, shift in zip(methods, (-0.4, 0.0))
            for s, k, d, r in (("pathway", "slice", 200, 0.7 + shift), ("full", "full", 328, 0.6 + shift))
        ]
    )
    table3 = pd.DataFrame(
        {
            "method": methods,
            "label": ["Zero-mask", "Ridge Regression (RNA-only)"],
            "latent_r2": [np.nan, 0.6],
            "latent_r2_low": [np.nan, 0.55],
            "latent_r2_high": [np.nan, 0.65],
            "c_index": [0.6, 0.65],
            "c_index_low": [0.55, 0.6],
            "c_index_high": [0.65, 0.7],
        }
    )
    chromosomes = list(cfmd.datasets.CHROMOSOMES)
    per_chromosome = pd.DataFrame(
        {
            "chromosome": chromosomes * 2,
            "decoder": ["regional"] * len(chromosomes) + ["pointwise"] * len(chromosomes),
            "r2": np.r_[np.full(len(chromosomes), 0.7), np.full(len(chromosomes), 0.4)],
            "r2_random": np.r_[np.full(len(chromosomes), 0.75), np.full(len(chromosomes), 0.5)],
        }
    )
    loco = {"per_chromosome": per_chromosome, "summary": {"mode": "fast", "r2_shuffled_positions": 0.05}}
    result = {"table1": pd.DataFrame(), "table2": pd.DataFrame(), "table3": table3, "slices": slices}
    result["timing"] = pd.DataFrame({"method": methods, "seed": [1, 1], "seconds": [0.01, 0.2]})
    figures = benchmark_figures(result, tmp_path / "figures", loco=loco)
    assert set(figures.paths) == {"slice_r2", "reconstruction_utility", "loco"} and not figures.skipped
    assert all(path.stat().st_size > 0 for path in figures.paths.values())
    figures.skipped["extra"] = "a reason"
    report = benchmark_report(
        tmp_path / "report.md", command="cfmd benchmark x", input_path="x.h5mu", cohort=[("patients", "10")],
        settings={"LOCO audit": "fast"}, result=result, figures=figures, tables=[tmp_path / "tables" / "t.csv"],
        timings={"total": 1.0}, loco=loco,
    )  # fmt: skip
    text = report.read_text()
    assert "![loco](figures/loco.png)" in text and "Leave-one-chromosome-out" in text and "0.0500" in text
    assert "`extra` not drawn: a reason" in text and "differences are to `zero_mask`" in text


# ---------------------------------------------------------------------------------------------- demo
@pytest.mark.slow
def test_demo_figures_on_a_small_result(tmp_path, results_mdata, fake_latent_umap):
    mdata = results_mdata.copy()
    figures = demo_figures(mdata, tmp_path, n_boot=50)
    assert set(figures.paths) == {"latent_umap", "slice_r2", "reconstruction_utility"} and not figures.skipped
    assert fake_latent_umap == [
        {
            "observed_key": "X_structured",
            "imputed_key": "X_cfmd",
            "patients": ("cfmd_split", "test"),
            "random_state": 0,
            "title": "Held-out test patients: observed latent (left) vs CFMD (planted teacher signals) (right)",
            "dpi": 150,
        }
    ]
    summary = pd.read_csv(tmp_path / "evaluation_summary.csv")
    assert list(summary["method"]) == ["CFMD (planted teacher signals)", "CFMD (tiny stand-in teachers)", "Zero-mask"]
    assert summary["c_index"].notna().all()
    slices = pd.read_csv(tmp_path / "evaluation_slices.csv")
    assert set(slices["method"]) == set(summary["method"])

    # no event among the test patients: no survival score, so the R^2 figures only
    no_events = results_mdata.copy()
    no_events.obs["os_event"] = np.where(no_events.obs["cfmd_split"] == "test", 0, no_events.obs["os_event"])
    figures = demo_figures(no_events, tmp_path / "no_events", n_boot=20)
    assert set(figures.paths) == {"latent_umap", "slice_r2"} and "no event" in figures.skipped["reconstruction_utility"]


@pytest.mark.slow
def test_demo_command_wraps_run_demo(capsys, tmp_path, results_mdata, monkeypatch, fake_latent_umap):
    calls = []
    defaults = inspect.signature(_demo.run_demo).parameters

    def fake_run_demo(
        out,
        *,
        n_patients=defaults["n_patients"].default,
        n_genes=defaults["n_genes"].default,
        protocol=defaults["protocol"].default,
    ):
        calls.append((n_patients, n_genes, protocol))
        Path(out).mkdir(parents=True, exist_ok=True)
        results_mdata.write(Path(out) / "results.h5mu")
        print("the demo's table")
        return 0

    monkeypatch.setattr(_demo, "run_demo", fake_run_demo)
    out = tmp_path / "demo"
    code, stdout, err = run(capsys, "demo", "--out", out, "--patients", "300", "--genes", "400")
    assert code == EXIT_OK, err
    assert calls == [(300, 400, "quick")] and stdout == "the demo's table\n"
    for name in ("latent_umap.png", "slice_r2.png", "reconstruction_utility.png", "evaluation_summary.csv"):
        assert (out / name).is_file(), name
    assert run(capsys, "demo", "--out", out)[0] == EXIT_OUTPUT_EXISTS
    assert run(capsys, "demo", "--out", out, "--overwrite")[0] == EXIT_OK
    assert calls[-1] == (800, 1000, "quick")  # run_demo's own defaults
    assert run(capsys, "demo", "--out", out, "--overwrite", "--protocol", "paper")[0] == EXIT_OK
    assert calls[-1] == (800, 1000, "paper")

    def failing_run_demo(out, *, n_patients, n_genes, protocol):
        Path(out).mkdir(parents=True, exist_ok=True)
        raise cfmd.InvalidInputError("`n_genes` must be an integer >= 220; got 10.")

    monkeypatch.setattr(_demo, "run_demo", failing_run_demo)
    code, _, err = run(capsys, "demo", "--out", tmp_path / "failed")
    assert code == EXIT_INPUT
    assert_one_error_line(err, "`n_genes` must be")
    assert not (tmp_path / "failed").exists()  # the empty folder it made is removed
