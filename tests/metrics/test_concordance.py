"""Harrell's C (against scikit-survival), the frozen survival head, C-index intervals and paired comparisons."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sksurv.metrics import concordance_index_censored

from cfmd import InvalidInputError
from cfmd.metrics import (
    SurvivalHead,
    c_index_with_ci,
    compare_c_index,
    concordance_index,
    make_strata,
    paired_c_index,
    stratified_bootstrap_indices,
)
from cfmd.metrics._concordance import _concordance_counts


# ---------------------------------------------------------------------------------------------------- C-index
def test_c_index_hand_computed_with_censoring():
    # comparable pairs (earlier time is an event): patient 0 with 1..4, patient 2 with 3, 4, patient 3 with 4 -> 7
    # concordant: 0 (risk 5) beats 4, 4, 1, 2; 2 (risk 4) beats 1, 2; 3 (risk 1) loses to 4 (risk 2) -> 6 / 7
    time, event = [1.0, 2.0, 3.0, 4.0, 5.0], [1, 0, 1, 1, 0]
    assert concordance_index(time, event, [5.0, 4.0, 4.0, 1.0, 2.0]) == pytest.approx(6 / 7)
    # tie in risk between 3 and 4 counts 0.5 -> 6.5 / 7
    assert concordance_index(time, event, [5.0, 4.0, 4.0, 1.0, 1.0]) == pytest.approx(6.5 / 7)


def test_c_index_hand_computed_with_tied_times():
    # t = (1, 2, 2, 2, 3), events (1, 1, 1, 0, 0). Comparable: 0 with 1..4 (4 pairs); the events at t=2 (1 and 2)
    # each with the patient censored at t=2 (3) and the later one (4): 2 + 2. Two events at the same time are not
    # comparable. Total 8. Concordant: 0 (risk 3): 4; 1 (risk 2): tie with 3 (0.5) + beats 4 (1); 2 (risk 1):
    # loses to 3 (0) + beats 4 (1). C = 6.5 / 8.
    time, event, risk = [1.0, 2.0, 2.0, 2.0, 3.0], [1, 1, 1, 0, 0], [3.0, 2.0, 1.0, 2.0, 0.0]
    assert concordance_index(time, event, risk) == pytest.approx(6.5 / 8)
    ref = concordance_index_censored(np.array(event, bool), np.array(time), np.array(risk))
    assert concordance_index(time, event, risk) == ref[0]
    assert ref[1:] == (6, 1, 1, 2)  # concordant, discordant, tied risk, tied time (scikit-survival's own counts)
    counts = _concordance_counts(np.array(time), np.array(event, bool), np.array(risk), 1e-8)
    assert counts == {"concordant": 6, "discordant": 1, "tied_risk": 1, "comparable": 8, "tied_time": 2}


def test_c_index_equals_scikit_survival_with_ties_and_censoring():
    rng = np.random.default_rng(0)
    checked = 0
    for trial in range(300):
        n = int(rng.integers(2, 40))
        time = rng.integers(0, 6, n).astype(float)  # many tied times
        event = rng.random(n) < rng.uniform(0.1, 0.9)
        event[rng.integers(n)] = True
        risk = rng.integers(0, 4, n).astype(float)  # many tied risks
        if trial % 2:
            risk += rng.uniform(-1e-9, 1e-9, n)  # ties within scikit-survival's tolerance
        counts = _concordance_counts(time, event, risk, 1e-8)
        if counts["comparable"] == 0:  # C undefined (scikit-survival raises or returns NaN; we raise)
            with pytest.raises(InvalidInputError, match="No comparable pair"):
                concordance_index(time, event, risk)
            continue
        ref = concordance_index_censored(event, time, risk)
        assert concordance_index(time, event.astype(int), risk) == ref[0]
        assert (counts["concordant"], counts["discordant"], counts["tied_risk"], counts["tied_time"]) == ref[1:]
        checked += 1
    assert checked > 250


def test_c_index_equals_scikit_survival_on_a_large_cohort():
    rng = np.random.default_rng(1)
    n = 5000
    time = np.round(rng.exponential(size=n), 2)  # rounded: ties in time
    event = rng.random(n) < 0.35
    risk = np.round(rng.normal(size=n) - time, 1)  # rounded: ties in risk
    assert concordance_index(time, event, risk) == pytest.approx(
        concordance_index_censored(event, time, risk)[0], abs=1e-12
    )


def test_c_index_basic_properties():
    rng = np.random.default_rng(2)
    time, event, risk = rng.exponential(size=200), rng.random(200) < 0.5, rng.normal(size=200)
    c = concordance_index(time, event, risk)
    assert concordance_index(time, event, -risk) == pytest.approx(1 - c)  # no tied risks
    assert concordance_index(time, event, -time) == 1.0
    assert concordance_index(time, event, np.zeros(200)) == 0.5


@pytest.mark.parametrize(
    ("time", "event", "risk", "match"),
    [
        ([1.0, 2.0, 3.0], [0, 0, 0], [1.0, 2.0, 3.0], "no events among its 3 patients"),
        ([1.0, 2.0, 3.0], [1, 0], [1.0, 2.0, 3.0], "one entry per patient; got 3 and 2"),
        ([1.0, 2.0, 3.0], [1, 0, 1], [1.0, 2.0], "`risk` has 2 entries"),
        ([1.0, np.nan, 3.0], [1, 0, 1], [1.0, 2.0, 3.0], "`time` must be a finite"),
        ([1.0, -2.0, 3.0], [1, 0, 1], [1.0, 2.0, 3.0], "non-negative"),
        ([1.0, 2.0, 3.0], [1, 2, 1], [1.0, 2.0, 3.0], "`event` must be 0/1"),
        ([1.0, 2.0, 3.0], [1, 0, 1], [1.0, np.nan, 3.0], "finite"),
        ([1.0, 2.0, 3.0], [0, 0, 1], [1.0, 2.0, 3.0], "No comparable pair"),
    ],
)
def test_c_index_bad_input(time, event, risk, match):
    with pytest.raises(InvalidInputError, match=match):
        concordance_index(time, event, risk)


# ---------------------------------------------------------------------------------------------------- bootstrap
def _cohort(seed: int, n: int = 120):
    rng = np.random.default_rng(seed)
    cancer = rng.choice(["BRCA", "LUAD", "KIRC"], n)
    risk = rng.normal(size=n)
    time = rng.exponential(np.exp(-risk))
    censor = rng.exponential(2.0, n)
    return np.minimum(time, censor), time <= censor, risk, cancer


def test_c_index_with_ci_stratifies_by_cancer_type_and_event():
    time, event, risk, cancer = _cohort(0)
    res = c_index_with_ci(time, event, risk, strata=cancer, n_boot=200, seed=4)
    assert res.estimate == concordance_index(time, event, risk)
    idx = stratified_bootstrap_indices(make_strata(cancer, event), 200, seed=4)
    np.testing.assert_array_equal(res.distribution, [concordance_index(time[i], event[i], risk[i]) for i in idx])
    assert res.ci_low < res.estimate < res.ci_high
    assert res.n_invalid == 0
    # every resample keeps the number of events of each cancer type
    for i in idx[:10]:
        for c in ("BRCA", "LUAD", "KIRC"):
            assert event[i][cancer == c].sum() == event[cancer == c].sum()
    again = c_index_with_ci(time, event, risk, strata=cancer, n_boot=200, seed=4)
    np.testing.assert_array_equal(again.distribution, res.distribution)
    # the same resamples passed explicitly
    explicit = c_index_with_ci(time, event, risk, indices=idx)
    np.testing.assert_array_equal(explicit.distribution, res.distribution)


def test_paired_c_index():
    time, event, risk, cancer = _cohort(1, n=200)
    noise = np.random.default_rng(9).normal(size=200)
    res = paired_c_index(time, event, risk, noise, strata=cancer, n_boot=300, seed=0)
    assert res.delta == pytest.approx(concordance_index(time, event, risk) - concordance_index(time, event, noise))
    assert res.ci_low > 0 and res.p_value < 0.01  # the true risk beats noise
    same = paired_c_index(time, event, risk, risk.copy(), strata=cancer, n_boot=50, seed=0)
    assert same.delta == 0.0 and same.p_value == 1.0


def test_compare_c_index_table():
    time, event, risk, cancer = _cohort(2, n=150)
    rng = np.random.default_rng(3)
    risks = {"cfmd": risk, "noisy": risk + rng.normal(size=150), "zero_mask": rng.normal(size=150)}
    table = compare_c_index(time, event, risks, reference="cfmd", strata=cancer, n_boot=200, seed=1)
    assert list(table.index) == ["cfmd", "noisy", "zero_mask"]
    assert table.loc["cfmd", ["delta", "p_value", "p_adjusted"]].isna().all()
    for name in ("noisy", "zero_mask"):
        paired = paired_c_index(time, event, risks[name], risk, strata=cancer, n_boot=200, seed=1)
        assert table.loc[name, "delta"] == pytest.approx(paired.delta)
        assert table.loc[name, "delta_ci_low"] == pytest.approx(paired.ci_low)
        assert table.loc[name, "p_value"] == pytest.approx(paired.p_value)
        assert table.loc[name, "p_adjusted"] == pytest.approx(min(1.0, 2 * paired.p_value))
        assert table.loc[name, "c_index"] == pytest.approx(concordance_index(time, event, risks[name]))
    assert table.loc["zero_mask", "delta_ci_high"] < 0
    assert table.attrs["reference"] == "cfmd"
    with pytest.raises(InvalidInputError, match="not a key of `risks`"):
        compare_c_index(time, event, risks, reference="pesd", strata=cancer, n_boot=10, seed=1)


def test_c_index_bootstrap_bad_input():
    time, event, risk, cancer = _cohort(3, n=40)
    with pytest.raises(InvalidInputError, match="no events"):
        c_index_with_ci(time, np.zeros(40, bool), risk, strata=cancer, n_boot=10, seed=0)
    with pytest.raises(InvalidInputError, match="`strata` has 39 labels"):
        c_index_with_ci(time, event, risk, strata=cancer[:-1], n_boot=10, seed=0)
    with pytest.raises(InvalidInputError, match="`reference_risk` has 39 entries"):
        paired_c_index(time, event, risk, risk[:-1], strata=cancer, n_boot=10, seed=0)
    with pytest.raises(InvalidInputError, match="`seed` is required"):
        c_index_with_ci(time, event, risk, strata=cancer)


# ---------------------------------------------------------------------------------------------------- survival head
TYPES = ("BRCA", "LUAD", "KIRC")
BETA = np.array([0.9, -0.7, 0.6, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0])
TYPE_EFFECT = {"BRCA": -0.5, "LUAD": 0.5, "KIRC": 0.0, "LGG": 0.0}


def _planted(seed: int, n: int, types=TYPES):
    """A planted Cox model: hazard exp(latent @ BETA + cancer-type effect); about 30% censored."""
    rng = np.random.default_rng(seed)
    latent = rng.normal(size=(n, len(BETA))) * 2.0 + 1.0  # not standardised: the head must standardise
    cancer = rng.choice(types, n)
    eta = (latent - 1.0) / 2.0 @ BETA + np.array([TYPE_EFFECT[c] for c in cancer])
    event_time = rng.exponential(np.exp(-eta))
    censor = rng.exponential(2.5, n)
    return latent, np.minimum(event_time, censor), event_time <= censor, cancer, eta


@pytest.fixture(scope="module")
def splits():
    return _planted(0, 500), _planted(1, 120), _planted(2, 300)


@pytest.fixture(scope="module")
def head(splits):
    train, val, _ = splits
    return SurvivalHead().fit(*train[:4], validation=val[:4])


def test_head_recovers_the_planted_ranking(head, splits):
    _, _, test = splits
    latent, time, event, cancer, eta = test
    c_head = concordance_index(time, event, head.predict_risk(latent, cancer))
    c_oracle = concordance_index(time, event, eta)
    assert c_head > 0.7  # clearly better than chance (0.5) ...
    assert c_head > c_oracle - 0.03  # ... and close to the true linear predictor
    # the planted coefficients come back with the right signs, the largest on the planted dimensions
    coef = head.coef[: len(BETA)]
    assert np.sign(coef[:3]).tolist() == [1.0, -1.0, 1.0]
    assert np.abs(coef[:3]).min() > np.abs(coef[3:]).max()
    assert head.cancer_types == sorted(TYPES)
    assert head.alpha_ in head.to_dict()["alphas"]


def test_head_standardises_with_training_statistics_only(head, splits):
    train, _, _ = splits
    state = head.to_dict()
    np.testing.assert_allclose(state["feature_mean"][: len(BETA)], train[0].mean(axis=0))
    np.testing.assert_allclose(state["feature_scale"][: len(BETA)], train[0].std(axis=0))
    onehot_mean = [np.mean(train[3] == c) for c in sorted(TYPES)]
    np.testing.assert_allclose(state["feature_mean"][len(BETA) :], onehot_mean)


def test_head_is_frozen(head, splits):
    _, val, test = splits
    before = head.predict_risk(test[0], test[3])
    state = head.to_dict()
    head.predict_risk(val[0], val[3])  # asked to predict other data ...
    head.predict_risk(np.zeros((5, len(BETA))), ["KIRC"] * 5)
    np.testing.assert_array_equal(head.predict_risk(test[0], test[3]), before)  # ... nothing changed
    np.testing.assert_array_equal(head.to_dict()["coef"], state["coef"])
    with pytest.raises(InvalidInputError, match="already fitted and frozen"):
        head.fit(*val[:4], validation=val[:4])
    # prediction is row-wise: a subset of patients gets the same scores
    np.testing.assert_allclose(head.predict_risk(test[0][:7], test[3][:7]), before[:7])


def test_head_is_reproducible_and_round_trips(head, splits, tmp_path):
    import anndata as ad

    train, val, test = splits
    twin = SurvivalHead().fit(*train[:4], validation=val[:4])
    np.testing.assert_array_equal(twin.coef, head.coef)
    restored = SurvivalHead.from_dict(head.to_dict())
    np.testing.assert_array_equal(restored.predict_risk(test[0], test[3]), head.predict_risk(test[0], test[3]))
    assert restored.get_params() == head.get_params()
    # the state is plain arrays: it survives an .h5ad round trip in .uns
    adata = ad.AnnData(np.zeros((2, 1)))
    adata.uns["survival_head"] = head.to_dict()
    adata.write_h5ad(tmp_path / "head.h5ad")
    loaded = SurvivalHead.from_dict(ad.read_h5ad(tmp_path / "head.h5ad").uns["survival_head"])
    np.testing.assert_allclose(loaded.predict_risk(test[0], test[3]), head.predict_risk(test[0], test[3]))
    assert loaded.cancer_types == head.cancer_types


def test_head_with_fixed_alpha_needs_no_validation(splits):
    train, _, test = splits
    fixed = SurvivalHead(alpha=0.05).fit(*train[:4])
    assert fixed.alpha_ == 0.05 and fixed.to_dict()["alphas"].size == 0
    assert concordance_index(test[1], test[2], fixed.predict_risk(test[0], test[3])) > 0.7
    restored = SurvivalHead.from_dict(fixed.to_dict())
    assert restored.get_params()["alpha"] == 0.05


def test_head_bad_input(head, splits):
    train, val, test = splits
    latent, time, event, cancer, _ = train
    unfitted = SurvivalHead(alpha=0.1)
    with pytest.raises(InvalidInputError, match="no events.*a Cox model cannot be fitted"):
        unfitted.fit(latent, time, np.zeros_like(event), cancer)
    assert not unfitted.is_fitted  # a failed fit leaves the head untouched
    with pytest.raises(InvalidInputError, match="no comparable pair"):
        # the only validation event is at the last follow-up time
        SurvivalHead().fit(latent, time, event, cancer, validation=(val[0][:3], [1.0, 2.0, 3.0], [0, 0, 1], val[3][:3]))
    with pytest.raises(InvalidInputError, match="no events.*validation C-index"):
        SurvivalHead().fit(latent, time, event, cancer, validation=(val[0], val[1], np.zeros_like(val[2]), val[3]))
    with pytest.raises(InvalidInputError, match="pass `validation="):
        SurvivalHead().fit(latent, time, event, cancer)
    with pytest.raises(InvalidInputError, match="one entry per patient; got 500, 499 and 500"):
        SurvivalHead(alpha=0.1).fit(latent, time[:-1], event, cancer)
    with pytest.raises(InvalidInputError, match="`training cancer_type` has 499 entries"):
        SurvivalHead(alpha=0.1).fit(latent, time, event, cancer[:-1])
    bad = latent.copy()
    bad[[3, 8]] = np.nan
    with pytest.raises(InvalidInputError, match=r"training latent has 2 of 500 row\(s\) with NaN.*rows 3, 8"):
        SurvivalHead(alpha=0.1).fit(bad, time, event, cancer)
    with pytest.raises(InvalidInputError, match=r"`alpha` must be a positive number"):
        SurvivalHead(alpha=-1.0)
    with pytest.raises(InvalidInputError, match="`l1_ratio` must be in"):
        SurvivalHead(l1_ratio=0.0)
    with pytest.raises(InvalidInputError, match="not fitted"):
        SurvivalHead().predict_risk(latent, cancer)
    # a validation split with a cancer type the training split lacks
    val_cancer = val[3].copy()
    val_cancer[0] = "LGG"
    with pytest.raises(InvalidInputError, match="'LGG'"):
        SurvivalHead().fit(latent, time, event, cancer, validation=(val[0], val[1], val[2], val_cancer))


def test_head_rejects_cancer_types_only_present_in_test(head, splits):
    _, _, test = splits
    latent, cancer = test[0][:6], test[3][:6].copy()
    cancer[[1, 4]] = ["LGG", "GBM"]
    with pytest.raises(InvalidInputError, match=r"cancer type\(s\) 'GBM', 'LGG' that the survival head never saw"):
        head.predict_risk(latent, cancer)
    with pytest.raises(InvalidInputError, match="trained on 12-d latents"):
        head.predict_risk(latent[:, :5], test[3][:6])
    with pytest.raises(InvalidInputError, match="`cancer_type` has 5 entries"):
        head.predict_risk(latent, test[3][:5])
    with pytest.raises(InvalidInputError, match="missing label"):
        head.predict_risk(latent, np.array(["BRCA", None, "KIRC", "KIRC", "LUAD", "BRCA"], dtype=object))


def test_compare_c_index_bounds_use_the_one_low_high_naming_and_keep_the_deprecated_copies():
    time, event, risk, cancer = _cohort(2, n=120)
    risks = {"cfmd": risk, "noise": np.random.default_rng(4).normal(size=120)}
    table = compare_c_index(time, event, risks, reference="cfmd", strata=cancer, n_boot=50, seed=1)
    single = c_index_with_ci(time, event, risk, strata=cancer, n_boot=50, seed=1)
    assert table.loc["cfmd", "c_index_low"] == pytest.approx(single.ci_low)
    assert table.loc["cfmd", "c_index_high"] == pytest.approx(single.ci_high)
    pairs = {
        "ci_low": "c_index_low",
        "ci_high": "c_index_high",
        "delta_ci_low": "delta_low",
        "delta_ci_high": "delta_high",
    }
    for old, new in pairs.items():  # deprecated copies, removed in the next minor release
        pd.testing.assert_series_equal(table[old], table[new], check_names=False)
