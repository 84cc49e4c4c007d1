"""Sampling throughput of the generative imputers vs the authors' Coherent Denoising recipe and CFMD's imputation.

Run from the project root::

    OMP_NUM_THREADS=1 PYTHONPATH=src .venv/bin/python benchmarks/bench_diffusion.py              # defaults below
    OMP_NUM_THREADS=1 PYTHONPATH=src .venv/bin/python benchmarks/bench_diffusion.py --patients 50 500 --hidden 256

Data: ``cfmd.datasets.synthetic_cohort`` with a stand-in latent from its planted truth (pathway 4, meth 6, cnv 4
dims). Target: the ``meth`` slice; a 3-member Coherent Denoising ensemble conditioned on RNA (all genes), cancer
type and the pathway slice; the multi-condition LatentDiffusion on the same three. The networks are trained for a
few epochs only (throughput does not depend on their quality).

Rows, all in the same run, patients per second for ``--samples`` generations of every patient with T reverse
steps (medians of ``--repeats``; rows interleaved so load changes hit all alike):

- **authors' recipe**: the loop of ``coherent_sample`` in r-marchesi/coherent-genAI ``code/lib/sampling.py``
  re-expressed on the same networks and the same schedule (the :class:`diffusers.DDPMScheduler`'s betas): per
  reverse step, one full forward pass per member (condition projections and time embedding recomputed at each
  step), ``torch.stack``, pairwise cosine distances in a Python double loop with the additive pair weights,
  weighted consensus, and their own update rule (``sigma_t^2 = beta_t``, i.e. the scheduler's ``fixed_large``
  step);
- **CoherentDenoising (batched)**: ``model._sample``: condition embeddings computed once, the members evaluated as
  one ``torch.bmm`` per layer and step on stacked, BatchNorm-folded weights with the bias (and the step's time
  embedding, precomputed for all steps) in an augmented row, into preallocated buffers
  (:class:`~cfmd.models.nn.StackedNoiseTrunks`), vectorised pairwise distances, and the scheduler's step as
  precomputed coefficients applied in place (:class:`~cfmd.models._ddpm.FusedDDPMStep`); timed
  with rejection off (threshold 2, so both rows draw the same number of trajectories) and with it on (default
  threshold 0.5: redraws included; the rejection rate is printed);
- **LatentDiffusion (multi-condition)**: one network, condition embeddings once;
- **CFMD imputation**: ``CFMD.get_imputed_latent`` (one deterministic pass, CPU-sized decoder, cfmd328 latent).

``--profile`` also prints where the time goes (``torch.profiler``, top operators) for both Coherent Denoising
recipes at the last size; ``--output FILE`` writes the table (Markdown) there too.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

import numpy as np
import torch
import torch.nn.functional as F

import cfmd
from cfmd.models import CoherentDenoising, LatentDiffusion


def cohort(patients: int, genes: int):
    mdata = cfmd.datasets.synthetic_cohort(n_patients=patients, n_genes=genes, seed=0, protein_sequences=False)
    has = mdata.obs_names.isin(mdata["meth"].obs_names)
    latent = np.concatenate(
        [mdata.obsm["truth_pathway"][:, :4], mdata.obsm["truth_meth_state"], mdata.obsm["truth_cnv"][:, :4]], axis=1
    ).astype(np.float32)
    latent[~has] = np.nan
    mdata.obsm["X_structured"] = latent
    cfmd.LatentLayout.from_sizes({"pathway": (4, "geneformer"), "meth": (6, "zero"), "cnv": (4, "zero")}).write(
        mdata, "X_structured"
    )
    return mdata


@torch.no_grad()
def authors_recipe(model: CoherentDenoising, data: dict, n_rows: int, n_samples: int, steps: int, seed: int):
    """The authors' per-member Python loop over the reverse steps (same networks, schedule and weights)."""
    module = model.module
    networks = list(module.networks)
    names = [c["name"] for c in module.conditions]
    conds = [data["conditions"][n].repeat(n_samples, 1) for n in names]
    masks = [data["masks"][n].repeat(n_samples) for n in names]
    weights = module.member_weights
    n = n_rows * n_samples
    generator = torch.Generator().manual_seed(seed)
    samples = torch.randn((n, int(module.target_index.size)), generator=generator)
    scheduler = module.make_scheduler()  # the schedule (betas, alphas_cumprod); the update is the authors' own
    if steps != scheduler.config.num_train_timesteps:
        raise ValueError("the authors' recipe steps through every training timestep")
    cos_per_timestep = []
    for t in reversed(range(steps)):
        t_tensor = torch.full((n,), t, dtype=torch.long)
        predicted = torch.stack(
            [net(samples, t_tensor, {name: c}, {name: m}) for net, name, c, m in zip(networks, names, conds, masks)]
        )
        sim_acc, sum_pair_w = torch.zeros(n), 0.0
        for i in range(len(networks)):
            for j in range(i + 1, len(networks)):
                w_ij = 0.5 * (weights[i] + weights[j])
                sum_pair_w += w_ij
                sim_acc += w_ij * F.cosine_similarity(predicted[i], predicted[j], dim=1)
        cos_per_timestep.append(1.0 - sim_acc / sum_pair_w)
        noise = torch.sum(predicted * weights.view(-1, 1, 1), dim=0)
        # their update rule (sampling.py), sigma_t^2 = beta_t: the scheduler's fixed_large step
        beta_t, alpha_bar_t = scheduler.betas[t], scheduler.alphas_cumprod[t]
        if t > 0:
            alpha_t, sigma_t = alpha_bar_t / scheduler.alphas_cumprod[t - 1], torch.sqrt(beta_t)
        else:
            alpha_t, sigma_t = torch.tensor(1.0), torch.tensor(0.0)
        samples = (samples - (beta_t / torch.sqrt(1 - alpha_bar_t)) * noise) / torch.sqrt(alpha_t)
        if t > 0:
            samples += sigma_t * torch.randn(samples.shape, generator=generator)
    return samples, torch.stack(cos_per_timestep, 1)


def timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--patients", type=int, nargs="+", default=[20, 200], help="patients generated per call")
    parser.add_argument("--cohort", type=int, default=300, help="patients of the training cohort")
    parser.add_argument("--genes", type=int, default=500)
    parser.add_argument("--samples", type=int, default=10)
    parser.add_argument("--steps", type=int, default=50, help="T (training and reverse steps)")
    parser.add_argument("--hidden", type=int, nargs="+", default=[64, 256])
    parser.add_argument("--layers", type=int, default=3)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=int(os.environ.get("OMP_NUM_THREADS", os.cpu_count() or 1)))
    parser.add_argument("--profile", action="store_true", help="print torch.profiler's top operators")
    parser.add_argument("--output", default=None, help="also write the table to this Markdown file")
    args = parser.parse_args()
    lines: list[str] = []

    def emit(line: str = "") -> None:
        print(line, flush=True)
        lines.append(line)

    torch.set_num_threads(args.threads)
    mdata = cohort(max(args.cohort, *args.patients), args.genes)
    conditions = ["rna", "cancer_type", "pathway"]

    cfmd_mdata = mdata.copy()
    truth = np.hstack([np.asarray(cfmd_mdata.obsm[k]) for k in ("truth_pathway", "truth_meth_state", "truth_cnv")])
    latent = np.resize(truth, (cfmd_mdata.n_obs, 328)).astype(np.float32)
    latent[~cfmd_mdata.obs_names.isin(cfmd_mdata["meth"].obs_names)] = np.nan
    cfmd_mdata.obsm["X_structured"] = latent
    cfmd.LatentLayout.cfmd328().write(cfmd_mdata, "X_structured")
    cfmd.models.CFMD.setup_mudata(
        cfmd_mdata, geneformer_key="transcriptomic_context", gene_embedding_key="structural_features"
    )
    cfmd_model = cfmd.models.CFMD(cfmd_mdata, split_key=None, rmd_kwargs={"d_model": 64, "d_feedforward": 256})
    cfmd_model.train(max_epochs=1, early_stopping=False, enable_progress_bar=False)

    s, steps = args.samples, args.steps
    emit(
        f"Sampling throughput on CPU ({args.threads} thread(s), torch {torch.__version__}), {args.genes} genes, "
        f"{s} samples per patient, T = {steps}, MLP {args.layers} hidden layers, 3 members; patients/s, medians "
        f"of {args.repeats} interleaved repeats"
    )
    emit()
    emit(
        "| patients | hidden | authors' recipe | CoherentDenoising batched | ratio | with rejection (rate) | "
        "LatentDiffusion | CFMD imputation | CD / CFMD |"
    )
    emit("|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for hidden in args.hidden:
        widths = {"n_hidden": hidden, "n_layers": args.layers, "num_train_timesteps": steps}
        CoherentDenoising.setup_mudata(mdata)
        ensemble = CoherentDenoising(mdata, target="meth", conditions=conditions, split_key=None, **widths)
        ensemble.train(max_epochs=args.epochs, validate_every=args.epochs)
        LatentDiffusion.setup_mudata(mdata)
        multi = LatentDiffusion(mdata, target="meth", conditions=conditions, split_key=None, **widths)
        multi.train(max_epochs=args.epochs, validate_every=args.epochs)
        for n in args.patients:
            rows = np.arange(n)
            data = ensemble._inputs_for(mdata, rows, None)
            multi_data = multi._inputs_for(mdata, rows, None)
            rejection = {}

            def ours(threshold, data=data, n=n, rejection=rejection, ensemble=ensemble):
                def run():
                    ensemble.coherence_["coherence_threshold"] = threshold
                    _, stats = ensemble._sample(data, n, s, torch.Generator().manual_seed(0), steps)
                    rejection[threshold] = stats["rejection_rate"]
                    ensemble.coherence_["coherence_threshold"] = 0.5

                return run

            fns = {
                "authors": lambda data=data, n=n, e=ensemble: authors_recipe(e, data, n, s, steps, 0),
                "ours": ours(2.0),  # rejection off: both draw the same trajectories
                "ours_rej": ours(0.5),
                "multi": lambda d=multi_data, n=n, m=multi: m._sample(d, n, s, torch.Generator().manual_seed(0), steps),
                "cfmd": lambda rows=rows: cfmd_model.get_imputed_latent(cfmd_mdata, indices=rows, batch_size=512),
            }
            times = {k: [] for k in fns}
            for _ in range(args.repeats):
                for k, fn in fns.items():  # interleaved so that load changes hit every row alike
                    times[k].append(timed(fn))
            rate = {k: n / statistics.median(v) for k, v in times.items()}
            emit(
                f"| {n} | {hidden} | {rate['authors']:.1f} | {rate['ours']:.1f} | "
                f"{rate['ours'] / rate['authors']:.2f}x | {rate['ours_rej']:.1f} ({rejection.get(0.5, 0):.2f}) | "
                f"{rate['multi']:.1f} | {rate['cfmd']:.0f} | {rate['ours'] / rate['cfmd']:.4f}x |"
            )

        if args.profile:
            profile(fns)
    if args.output:
        with open(args.output, "w", encoding="utf-8") as handle:
            handle.write("\n".join(lines) + "\n")


def profile(fns) -> None:
    """Top operators by self CPU time of both Coherent Denoising recipes (last size)."""
    from torch.profiler import ProfilerActivity
    from torch.profiler import profile as torch_profile

    for name in ("authors", "ours"):
        with torch_profile(activities=[ProfilerActivity.CPU]) as prof:
            fns[name]()
        print(f"\n{name}:\n" + prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=8))


if __name__ == "__main__":
    main()
