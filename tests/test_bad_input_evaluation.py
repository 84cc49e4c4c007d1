"""Bad input to ``cfmd.tl.evaluate``: a clear error naming the field, and the caller's MuData left unchanged."""

import numpy as np
import pytest
from _helpers import assert_mudata_unchanged, snapshot, tiny_imputed_cohort

import cfmd
from cfmd import InvalidInputError

pytestmark = pytest.mark.slow  # the cohort's tiny CFMD is trained once per session (about 10 s)


@pytest.fixture
def cohort():
    mdata, _ = tiny_imputed_cohort()
    return mdata


def _refused(mdata, match: str, **kwargs) -> None:
    before = snapshot(mdata)
    with pytest.raises(InvalidInputError, match=match):
        cfmd.tl.evaluate(mdata, **{"n_boot": 10, **kwargs})
    assert_mudata_unchanged(before, mdata)


def test_observed_latent_of_fill_missing(cohort):
    _refused(cohort, r"mdata\.obsm\['X_cfmd'\] holds the observed latent.*test patients.*fill='all'")


def test_truth_key_as_prediction(cohort):
    _refused(cohort, r"`predicted_keys` names the truth key 'X_structured'", predicted_keys="X_structured")


def test_copy_of_the_truth(cohort):
    cohort.obsm["X_copy"] = np.asarray(cohort.obsm["X_structured"]).copy()
    _refused(
        cohort,
        r"mdata\.obsm\['X_copy'\] equals the observed latent mdata\.obsm\['X_structured'\]",
        predicted_keys="X_copy",
    )


def test_train_subset_without_in_sample(cohort):
    _refused(cohort, r"`subset='train'`.*in_sample=True", predicted_keys="X_cfmd_all", subset="train")


def test_validation_subset_without_in_sample(cohort):
    _refused(cohort, r"`subset='validation'`.*in_sample=True", predicted_keys="X_cfmd_all", subset="validation")


def test_mistyped_split_key(cohort):
    _refused(cohort, r"`split_key` 'split'.*available columns", predicted_keys="X_cfmd_all", split_key="split")


def test_patient_in_the_models_training_split(cohort):
    trained = cohort.uns["X_cfmd_all"]["split"]["train"][0]
    split = cohort.obs["cfmd_split"].copy()
    split[trained] = "test"
    cohort.obs["cfmd_split"] = split
    _refused(
        cohort, rf"mdata\.uns\['X_cfmd_all'\]\['split'\].*'{trained}'.*in_sample=True", predicted_keys="X_cfmd_all"
    )


def test_patient_in_the_models_validation_split(cohort):
    validated = cohort.uns["X_cfmd_all"]["split"]["validation"][0]
    split = cohort.obs["cfmd_split"].copy()
    split[validated] = "test"
    cohort.obs["cfmd_split"] = split
    _refused(cohort, rf"train / validation split.*'{validated}'", predicted_keys="X_cfmd_all", survival=False)


@pytest.mark.parametrize("ci", [1.5, 0, 1, -0.2, "95%", True])
def test_ci_outside_0_1(cohort, ci):
    _refused(cohort, r"`ci` must be a confidence level strictly between 0 and 1", predicted_keys="X_cfmd_all", ci=ci)


@pytest.mark.parametrize("n_boot", [0, -5, 2.5])
def test_n_boot_below_1(cohort, n_boot):
    _refused(cohort, r"`n_boot` must be an integer >= 1", predicted_keys="X_cfmd_all", n_boot=n_boot)


def test_unknown_subset(cohort):
    _refused(cohort, r"`subset` must be one of", predicted_keys="X_cfmd_all", subset="holdout")


def test_in_sample_not_a_bool(cohort):
    _refused(cohort, r"`in_sample` must be True or False", predicted_keys="X_cfmd_all", in_sample="yes")


def test_reference_not_a_method(cohort):
    _refused(cohort, r"`reference` 'cfmd' is not one of the methods", predicted_keys="X_cfmd_all", reference="cfmd")


def test_empty_predicted_keys(cohort):
    _refused(cohort, r"`predicted_keys` must name at least one", predicted_keys=[])


def test_failure_after_an_earlier_result_keeps_it(cohort):
    cfmd.tl.evaluate(cohort, predicted_keys="X_cfmd_all", n_boot=10, survival=False)
    _refused(cohort, r"`ci` must be", predicted_keys="X_cfmd_all", ci=1.5)
    assert "cfmd_evaluation" in cohort.uns


def test_benchmark_checks_bootstrap_settings_before_training(cohort):
    before = snapshot(cohort)
    with pytest.raises(InvalidInputError, match="`ci` must be a confidence level"):
        cfmd.tl.benchmark(cohort, methods=["zero_mask"], ci=1.5)
    with pytest.raises(InvalidInputError, match="`n_boot` must be an integer >= 1"):
        cfmd.tl.benchmark(cohort, methods=["zero_mask"], n_boot=0)
    assert_mudata_unchanged(before, cohort)
