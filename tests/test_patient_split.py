"""cfmd._patient_split: one stratified splitter behind tl.split_patients and the models' drawn splits."""

import numpy as np

import cfmd
from cfmd._patient_split import stratified_split_labels
from cfmd.models._latent_imputer import make_split


def test_stratified_split_labels_follow_fractions_within_each_stratum_and_the_seed():
    strata = np.array(["a"] * 50 + ["b"] * 30, dtype=object)
    labels = stratified_split_labels(strata, (0.6, 0.2, 0.2), seed=3)
    for stratum, n in (("a", 50), ("b", 30)):
        members = labels[strata == stratum]
        assert (members == "test").sum() == round(0.2 * n) and (members == "validation").sum() == round(0.2 * n)
        assert (members == "train").sum() == n - 2 * round(0.2 * n)
    np.testing.assert_array_equal(labels, stratified_split_labels(strata, (0.6, 0.2, 0.2), seed=3))
    assert not np.array_equal(labels, stratified_split_labels(strata, (0.6, 0.2, 0.2), seed=4))


def test_a_models_drawn_split_is_the_split_patients_split_with_the_same_seed():
    mdata = cfmd.datasets.synthetic_cohort(n_patients=60, n_genes=220, seed=0)
    mdata.obsm["latent"] = np.random.default_rng(0).normal(size=(mdata.n_obs, 4))
    drawn = make_split(mdata, "latent", None, (0.8, 0.1, 0.1), 7, log=False)
    cfmd.tl.split_patients(mdata, require_modalities=[], seed=7, key_added="split")
    for part, names in drawn.items():
        assert sorted(names) == sorted(mdata.obs_names[mdata.obs["split"] == part])
