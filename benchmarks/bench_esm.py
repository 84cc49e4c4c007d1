"""ESM-2 gene-embedding throughput on CPU: cfmd.pp.esm_gene_embeddings against fair-esm's extract.py recipe.

Run from the project root::

    .venv/bin/python benchmarks/bench_esm.py                    # ESM-2 t6 (8M) shape, 60 proteins, 3 repeats
    .venv/bin/python benchmarks/bench_esm.py --shape t12 --proteins 100

Model: a randomly initialised ESM-2 with the shape of ``esm2_t6_8M_UR50D`` (6 layers, width 320, 20 heads) or,
with ``--shape t12``, ``esm2_t12_35M_UR50D`` (12 layers, 480, 20 heads), written in fair-esm's format by
:func:`cfmd.datasets.tiny_esm2_checkpoint`. Speed does not depend on the weights' values. Proteins: the synthetic
cohort's canonical-isoform-like sequences (log-normal lengths around 420 residues, some above 1,022), as FASTA.

Baseline, measured in the same run, is fair-esm's ``scripts/extract.py --include mean --repr_layers -1``:
``esm.pretrained.load_model_and_alphabet`` on the local file, ``FastaBatchedDataset.from_file``,
``get_batch_indices(toks_per_batch=4096, extra_toks_per_seq=1)``, a ``DataLoader`` with the alphabet's batch
converter (truncation 1,022; ``num_workers=0`` here, extract.py uses 2), the full model forward under
``torch.no_grad`` and the per-sequence mean over residues ``1 .. len``; it does not write one ``.pt`` file per
sequence as extract.py does (that would only slow the baseline down). Both timings are end to end (loading
included); after one warm-up call each, the methods run alternately ``--repeats`` times and medians are compared.
A third row runs cfmd with fair-esm's own attention module instead of PyTorch SDPA, to show what each part buys.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from argparse import Namespace
from pathlib import Path

import numpy as np
import torch

import cfmd

SHAPES = {"t6": (6, 320, 20), "t12": (12, 480, 20)}


def extract_py_recipe(checkpoint: Path, fasta: Path, toks_per_batch: int = 4096, truncation: int = 1022):
    import esm

    with torch.serialization.safe_globals([Namespace]):
        model, alphabet = esm.pretrained.load_model_and_alphabet(str(checkpoint))
    model.eval()
    dataset = esm.FastaBatchedDataset.from_file(fasta)
    batches = dataset.get_batch_indices(toks_per_batch, extra_toks_per_seq=1)
    loader = torch.utils.data.DataLoader(
        dataset, collate_fn=alphabet.get_batch_converter(truncation), batch_sampler=batches
    )
    repr_layers = [model.num_layers]
    out = {}
    with torch.no_grad():
        for labels, strs, toks in loader:
            result = model(toks, repr_layers=repr_layers, return_contacts=False)
            representations = {layer: t.to(device="cpu") for layer, t in result["representations"].items()}
            for i, label in enumerate(labels):
                truncate_len = min(truncation, len(strs[i]))
                out[label] = {layer: t[i, 1 : truncate_len + 1].mean(0).clone() for layer, t in representations.items()}
    return out


def timed_pair(functions, repeats: int):
    for fn in functions:
        fn()
    times = [[] for _ in functions]
    results = [None] * len(functions)
    for _ in range(repeats):
        for i, fn in enumerate(functions):
            t0 = time.perf_counter()
            results[i] = fn()
            times[i].append(time.perf_counter() - t0)
    return [statistics.median(t) for t in times], results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--shape", choices=sorted(SHAPES), default="t6")
    parser.add_argument("--proteins", type=int, default=60)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    n_layers, width, heads = SHAPES[args.shape]

    rna = cfmd.datasets.synthetic_cohort(n_patients=10, n_genes=max(args.proteins, 300), seed=0)["rna"]
    rna = rna[:, : args.proteins].copy()
    sequences = rna.var["protein_sequence"]
    residues = int(sequences.str.len().clip(upper=1022).sum())

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        checkpoint = cfmd.datasets.tiny_esm2_checkpoint(tmp, n_layers=n_layers, embed_dim=width, attention_heads=heads)
        fasta = tmp / "proteins.fasta"
        fasta.write_text("".join(f">{g}\n{s}\n" for g, s in sequences.items()))

        def ours():
            return cfmd.pp.esm_gene_embeddings(rna, checkpoint=checkpoint, fasta=fasta, progress=False, copy=True)

        def ours_fair_esm_attention():
            from cfmd.pp import _esm

            original = _esm._transformer_layer
            _esm._transformer_layer = lambda block, x, attend, rotary, fused: block(
                x.transpose(0, 1), self_attn_padding_mask=None if attend is None else ~attend[:, 0, 0, :]
            )[0].transpose(0, 1)
            try:
                return ours()
            finally:
                _esm._transformer_layer = original

        (t_base, t_cfmd, t_ablation), (base, result, ablation) = timed_pair(
            [lambda: extract_py_recipe(checkpoint, fasta), ours, ours_fair_esm_attention], args.repeats
        )
    expected = np.vstack([base[g][n_layers].numpy() for g in rna.var_names])
    diff = max(
        float(np.abs(result.varm["X_esm2"] - expected).max()), float(np.abs(ablation.varm["X_esm2"] - expected).max())
    )

    print(
        f"\nESM-2 {args.shape} shape ({n_layers} layers, width {width}, {heads} heads), CPU, {torch.get_num_threads()} "
        f"torch threads, {args.proteins} proteins ({residues} residues after truncation), toks_per_batch 4096, "
        f"median of {args.repeats} runs\n"
    )
    header = f"{'method':<52}{'median s':>10}{'residues/s':>12}{'vs baseline':>13}"
    print(header)
    print("-" * len(header))
    for method, t in (
        ("fair-esm extract.py recipe", t_base),
        ("cfmd.pp.esm_gene_embeddings", t_cfmd),
        ("cfmd.pp.esm_gene_embeddings, fair-esm attention", t_ablation),
    ):
        print(f"{method:<52}{t:10.2f}{residues / t:12.0f}{t_base / t:12.2f}x")
    print(f"\nmax |cfmd - baseline| embedding difference: {diff:.2e}")


if __name__ == "__main__":
    main()
