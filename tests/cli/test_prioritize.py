"""``cfmd prioritize``: help, errors and a run on a tiny cohort with planted generations (issue 16)."""

from __future__ import annotations

import argparse

import mudata
import pytest
from test_cli import assert_one_error_line, run
from test_prioritize_assays import oracle_cohort

from cfmd import _cli
from cfmd._cli import EXIT_INPUT, EXIT_OK, EXIT_USAGE
from cfmd._cli._prioritize import PRIORITIZE_OPTIONS, prioritize_defaults

QUICK = ["--generated-key", "X_gen", "--n-repeats", "2", "--n-random", "2", "--n-steps", "5"]


@pytest.fixture(scope="module")
def generated_file(tmp_path_factory):
    """The oracle cohort of test_prioritize_assays (generations planted, no training) as .h5mu. Do not modify."""
    mdata, _ = oracle_cohort(200, seed=3)
    path = tmp_path_factory.mktemp("prioritize") / "generated.h5mu"
    mdata.write(path)
    return path


def test_help_lists_every_option_with_its_default(capsys):
    parser = _cli.build_parser()
    action = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    target = action.choices["prioritize"]
    code, out, err = run(capsys, "prioritize", "--help")
    assert code == EXIT_OK and err == ""
    for option in [a for a in target._actions if a.option_strings and a.dest != "help"]:
        assert any(flag in out for flag in option.option_strings), option.option_strings
        assert ("required" if option.required else "default") in option.help, option.option_strings
    defaults = prioritize_defaults()
    for name in PRIORITIZE_OPTIONS:  # the command's defaults are the library's
        assert target.get_default(name) == defaults[name], name
    assert "exit codes:" in out and "examples:" in out


@pytest.mark.slow  # writes and reads .h5mu and draws a figure: ~3 s on a loaded machine
def test_prioritize_writes_results_figure_and_summary(capsys, tmp_path, generated_file):
    out, figure = tmp_path / "out.h5mu", tmp_path / "curve.png"
    code, stdout, _ = run(capsys, "-q", "prioritize", generated_file, "--out", out, "--figure", figure, *QUICK)
    assert code == EXIT_OK, stdout
    lines = stdout.strip().splitlines()
    assert (
        lines[0].startswith("| modality | metric") and lines[2].startswith("| meth | c_index") and lines[-1] == str(out)
    )
    result = mudata.read_h5mu(out)
    stored = result.uns["cfmd_prioritize"]
    assert stored["settings"]["n_repeats"] == 2 and set(stored["curves"]["strategy"]) == {"informed", "random"}
    assert result.obs["cfmd_prioritize_score"].notna().sum() == stored["settings"]["n_test"]
    assert figure.stat().st_size > 0
    code, _, err = run(capsys, "-q", "prioritize", generated_file, "--out", out, *QUICK)
    assert code == 4 and "--overwrite" in err  # the output exists


def test_prioritize_errors(capsys, tmp_path, generated_file):
    code, _, err = run(capsys, "-q", "prioritize", generated_file, "--out", tmp_path / "o.h5mu", "--n-repeats", "2")
    assert code == EXIT_INPUT
    assert_one_error_line(err, "X_diffusion_samples")  # default key: no generations there, and how to get them
    code, _, err = run(capsys, "prioritize", generated_file, "--out", tmp_path / "o.h5mu", "--task", "classification")
    assert code == EXIT_USAGE and "--label-key" in err
    code, _, err = run(capsys, "prioritize", generated_file, "--out", tmp_path / "o.h5mu", "--n-repeats", "1")
    assert code == EXIT_USAGE
    code, _, err = run(capsys, "-q", "prioritize", generated_file, "--out", tmp_path / "o.h5mu", *QUICK,
                       "--modality", "rppa")  # fmt: skip
    assert code == EXIT_INPUT
    assert_one_error_line(err, "rppa")


@pytest.mark.slow  # trains a tiny diffusion model, saves it, then the command generates with it (~2 s alone)
def test_prioritize_generates_with_a_saved_model(capsys, tmp_path, generated_file):
    from test_latent_diffusion import TINY

    from cfmd.models import LatentDiffusion

    mdata = mudata.read_h5mu(generated_file)
    LatentDiffusion.setup_mudata(mdata)
    model = LatentDiffusion(mdata, target="meth", conditions=["rna", "cancer_type"], split_key=None, seed=0, **TINY)
    model.train(max_epochs=2, validate_every=2)
    model.save(tmp_path / "ld")
    out = tmp_path / "out.h5mu"
    argv = ["-q", "prioritize", generated_file, "--out", out, "--model", tmp_path / "ld", "--generated-key", "X_new",
            "--n-repeats", "2", "--n-samples", "4", "--n-random", "2", "--n-steps", "3"]  # fmt: skip
    code, stdout, err = run(capsys, *argv)
    assert code == EXIT_OK, err
    result = mudata.read_h5mu(out)
    assert result.obsm["X_new_samples"].shape == (result.n_obs, 4, 6)
    test = set(result.uns["X_new"]["split"]["test"])
    assert test == set(model.split_["test"])  # the saved model's split decides who is scored
    assert set(result.obs_names[result.obs["cfmd_prioritize_score"].notna()]) == test
