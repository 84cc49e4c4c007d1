"""CoherentDenoising (seed 004): batched consensus, coherence rejection, weights, tl.generate record."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
from test_latent_diffusion import TINY, truth_cohort

import cfmd
from cfmd import InvalidInputError
from cfmd.models import CoherentDenoising
from cfmd.models._coherent_denoising import pairwise_cosine_distance


@pytest.fixture(scope="module")
def ensemble():
    mdata = truth_cohort(160, seed=0)
    CoherentDenoising.setup_mudata(mdata)
    model = CoherentDenoising(mdata, target="meth", conditions=["rna", "cancer_type", "pathway"], seed=0, **TINY)
    model.train(max_epochs=30, validate_every=10)
    return mdata, model


def test_pairwise_cosine_distance_weighted_mean():
    a = torch.tensor([[[1.0, 0.0]]])
    eps = torch.cat([a, a, -a])  # members 0 and 1 agree, member 2 is flipped
    w = torch.tensor([0.5, 0.25, 0.25]).reshape(3, 1)
    pair = 0.5 * (w[:, None] + w[None])  # (3, 3, 1)
    # pairs: (0,1) d=0 w=.375; (0,2) d=2 w=.375; (1,2) d=2 w=.25 -> 2 * .625 / 1.0
    torch.testing.assert_close(pairwise_cosine_distance(eps, pair), torch.tensor([1.25]))


def test_members_weights_from_validation(ensemble):
    _, model = ensemble
    mse = model.module.member_validation_mse
    weights = model.module.member_weights
    torch.testing.assert_close(weights.sum(), torch.tensor(1.0))
    torch.testing.assert_close(weights, (1 / mse) / (1 / mse).sum())


def test_rejection_consistent_members_vs_a_sign_flipped_one(ensemble):
    # measured (seeds 0, 1, 2; 160 patients, T = 20, 30 epochs): consistent 0.07 / 0.10 / 0.06, flipped 1.00 each
    # (0.11 / 0.16 / 0.22 and 1.00 before clip_denoised)
    mdata, model = ensemble
    _, consistent = model.generate_with_stats(n_samples=2, seed=0)
    assert consistent["rejection_rate"] < 0.5
    flipped = CoherentDenoising.__new__(CoherentDenoising)
    flipped.__dict__.update(model.__dict__)
    flipped.module = copy.deepcopy(model.module)
    with torch.no_grad():
        flipped.module.networks[1].output.weight.neg_()
        flipped.module.networks[1].output.bias.neg_()
    _, stats = flipped.generate_with_stats(n_samples=2, seed=0)
    assert stats["rejection_rate"] > 0.9 and stats["n_unresolved"] > 0
    assert stats["n_trajectories"] > 2 * mdata.n_obs  # rejected trajectories were redrawn
    assert stats["rejection_rate"] > 3 * consistent["rejection_rate"]


def test_consensus_equals_the_per_member_loop(ensemble):
    mdata, model = ensemble
    module = model.module
    data = model._inputs_for(None, np.arange(12), None)
    model.coherence_["coherence_threshold"] = 2.0  # accept everything: one pass, comparable noise draws
    module.clip_denoised = False  # the loop below is the scheduler's unclipped step (clipping: test_latent_diffusion)
    try:
        batched, _ = model._sample(data, 12, 1, torch.Generator().manual_seed(3), 20)
    finally:
        model.coherence_["coherence_threshold"] = 0.5
        module.clip_denoised = True
    generator = torch.Generator().manual_seed(3)
    x = torch.randn((12, 6), generator=generator)
    scheduler = module.make_scheduler()
    scheduler.set_timesteps(20)
    names = [c["name"] for c in module.conditions]
    for t in scheduler.timesteps:
        eps = torch.stack(
            [
                net(x, t.repeat(12), {n: data["conditions"][n]}, {n: data["masks"][n]})
                for net, n in zip(module.networks, names)
            ]
        )
        available = torch.stack([data["masks"][n] for n in names]) > 0
        w = module.member_weights[:, None] * available
        x = scheduler.step((w / w.sum(0)).unsqueeze(-1).mul(eps).sum(0), t, x, generator=generator).prev_sample
    torch.testing.assert_close(batched[0], x, rtol=1e-4, atol=1e-4)


def test_bad_settings_and_tl_record(ensemble):
    mdata, model = ensemble
    with pytest.raises(InvalidInputError, match="`weights`"):
        CoherentDenoising(mdata, target="meth", conditions=["rna"], weights=[1.0, 2.0], **TINY)
    with pytest.raises(InvalidInputError, match="coherence_threshold"):
        CoherentDenoising(mdata, target="meth", conditions=["rna"], coherence_threshold=3.0, **TINY)
    out = mdata.copy()
    cfmd.tl.generate(out, model=model, key_added="X_cd", n_samples=2)
    record = out.uns["X_cd"]
    assert record["model"] == "CoherentDenoising" and len(record["member_weights"]) == 3
    assert 0 <= record["rejection"]["rejection_rate"] <= 1 and record["rejection"]["n_trajectories"] >= 2 * out.n_obs


def test_save_load_round_trip_and_impute_from_folder(ensemble, tmp_path):
    mdata, model = ensemble
    model.save(tmp_path / "cd")
    fresh = truth_cohort(50)  # same genes, other patients, RNA only
    del fresh.obsm["X_structured"]
    loaded = CoherentDenoising.load(tmp_path / "cd", adata=fresh)
    torch.testing.assert_close(loaded.module.member_weights, model.module.member_weights, rtol=0, atol=0)
    assert loaded.coherence_ == model.coherence_
    np.testing.assert_array_equal(loaded.generate(n_samples=2, seed=1), model.generate(fresh, n_samples=2, seed=1))
    cfmd.tl.impute(fresh, model=str(tmp_path / "cd"), key_added="X_cd", n_samples=2)
    assert fresh.uns["X_cd"]["model"] == "CoherentDenoising" and fresh.obsm["X_cd"].shape == (50, 14)
