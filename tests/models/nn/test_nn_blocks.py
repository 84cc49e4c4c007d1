"""Plain-torch building blocks of the CFMD imputer (cfmd.models.nn)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch.nn import functional as F

from cfmd import InvalidInputError, LatentLayout
from cfmd.models.nn import (
    LearnedTemperatureFingerprint,
    PointwiseMethylationMLP,
    Projector,
    RegionalMethylationDecoder,
    ScatterAssignment,
    SharedTrunkImputer,
    chromosome_indices,
    orthogonality_loss,
    slice_reconstruction_losses,
)

# 12 genes on chromosomes 0, 1, 2, 4 of 6 (3 and 5 are empty), two ignored genes (-1).
GENE_CHROMOSOMES = [0, 0, 1, 1, 1, 2, -1, 4, 4, 0, 2, -1]
CHROMS = ("1", "2", "3", "4", "5", "X")


def small_decoder(**kwargs) -> RegionalMethylationDecoder:
    options = {"chromosomes": CHROMS, "d_out": 5, "d_gene": 4, "d_model": 16, "d_gene_hidden": 8}
    options |= {"n_heads": 2, "d_feedforward": 32, "dropout": 0.0}
    return RegionalMethylationDecoder(GENE_CHROMOSOMES, **(options | kwargs))


def gradients(output: torch.Tensor, tensors) -> list[torch.Tensor]:
    """Gradients of ``output`` w.r.t. ``tensors``; unconnected tensors get exact zeros."""
    return list(
        torch.autograd.grad(output, list(tensors), allow_unused=True, materialize_grads=True, retain_graph=True)
    )


# --------------------------------------------------------------------------- Projector
def test_projector_shapes_and_hidden_is_post_gelu_pre_dropout():
    torch.manual_seed(0)
    projector = Projector(12, 7, d_hidden=20, dropout=0.5).train()
    x = torch.randn(9, 12)
    output, hidden = projector(x)
    assert output.shape == (9, 7) and hidden.shape == (9, 20)
    # Hidden is GELU(W1 x + b1) exactly, untouched by dropout even in training mode.
    assert torch.equal(hidden, F.gelu(projector.hidden_layer(x)))
    projector.eval()
    assert torch.equal(projector(x)[0], projector.output_layer(hidden))


def test_projector_defaults_match_paper_and_reject_bad_input():
    projector = Projector(1280, 16)
    assert projector.d_hidden == 512 and projector.dropout.p == 0.1
    assert sum(p.numel() for p in projector.parameters()) == 1280 * 512 + 512 + 512 * 16 + 16
    with pytest.raises(InvalidInputError, match=r"\(batch, 1280\)"):
        projector(torch.randn(3, 1279))
    with pytest.raises(InvalidInputError, match="floating-point"):
        projector(torch.ones(3, 1280, dtype=torch.long))
    with pytest.raises(InvalidInputError, match="d_in"):
        Projector(0, 3)
    with pytest.raises(InvalidInputError, match="dropout"):
        Projector(3, 3, dropout=1.0)


# --------------------------------------------------------------------------- fingerprint
def test_fingerprint_temperature_init_buffer_and_shapes():
    embeddings = torch.randn(30, 6)
    fingerprint = LearnedTemperatureFingerprint(embeddings)
    assert math.isclose(fingerprint.tau.item(), 1.0, rel_tol=1e-6)
    assert [name for name, _ in fingerprint.named_parameters()] == ["raw_temperature"]
    assert "gene_embeddings" in fingerprint.state_dict() and not fingerprint.gene_embeddings.requires_grad
    s, h = fingerprint(torch.rand(4, 30) * 10)
    assert s.shape == (4, 6) and h.shape == (4,)
    assert bool(((h >= 1 - 1e-4) & (h <= 30 + 1e-3)).all())
    # Uniform expression: every gene counts (H = n_genes) and s is the mean embedding.
    s, h = fingerprint(torch.full((2, 30), 3.0))
    torch.testing.assert_close(h, torch.full((2,), 30.0))
    torch.testing.assert_close(s, embeddings.mean(0).expand(2, -1))
    assert math.isclose(LearnedTemperatureFingerprint(embeddings, initial_tau=0.3).tau.item(), 0.3, rel_tol=1e-6)
    with pytest.raises(InvalidInputError, match="NaN"):
        LearnedTemperatureFingerprint(torch.tensor([[1.0, float("nan")]]))
    with pytest.raises(InvalidInputError, match="initial_tau"):
        LearnedTemperatureFingerprint(embeddings, initial_tau=1e-5)
    with pytest.raises(InvalidInputError, match=r"\(batch, 30\)"):
        fingerprint(torch.rand(4, 29))


def test_fingerprint_stable_at_huge_counts_and_collapses_to_one_gene_as_tau_goes_to_zero():
    torch.manual_seed(1)
    embeddings = torch.randn(50, 8, dtype=torch.float64)
    counts = torch.randint(0, 1000, (3, 50)).double()
    counts[:, 7] = 1e7  # one gene dominates
    counts[1, 8] = 9e6
    fingerprint = LearnedTemperatureFingerprint(embeddings).double()
    with torch.no_grad():
        fingerprint.raw_temperature.fill_(-60.0)  # tau = softplus(-60) + 1e-4 -> 1e-4
    assert math.isclose(fingerprint.tau.item(), 1e-4, rel_tol=1e-9)
    for values in (torch.log2(counts + 1), counts):  # log counts, and raw counts of 1e7 fed directly
        s, h = fingerprint(values)
        assert torch.isfinite(s).all() and torch.isfinite(h).all()
        torch.testing.assert_close(h, torch.ones(3, dtype=torch.float64))
        torch.testing.assert_close(s, embeddings[7].expand(3, -1))
    # Differentiable w.r.t. the temperature even at tiny tau, and in float32.
    s, h = fingerprint.float()(torch.log2(counts.float() + 1))
    (grad,) = torch.autograd.grad(s.sum() + h.sum(), fingerprint.raw_temperature)
    assert torch.isfinite(grad)
    # H decreases monotonically towards 1 as tau -> 0.
    x = torch.log2(torch.randint(1, 10_000, (1, 50)).double() + 1)
    hs = []
    for tau in (10.0, 1.0, 0.1, 0.01, 1e-3):
        fp = LearnedTemperatureFingerprint(embeddings, initial_tau=tau).double()
        hs.append(fp(x)[1].item())
    assert all(a > b for a, b in zip(hs, hs[1:])) and hs[-1] < 1.01


# --------------------------------------------------------------------------- scatter assignment
def test_scatter_assignment_places_slices_and_validates():
    layout = LatentLayout.from_sizes({"a": (2, "geneformer"), "z": (3, "zero"), "b": (4, "esm"), "c": (1, "rna")})
    scatter = ScatterAssignment(layout)
    assert scatter.assigned_slices == ("a", "b", "c") and scatter.zero_slices == ("z",)
    outputs = {"a": torch.randn(5, 2), "b": torch.randn(5, 4), "c": torch.randn(5, 1)}
    z = scatter(outputs)
    assert z.shape == (5, 10)
    for name, value in outputs.items():
        assert torch.equal(layout.take(z, name), value)
    assert bool((layout.take(z, "z") == 0).all())
    with pytest.raises(InvalidInputError, match="lacks predictions for slices 'b'"):
        scatter({"a": outputs["a"], "c": outputs["c"]})
    with pytest.raises(InvalidInputError, match="zero-masked slices 'z'"):
        scatter(outputs | {"z": torch.randn(5, 3)})
    with pytest.raises(InvalidInputError, match="not in the layout"):
        scatter(outputs | {"nope": torch.randn(5, 3)})
    with pytest.raises(InvalidInputError, match=r"outputs\['b'\] must have shape \(batch, 4\)"):
        scatter(outputs | {"b": torch.randn(5, 5)})
    with pytest.raises(InvalidInputError, match="same batch"):
        scatter(outputs | {"b": torch.randn(4, 4)})
    with pytest.raises(InvalidInputError, match="dtype"):
        scatter(outputs | {"b": torch.randn(5, 4, dtype=torch.float64)})
    with pytest.raises(InvalidInputError, match="LatentLayout"):
        ScatterAssignment({"a": (1, "rna")})


def _cfmd_parts(seed: int = 0):
    """The imputer's slice heads on the paper's 328-d layout, at small widths."""
    torch.manual_seed(seed)
    layout = LatentLayout.cfmd328()
    parts = {
        "prolif": torch.nn.Linear(12, 1),
        "pathway": Projector(16, 200, d_hidden=32),
        "residual": Projector(10, 16, d_hidden=32),
        "meth": small_decoder(d_out=48),
    }
    inputs = {
        "prolif": torch.randn(6, 12, requires_grad=True),
        "pathway": torch.randn(6, 16, requires_grad=True),
        "residual": torch.randn(6, 10, requires_grad=True),
        "meth": torch.randn(6, len(GENE_CHROMOSOMES), requires_grad=True),
    }
    for module in parts.values():
        module.eval()
    return layout, parts, inputs


def _predict(parts, inputs):
    outputs = {}
    for name, module in parts.items():
        out = module(inputs[name])
        outputs[name] = out[0] if isinstance(out, tuple) else out
    return outputs


def test_scatter_isolation_gives_exactly_zero_gradient_outside_each_slice():
    layout, parts, inputs = _cfmd_parts()
    scatter = ScatterAssignment(layout)
    outputs = _predict(parts, inputs)
    z = scatter(outputs)
    assert z.shape == (6, 328)
    for zero in ("ctx", "cnv"):
        assert bool((layout.take(z, zero) == 0).all())

    # A loss on one slice reaches only its own head and input: every other gradient is exactly 0.
    for target in parts:
        loss = (layout.take(z, target) * torch.randn(6, layout[target].dim)).sum()
        for name, module in parts.items():
            grads = gradients(loss, [*module.parameters(), inputs[name]])
            if name == target:
                assert any(bool((g != 0).any()) for g in grads), name
            else:
                assert all(bool((g == 0).all()) for g in grads), (target, name)

    # Zero-masked dimensions are connected to no parameter and no input.
    everything = [p for m in parts.values() for p in m.parameters()] + list(inputs.values())
    zero_loss = (z[:, torch.as_tensor(layout.mask(["ctx", "cnv"]))] * 3.0).sum()
    assert all(bool((g == 0).all()) for g in gradients(zero_loss, everything))

    # For a loss on the whole latent, each head receives exactly its own slice's gradient, nothing else.
    weights = torch.randn(6, 328)
    grads = gradients((z * weights).sum(), list(outputs.values()))
    for (name, _), grad in zip(outputs.items(), grads):
        assert torch.equal(grad, layout.take(weights, name))


def test_scatter_isolation_leaves_other_slices_bitwise_unchanged_after_an_update():
    layout, parts, inputs = _cfmd_parts()
    scatter = ScatterAssignment(layout)
    params = [p for m in parts.values() for p in m.parameters()]
    optimizer = torch.optim.AdamW(params, lr=1e-2, weight_decay=0.0)
    before = scatter(_predict(parts, inputs)).detach()
    optimizer.zero_grad()
    layout.take(scatter(_predict(parts, inputs)), "pathway").square().mean().backward()
    optimizer.step()
    after = scatter(_predict(parts, inputs)).detach()
    assert not torch.equal(layout.take(after, "pathway"), layout.take(before, "pathway"))
    for name in ("prolif", "ctx", "residual", "meth", "cnv"):
        assert torch.equal(layout.take(after, name), layout.take(before, name)), name


def test_shared_trunk_leaks_gradient_across_slices():
    torch.manual_seed(0)
    layout = LatentLayout.cfmd328()
    trunk = SharedTrunkImputer(layout, {"geneformer": 16, "fingerprint": 10, "rna": 12}, d_hidden=32).eval()
    inputs = {"geneformer": torch.randn(6, 16), "fingerprint": torch.randn(6, 10), "rna": torch.randn(6, 12)}
    z = trunk(inputs)
    assert z.shape == (6, 328)
    assert bool((layout.take(z, "ctx") == 0).all()) and bool((layout.take(z, "cnv") == 0).all())
    trunk_params = list(trunk.trunk.parameters())
    for target in ("prolif", "pathway", "residual", "meth"):
        loss = layout.take(z, target).square().sum()
        assert all(bool((g != 0).any()) for g in gradients(loss, trunk_params)), target
    # An update driven by the pathway loss alone moves every other predicted slice.
    optimizer = torch.optim.SGD(trunk.parameters(), lr=1e-2)
    layout.take(z, "pathway").square().mean().backward()
    optimizer.step()
    after = trunk(inputs).detach()
    for name in ("prolif", "residual", "meth"):
        assert not torch.equal(layout.take(after, name), layout.take(z.detach(), name)), name
    with pytest.raises(InvalidInputError, match="exactly the keys"):
        trunk({"geneformer": inputs["geneformer"]})


# --------------------------------------------------------------------------- losses
def test_orthogonality_loss_matches_hand_computation():
    h_g = torch.tensor([[1.0, 2.0], [0.0, -1.0], [3.0, 1.0], [2.0, 2.0]], dtype=torch.float64)
    h_e = torch.tensor([[0.5, 1.0, -1.0], [1.5, 0.0, 2.0], [-0.5, 2.0, 0.0], [1.0, 1.0, 1.0]], dtype=torch.float64)
    a, b = h_g.numpy(), h_e.numpy()
    n = 4
    total = 0.0
    for i in range(2):
        for j in range(3):
            cov = sum((a[k, i] - a[:, i].mean()) * (b[k, j] - b[:, j].mean()) for k in range(n)) / (n - 1)
            total += cov**2
    expected = total / (2 * 3)
    assert math.isclose(orthogonality_loss(h_g, h_e).item(), expected, rel_tol=1e-12)
    np.testing.assert_allclose(expected, np.sum(np.cov(a.T, b.T)[:2, 2:] ** 2) / 6, rtol=1e-12)


def test_orthogonality_loss_is_exactly_zero_for_uncorrelated_and_single_patient_batches():
    hadamard = torch.tensor([[1, 1, 1, 1], [1, -1, 1, -1], [1, 1, -1, -1], [1, -1, -1, 1]], dtype=torch.float32)
    h_g = hadamard[:, 1:3] * torch.tensor([2.0, 3.0]) + 5.0  # centred columns after removing the offset
    h_e = hadamard[:, 3:] * 4.0 - 1.0  # orthogonal to both h_g columns
    assert orthogonality_loss(h_g, h_e).item() == 0.0
    assert orthogonality_loss(h_g, h_g).item() > 0
    one_g = torch.randn(1, 5, requires_grad=True)
    one_e = torch.randn(1, 3, requires_grad=True)
    loss = orthogonality_loss(one_g, one_e)
    assert loss.item() == 0.0 and not torch.isnan(loss)
    loss.backward()
    assert bool((one_g.grad == 0).all()) and bool((one_e.grad == 0).all())
    with pytest.raises(InvalidInputError, match="same batch size"):
        orthogonality_loss(torch.randn(3, 2), torch.randn(4, 2))


def test_slice_reconstruction_losses():
    layout = LatentLayout.from_sizes({"a": (2, "geneformer"), "z": (3, "zero"), "b": (4, "esm")})
    torch.manual_seed(0)
    pred, target = torch.randn(5, 9, requires_grad=True), torch.randn(5, 9)
    total, per_slice = slice_reconstruction_losses(pred, target, layout, slices=["a", "b"], weights={"b": 0.5})
    assert set(per_slice) == {"a", "b"}
    expected_a = ((pred[:, :2] - target[:, :2]) ** 2).mean()
    expected_b = ((pred[:, 5:] - target[:, 5:]) ** 2).mean()
    torch.testing.assert_close(per_slice["a"], expected_a)
    torch.testing.assert_close(per_slice["b"], expected_b)
    torch.testing.assert_close(total, expected_a + 0.5 * expected_b)
    total.backward()
    assert bool((pred.grad[:, 2:5] == 0).all()) and bool((pred.grad[:, :2] != 0).all())
    with pytest.raises(InvalidInputError, match="no slice 'q'"):
        slice_reconstruction_losses(pred, target, layout, slices=["q"])
    with pytest.raises(InvalidInputError, match="not scored"):
        slice_reconstruction_losses(pred, target, layout, slices=["a"], weights={"b": 1.0})
    with pytest.raises(InvalidInputError, match=">= 0"):
        slice_reconstruction_losses(pred, target, layout, slices=["a"], weights={"a": -1.0})
    with pytest.raises(InvalidInputError, match="8 dimensions"):
        slice_reconstruction_losses(pred[:, :8], target[:, :8], layout, slices=["a"])


# --------------------------------------------------------------------------- regional methylation decoder
def _reference_regions(decoder: RegionalMethylationDecoder, expression: torch.Tensor) -> torch.Tensor:
    """Literal per-gene MLP on [e_g; x_g], then a loop-based mean per chromosome (paper, Section 3.4)."""
    kept = [g for g, c in enumerate(GENE_CHROMOSOMES) if c >= 0]
    regions = torch.zeros(expression.shape[0], len(CHROMS), decoder.d_model, dtype=expression.dtype)
    for c in range(len(CHROMS)):
        genes = [i for i, g in enumerate(kept) if GENE_CHROMOSOMES[g] == c]
        if not genes:
            continue
        outs = []
        for i in genes:
            features = torch.cat(
                [decoder.gene_embedding.weight[i].expand(expression.shape[0], -1), expression[:, kept[i], None]], 1
            )
            outs.append(decoder.gene_mlp_out(F.gelu(decoder.gene_mlp_in(features))))
        regions[:, c] = torch.stack(outs).mean(0)
    return regions


def test_regional_decoder_shapes_and_vectorised_regions_match_the_literal_definition():
    torch.manual_seed(0)
    decoder = small_decoder().double().eval()
    x = torch.randn(7, len(GENE_CHROMOSOMES), dtype=torch.float64)
    assert decoder(x).shape == (7, 5)
    regions = decoder.regional_embeddings(x)
    assert regions.shape == (7, 6, 16)
    torch.testing.assert_close(regions, _reference_regions(decoder, x))
    assert decoder.empty_chromosomes.tolist() == [False, False, False, True, False, True]


def test_regional_decoder_masking_is_exactly_invariant_to_the_masked_chromosome():
    torch.manual_seed(0)
    decoder = small_decoder(dropout=0.2).eval()
    x = torch.randn(5, len(GENE_CHROMOSOMES))
    genes_chr2 = [g for g, c in enumerate(GENE_CHROMOSOMES) if c == 1]
    changed = x.clone()
    changed[:, genes_chr2] = torch.randn(5, len(genes_chr2)) * 1e4
    changed[0, genes_chr2[0]] = float("nan")
    assert not torch.equal(decoder(x), decoder(changed.nan_to_num()))  # unmasked, chromosome 2 matters
    for mask in ([1], ["2"], ["chr2"], torch.tensor([1]), torch.tensor([False, True, False, False, False, False])):
        assert torch.equal(decoder(x, masked_chromosomes=mask), decoder(changed, masked_chromosomes=mask))
    # No gradient reaches the masked genes or the masked chromosome's positional embedding.
    x_req = x.clone().requires_grad_(True)
    out = decoder(x_req, masked_chromosomes=["2"]).sum()
    grad_x, grad_pos = gradients(out, [x_req, decoder.chromosome_positions])
    assert bool((grad_x[:, genes_chr2] == 0).all()) and bool((grad_x[:, [0, 1, 5]] != 0).any())
    assert bool((grad_pos[1] == 0).all()) and bool((grad_pos[0] != 0).any())
    # Masking also changes the prediction (the region is really removed), also in training mode.
    assert not torch.equal(decoder(x), decoder(x, masked_chromosomes=[1]))
    decoder.train()
    torch.manual_seed(3)
    a = decoder(x, masked_chromosomes=[1])
    torch.manual_seed(3)
    b = decoder(changed, masked_chromosomes=[1])
    assert torch.equal(a, b)


def test_regional_decoder_masking_equals_removing_the_chromosome():
    """Masking chromosome "2" == a decoder (same weights) that never had "2" nor the empty "4" and "X"."""
    torch.manual_seed(0)
    decoder = small_decoder().double().eval()
    remaining = [0, 2, 4]  # chromosomes "1", "3", "5"
    reduced_chromosomes = [remaining.index(c) if c in remaining else -1 for c in GENE_CHROMOSOMES]
    reduced = RegionalMethylationDecoder(
        reduced_chromosomes,
        chromosomes=[CHROMS[c] for c in remaining],
        d_out=5,
        d_gene=4,
        d_model=16,
        d_gene_hidden=8,
        n_heads=2,
        d_feedforward=32,
    ).double()
    assert not bool(reduced.empty_chromosomes.any())  # nothing to exclude: plain attention over 3 regions
    state = decoder.state_dict()
    kept_full = [g for g, c in enumerate(GENE_CHROMOSOMES) if c >= 0]
    kept_reduced = [kept_full.index(g) for g, c in enumerate(reduced_chromosomes) if c >= 0]
    state["gene_embedding.weight"] = state["gene_embedding.weight"][kept_reduced]
    state["chromosome_positions"] = state["chromosome_positions"][remaining]
    reduced.load_state_dict(state)
    reduced.eval()
    x = torch.randn(5, len(GENE_CHROMOSOMES), dtype=torch.float64)
    torch.testing.assert_close(decoder(x, masked_chromosomes=["2"]), reduced(x), rtol=1e-12, atol=1e-12)


def test_regional_decoder_empty_and_ignored_genes_and_bad_masks():
    torch.manual_seed(0)
    decoder = small_decoder().eval()
    x = torch.randn(4, len(GENE_CHROMOSOMES))
    out = decoder(x)
    assert torch.isfinite(out).all()
    # Ignored genes (-1) do not matter; empty chromosomes (3 and 5) carry no signal, not even their position.
    changed = x.clone()
    changed[:, [6, 11]] = 1e6
    assert torch.equal(decoder(changed), out)
    grad_pos = gradients(decoder(x).sum(), [decoder.chromosome_positions])[0]
    assert bool((grad_pos[[3, 5]] == 0).all())
    # Masking every chromosome that has genes leaves nothing to decode.
    with pytest.raises(InvalidInputError, match="every chromosome"):
        decoder(x, masked_chromosomes=[0, 1, 2, 4])
    assert torch.isfinite(decoder(x, masked_chromosomes=[0, 1, 2])).all()
    with pytest.raises(InvalidInputError, match="unknown chromosome 'Y'"):
        decoder(x, masked_chromosomes=["Y"])
    with pytest.raises(InvalidInputError, match=r"\[0, 6\)"):
        decoder(x, masked_chromosomes=[6])
    with pytest.raises(InvalidInputError, match=r"\(batch, 12\)"):
        decoder(x[:, :11])
    with pytest.raises(InvalidInputError, match=r"\[-1, 6\)"):
        RegionalMethylationDecoder([0, 7], chromosomes=CHROMS)
    with pytest.raises(InvalidInputError, match="chromosome_indices"):
        RegionalMethylationDecoder(np.array(["1", "2"]))
    with pytest.raises(InvalidInputError, match="divide"):
        RegionalMethylationDecoder([0], d_model=10, n_heads=4)


def test_regional_decoder_positional_shuffle_is_seeded_and_training_only():
    x = torch.randn(4, len(GENE_CHROMOSOMES))

    def build(**kwargs):
        torch.manual_seed(0)
        return small_decoder(**kwargs).train()

    plain = build()
    per_call_a, per_call_b = build(shuffle_positions="per_call"), build(shuffle_positions="per_call")
    other_seed = build(shuffle_positions="per_call", shuffle_seed=1)
    first_a, first_b = per_call_a(x), per_call_b(x)
    assert torch.equal(first_a, first_b)  # same seed, same permutation sequence
    assert not torch.equal(first_a, plain(x))
    assert not torch.equal(first_a, other_seed(x))
    assert not torch.equal(per_call_a(x), first_a)  # a fresh permutation per call
    per_call_a.set_epoch(0)
    assert torch.equal(per_call_a(x), first_a)  # re-seeding restarts the sequence
    per_call_a.eval()
    assert torch.equal(per_call_a(x), plain.eval()(x))  # evaluation never shuffles

    per_epoch = build(shuffle_positions="per_epoch")
    epoch0 = per_epoch(x)
    assert torch.equal(per_epoch(x), epoch0) and not torch.equal(epoch0, plain.train()(x))
    per_epoch.set_epoch(1)
    assert not torch.equal(per_epoch(x), epoch0)
    per_epoch.set_epoch(0)
    assert torch.equal(per_epoch(x), epoch0)
    # The shuffle uses its own generator: the global torch RNG is untouched.
    torch.manual_seed(5)
    per_epoch(x)
    after = torch.rand(1)
    torch.manual_seed(5)
    assert torch.equal(torch.rand(1), after)
    with pytest.raises(InvalidInputError, match="shuffle_positions"):
        small_decoder(shuffle_positions="always")


def test_regional_decoder_on_the_shipped_tme_genes():
    from cfmd.datasets import gene_annotation, tme_genes

    annotation = gene_annotation().set_index("symbol")["chromosome"]
    genes = tme_genes()
    indices = chromosome_indices(annotation.reindex(genes).tolist())
    assert (indices >= 0).mean() > 0.9
    torch.manual_seed(0)
    decoder = RegionalMethylationDecoder(indices).eval()
    n_kept = int((indices >= 0).sum())
    d = 256
    layer = 4 * d * d + 4 * d + 2 * d * 1024 + 1024 + d + 4 * d
    expected = n_kept * 32 + (33 * d + d) + (d * d + d) + 23 * d + 2 * layer + d * 48 + 48
    assert sum(p.numel() for p in decoder.parameters()) == expected
    with torch.no_grad():
        out = decoder(torch.randn(2, len(genes)), masked_chromosomes=["X"])
    assert out.shape == (2, 48) and torch.isfinite(out).all()


def test_chromosome_indices():
    labels = ["1", "chr1", 2, 2.0, "X", "chrX", "Y", "MT", None, float("nan"), ""]
    assert chromosome_indices(labels).tolist() == [0, 0, 1, 1, 22, 22, -1, -1, -1, -1, -1]
    assert chromosome_indices(["b", "a"], chromosomes=("a", "b")).tolist() == [1, 0]


# --------------------------------------------------------------------------- point-wise baseline
@pytest.mark.parametrize("features", ["genes", "chromosome_means"])
def test_pointwise_mlp_shapes_and_masking(features):
    torch.manual_seed(0)
    mlp = PointwiseMethylationMLP(GENE_CHROMOSOMES, chromosomes=CHROMS, d_out=5, features=features).eval()
    x = torch.randn(4, len(GENE_CHROMOSOMES))
    assert mlp(x).shape == (4, 5)
    n_features = 10 if features == "genes" else 6
    assert mlp.aggregate(x).shape == (4, n_features)
    assert sum(isinstance(m, torch.nn.Linear) for m in mlp.modules()) == 3
    assert mlp.mlp[0].in_features == n_features and mlp.mlp[0].out_features == 256
    genes_chr1 = [g for g, c in enumerate(GENE_CHROMOSOMES) if c == 0]
    changed = x.clone()
    changed[:, genes_chr1] = 1e4
    changed[1, genes_chr1[0]] = float("nan")
    assert not torch.equal(mlp(x), mlp(changed.nan_to_num()))
    for mask in ([0], ["1"], torch.tensor([0])):
        assert torch.equal(mlp(x, masked_chromosomes=mask), mlp(changed, masked_chromosomes=mask))
    changed_ignored = x.clone()
    changed_ignored[:, [6, 11]] = 1e6
    assert torch.equal(mlp(changed_ignored), mlp(x))
    if features == "chromosome_means":
        means = mlp.aggregate(x, masked_chromosomes=["1"])
        torch.testing.assert_close(means[:, 1], x[:, [2, 3, 4]].mean(1))
        assert bool((means[:, [0, 3, 5]] == 0).all())
    with pytest.raises(InvalidInputError, match="features"):
        PointwiseMethylationMLP(GENE_CHROMOSOMES, chromosomes=CHROMS, features="means")


# --------------------------------------------------------------------------- determinism
@pytest.mark.parametrize(
    "build",
    [
        lambda: (Projector(8, 3, d_hidden=16), torch.randn(5, 8)),
        lambda: (LearnedTemperatureFingerprint(torch.randn(9, 4)), torch.rand(5, 9)),
        lambda: (small_decoder(dropout=0.3, shuffle_positions="per_call"), torch.randn(5, len(GENE_CHROMOSOMES))),
        lambda: (PointwiseMethylationMLP(GENE_CHROMOSOMES, chromosomes=CHROMS), torch.randn(5, len(GENE_CHROMOSOMES))),
        lambda: (
            small_decoder(dropout=0.3, gene_weights=True, norm_first=True),
            torch.randn(5, len(GENE_CHROMOSOMES)),
        ),
    ],
    ids=["projector", "fingerprint", "regional_decoder", "pointwise_mlp", "regional_decoder_variants"],
)
def test_blocks_are_deterministic_under_manual_seed(build):
    results = []
    for _ in range(2):
        torch.manual_seed(42)
        module, x = build()
        module.train()
        out = module(x)
        out = out[0] if isinstance(out, tuple) else out
        results.append((module.state_dict(), out))
    (state_a, out_a), (state_b, out_b) = results
    assert state_a.keys() == state_b.keys()
    assert all(torch.equal(state_a[k], state_b[k]) for k in state_a)
    assert torch.equal(out_a, out_b)
