"""CFMDModule: the students it builds are recorded, the forward pass runs exactly those, saved key names stay."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from cfmd._layout import LatentLayout
from cfmd.models._cfmd_module import CFMDModule, Student

LAYOUT = LatentLayout.from_sizes(
    {"r": (2, "rna"), "g": (3, "geneformer"), "z": (2, "zero"), "e": (2, "esm"), "m": (3, "regional_methylation")}
)
N_GENES, D_GENEFORMER = 12, 6


def _module(**kwargs) -> CFMDModule:
    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    options = {
        "layout": LAYOUT,
        "n_genes": N_GENES,
        "rna_scale": "counts",
        "rna_head_genes": np.array([0, 1, 2]),
        "d_geneformer": D_GENEFORMER,
        "esm_genes": np.array([3, 4, 5, 6, 7]),
        "esm_embeddings": rng.normal(size=(5, 4)).astype(np.float32),
        "tme_genes": np.array([8, 9, 10, 11]),
        "tme_chromosomes": np.array([0, 0, 1, 2]),
        "d_hidden": 8,
        "rmd_kwargs": {"d_model": 8, "n_heads": 2, "d_gene_hidden": 4},
        **kwargs,
    }
    return CFMDModule(**options).eval()


def _inputs():
    rng = np.random.default_rng(1)
    x = torch.as_tensor(rng.poisson(4.0, size=(5, N_GENES)), dtype=torch.float32)
    return x, torch.as_tensor(rng.normal(size=(5, D_GENEFORMER)), dtype=torch.float32)


def test_students_are_recorded_in_the_order_they_run_and_are_the_only_networks():
    module = _module()
    assert module.students == (
        Student("rna", "rna_head", "rna_signature"),
        Student("geneformer", "projector_geneformer", "geneformer"),
        Student("esm", "projector_esm", "fingerprint"),
        Student("regional_methylation", "regional_methylation_decoder", "tme_genes"),
    )
    # every trainable network of the module is a student, the fingerprint (ESM input) or the scatter assignment
    children = {name for name, child in module.named_children() if any(True for _ in child.parameters())}
    assert children == {s.attribute for s in module.students} | {"fingerprint"}
    pointwise = _module(methylation_decoder="pointwise", rmd_kwargs={"d_hidden": 8})
    assert pointwise.students[-1] == Student("regional_methylation", "pointwise_methylation_mlp", "tme_genes")


@pytest.mark.parametrize(
    ("options", "expected"),
    [
        ({"use_geneformer": False}, {"geneformer": "rna", "esm": "fingerprint"}),
        ({"use_esm": False}, {"geneformer": "geneformer", "esm": "rna"}),
        ({"use_geneformer": False, "ablation_fill": "zero"}, {"esm": "fingerprint"}),
        ({"use_geneformer": False, "use_esm": False, "ablation_fill": "zero"}, {}),
    ],
)
def test_a_switched_off_teacher_has_an_rna_fed_student_or_none(options, expected):
    module = _module(**options)
    teachers = {s.strategy: s.source for s in module.students if s.strategy in ("geneformer", "esm")}
    assert teachers == expected
    x, geneformer = _inputs()
    module.fit_normalisation(x, torch.randn(5, LAYOUT.n_dims), geneformer)
    with torch.no_grad():
        out = module.inference(x, geneformer)
    assert set(out["hidden"]) == set(expected)
    for strategy in ("geneformer", "esm"):  # a teacher without a student leaves its slices at exact zero
        written = bool(LAYOUT.take(out["z"], "g" if strategy == "geneformer" else "e").abs().sum())
        assert written == (strategy in expected)


def test_the_forward_pass_writes_each_students_slices_from_that_student():
    module = _module()
    x, geneformer = _inputs()
    module.fit_normalisation(x, torch.randn(5, LAYOUT.n_dims), geneformer)
    with torch.no_grad():
        z = module.inference(x, geneformer)["z"]
        standardised = module.standardised_expression(x)
        rna = module.rna_head(standardised[:, module.rna_head_genes])
    torch.testing.assert_close(LAYOUT.take(z, "r"), rna, rtol=0, atol=0)
    assert not LAYOUT.take(z, "z").any()


def test_shared_trunk_has_no_isolated_students():
    module = _module(architecture="shared_trunk")
    assert module.students == ()
    assert module.assignment is module.trunk.scatter


@pytest.mark.parametrize("methylation_decoder", ["regional", "pointwise"])
def test_state_dict_keys_keep_the_saved_format(methylation_decoder):
    """Saved models are safetensors keyed by parameter name: these prefixes are the file format (models saved by
    earlier versions load only while they stay)."""
    rmd = {"d_hidden": 8} if methylation_decoder == "pointwise" else {"d_model": 8, "n_heads": 2, "d_gene_hidden": 4}
    module = _module(methylation_decoder=methylation_decoder, rmd_kwargs=rmd)
    prefixes = {key.split(".")[0] for key in module.state_dict()}
    decoder = "regional_methylation_decoder" if methylation_decoder == "regional" else "pointwise_methylation_mlp"
    assert prefixes == {
        "gene_mean", "gene_std", "latent_mean", "latent_std", "geneformer_mean", "geneformer_std",
        "fingerprint_mean", "fingerprint_std", "rna_head_genes", "esm_genes", "tme_genes", "fingerprint",
        "rna_head", "projector_geneformer", "projector_esm", decoder,
    }  # fmt: skip
    trunk = _module(architecture="shared_trunk")
    assert {key.split(".")[0] for key in trunk.state_dict()} == prefixes - {
        "rna_head", "projector_geneformer", "projector_esm", decoder
    } | {"trunk"}  # fmt: skip


def test_set_epoch_reaches_the_regional_decoder():
    rmd = {"d_model": 8, "n_heads": 2, "d_gene_hidden": 4, "shuffle_positions": "per_epoch"}
    module = _module(rmd_kwargs=rmd).train()
    decoder = module.regional_methylation_decoder
    reference = _module(rmd_kwargs=rmd).regional_methylation_decoder.train()
    for epoch in (0, 3):
        module.set_epoch(epoch)
        reference.set_epoch(epoch)
        torch.testing.assert_close(decoder.position_permutation(), reference.position_permutation(), rtol=0, atol=0)
    _module(methylation_decoder="pointwise", rmd_kwargs={"d_hidden": 8}).set_epoch(2)  # nothing to tell: no error
