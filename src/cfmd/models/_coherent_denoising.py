"""CoherentDenoising: the seed's ensemble of single-condition DDPMs with consensus noise and coherence rejection.

One :class:`~cfmd.models.nn.ConditionalNoiseMLP` per condition (condition -> target), trained independently on the
same patient split and normalisation. At each reverse step every member predicts the noise of the same ``x_t``
(the members are evaluated as ONE batched call, :class:`~cfmd.models.nn.StackedNoiseTrunks`), the consensus is
their weighted mean, and the weighted mean pairwise cosine distance between the members' predictions is recorded.
A trajectory whose distance exceeds ``coherence_threshold`` on more than ``max_incoherent_fraction`` of the steps
is rejected and redrawn (at most ``max_redraws`` times).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from mudata import MuData

from .._logging import logger
from .._validation import InvalidInputError, check_probability
from ._ddpm import fit_noise_network, reverse_diffusion
from ._latent_diffusion import LatentDiffusion
from .nn import StackedNoiseTrunks

__all__ = ["CoherentDenoising", "coherent_reverse_diffusion", "pairwise_cosine_distance"]


def pairwise_cosine_distance(eps: torch.Tensor, pair_weights: torch.Tensor) -> torch.Tensor:
    """Weighted mean pairwise cosine distance between members' predictions.

    Parameters
    ----------
    eps
        ``(M, N, D)`` predictions of M members for N rows.
    pair_weights
        ``(M, M, N)`` weight of each pair ``i < j`` per row (entries with ``i >= j`` are ignored).

    Returns
    -------
    ``(N,)``: ``1 - sum_{i<j} w_ij cos(eps_i, eps_j) / sum_{i<j} w_ij`` (0 where a row has no pair).
    """
    return _distance_from_normalised(eps, *_normalised_pair_weights(pair_weights))


def _normalised_pair_weights(pair_weights: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Pair weights restricted to ``i < j`` and divided by their per-row sum; whether the row has a pair."""
    n_members = pair_weights.shape[0]
    upper = torch.triu(torch.ones(n_members, n_members, dtype=torch.bool), diagonal=1).unsqueeze(-1)
    w = torch.where(upper, pair_weights, 0.0)
    total = w.sum((0, 1))
    return w / total.clamp_min(1e-12), total > 0


def _distance_from_normalised(eps: torch.Tensor, weights: torch.Tensor, has_pair: torch.Tensor) -> torch.Tensor:
    unit = eps / eps.norm(dim=-1, keepdim=True).clamp_min(1e-12)
    sim = torch.einsum("ind,jnd->ijn", unit, unit)
    return torch.where(has_pair, 1.0 - (weights * sim).sum((0, 1)), 0.0)


@torch.no_grad()
def coherent_reverse_diffusion(
    trunks: StackedNoiseTrunks,
    c_emb: torch.Tensor,
    weights: torch.Tensor,
    scheduler,
    x: torch.Tensor,
    generator: torch.Generator,
    num_inference_steps: int,
    x0_bounds: tuple | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """One batch of Coherent Denoising trajectories.

    Parameters
    ----------
    trunks
        The stacked members.
    c_emb
        ``(M, N, E)`` members' condition embeddings.
    weights
        ``(M, N)`` member weights per row (non-negative, summing to one over members; 0 = member unavailable).
    scheduler
        A :class:`diffusers.DDPMScheduler`.
    x
        ``(N, D)`` initial noise.
    generator
        Random generator of the reverse steps.
    num_inference_steps
        Reverse steps.
    x0_bounds
        Per-dimension bounds of each step's ``x_0`` estimate (see :class:`~cfmd.models._ddpm.FusedDDPMStep`);
        None: no clipping.

    Returns
    -------
    ``x_0`` ``(N, D)`` and the per-step weighted mean pairwise cosine distance ``(N, steps)``.
    """
    pair_weights = 0.5 * (weights[:, None, :] + weights[None, :, :]) * ((weights[:, None] > 0) & (weights[None] > 0))
    distances = []
    normalised = _normalised_pair_weights(pair_weights)  # once per run, not per step
    scheduler.set_timesteps(int(num_inference_steps))
    # condition embeddings and the steps' time-dependent biases written once; buffers allocated once per run
    members = trunks.session(c_emb, scheduler.timesteps)

    def predict(x_t, t):
        eps = members(x_t, t.reshape(1))  # (M, N, D); one batched call per layer for all members
        distances.append(_distance_from_normalised(eps, *normalised))
        return (weights.unsqueeze(-1) * eps).sum(0)

    out = reverse_diffusion(predict, scheduler, x, generator, num_inference_steps, x0_bounds)
    return out, torch.stack(distances, dim=1)


class CoherentDenoising(LatentDiffusion):
    """Ensemble of single-condition diffusion models sampled with Coherent Denoising (seed 004).

    Every condition gets its own single-condition member (condition -> target; same widths, split, training-split
    normalisation and schedule). Members are weighted inversely to their validation MSE of fully denoised samples
    (``weights="validation"``, the seed's suggestion), uniformly, or as given. A member whose condition a patient
    lacks (e.g. a slice of an RNA-only patient) gets weight 0 for that patient; a patient with no member available
    is generated by all members with zeroed condition embeddings.

    Parameters
    ----------
    mdata
        MuData registered with :meth:`setup_mudata`.
    target, conditions, layout, n_hidden, n_layers, time_embedding_dim, condition_embedding_dim
        As for :class:`~cfmd.models.LatentDiffusion` (one member per condition).
    weights
        ``"validation"`` (w_i proportional to 1 / validation MSE), ``"uniform"``, or one non-negative number per
        condition.
    coherence_threshold
        Cosine distance above which a step counts as incoherent.
    max_incoherent_fraction
        A trajectory with more incoherent steps than this fraction is rejected (0.05, the seed's 5%).
    max_redraws
        Redraws of a rejected trajectory; after that the last draw is kept and counted as unresolved.
    **kwargs
        Other :class:`~cfmd.models.LatentDiffusion` arguments (schedule, split, seed).
    """

    _ensemble = True

    def __init__(
        self,
        mdata: MuData,
        *,
        target: str | Sequence[str] = "meth",
        conditions: Sequence[str] | None = None,
        weights: str | Sequence[float] = "validation",
        coherence_threshold: float = 0.5,
        max_incoherent_fraction: float = 0.05,
        max_redraws: int = 3,
        **kwargs,
    ) -> None:
        if isinstance(weights, str) and weights not in ("validation", "uniform"):
            raise InvalidInputError(f"`weights` must be 'validation', 'uniform' or numbers; got {weights!r}.")
        if not isinstance(coherence_threshold, int | float) or not 0.0 <= coherence_threshold <= 2.0:
            raise InvalidInputError(
                f"`coherence_threshold` must be a cosine distance in [0, 2]; got {coherence_threshold!r}."
            )
        check_probability(max_incoherent_fraction, "max_incoherent_fraction")
        if not isinstance(max_redraws, int | np.integer) or isinstance(max_redraws, bool) or max_redraws < 0:
            raise InvalidInputError(f"`max_redraws` must be a non-negative integer; got {max_redraws!r}.")
        super().__init__(mdata, target=target, conditions=conditions, **kwargs)
        n_members = len(self.module.conditions)
        if not isinstance(weights, str):
            given = np.asarray(weights, dtype=float)
            if given.shape != (n_members,) or (given < 0).any() or given.sum() <= 0 or not np.isfinite(given).all():
                raise InvalidInputError(
                    f"`weights` must be {n_members} non-negative numbers (one per condition) with a positive sum; "
                    f"got {list(given)}."
                )
            self.module.member_weights.copy_(torch.as_tensor(given / given.sum(), dtype=torch.float32))
        self.coherence_ = {
            "weights": weights if isinstance(weights, str) else "given",
            "coherence_threshold": float(coherence_threshold),
            "max_incoherent_fraction": float(max_incoherent_fraction),
            "max_redraws": int(max_redraws),
        }
        self.last_sampling_ = {}
        self.init_params_["non_kwargs"].update(
            {"weights": weights if isinstance(weights, str) else list(map(float, weights)), **self.coherence_}
        )
        self._model_summary_string = self._model_summary_string.replace("DDPM", f"{n_members}-member DDPM ensemble")

    def _fit(self, train, validation, options, random_masks) -> None:
        histories, mses = {}, []
        for i, (network, condition) in enumerate(zip(self.module.networks, self.module.conditions)):
            name = condition["name"]

            def having(data, name=name):
                rows = data["masks"][name] > 0
                return {
                    "target": data["target"][rows],
                    "conditions": {name: data["conditions"][name][rows]},
                    "masks": {name: data["masks"][name][rows]},
                }

            member_train, member_val = having(train), having(validation)
            if member_train["target"].shape[0] < 2 or member_val["target"].shape[0] < 1:
                raise InvalidInputError(
                    f"Condition {name!r} is available for too few training/validation patients to train its member."
                )
            history = fit_noise_network(
                network,
                self.module.make_scheduler(),
                member_train,
                member_val,
                seed=self.seed_ + i,
                random_masks=False,
                x0_bounds=self.module.denoised_bounds(),
                **options,
            )
            histories[name] = history
            mses.append(history["best_validation_mse"])
        mse = torch.as_tensor(mses, dtype=torch.float32)
        self.module.member_validation_mse.copy_(mse)
        if self.coherence_["weights"] == "validation":
            inverse = 1.0 / mse.clamp_min(1e-8)
            self.module.member_weights.copy_(inverse / inverse.sum())
        elif self.coherence_["weights"] == "uniform":
            self.module.member_weights.fill_(1.0 / len(mses))
        self.history_ = histories
        logger.info(
            "CoherentDenoising: member validation MSE %s; weights %s.",
            [round(float(m), 4) for m in mse],
            [round(float(w), 3) for w in self.module.member_weights],
        )

    @torch.no_grad()
    def _sample(self, data, n_rows, n_samples, generator, steps):
        networks = list(self.module.networks)
        for network in networks:
            network.eval()
        trunks = StackedNoiseTrunks(networks)
        names = [c["name"] for c in self.module.conditions]
        n = n_rows * n_samples
        c_emb = torch.stack(
            [
                net.embed_conditions(
                    {name: data["conditions"][name].repeat(n_samples, 1)},
                    {name: data["masks"][name].repeat(n_samples)},
                    batch_size=n,
                )
                for net, name in zip(networks, names)
            ]
        )
        available = torch.stack([data["masks"][name].repeat(n_samples) for name in names]) > 0
        available[:, ~available.any(0)] = True
        weights = self.module.member_weights.unsqueeze(1) * available
        weights = weights / weights.sum(0, keepdim=True)
        scheduler = self.module.make_scheduler()
        settings = self.coherence_
        x = torch.empty(n, int(self.module.target_index.size))
        pending = torch.arange(n)
        drawn = rejected_total = 0
        incoherent = torch.zeros(n)
        mean_distance = torch.zeros(n)
        for _attempt in range(settings["max_redraws"] + 1):
            noise = torch.randn((pending.numel(), x.shape[1]), generator=generator)
            x0, dist = coherent_reverse_diffusion(
                trunks,
                c_emb[:, pending],
                weights[:, pending],
                scheduler,
                noise,
                generator,
                steps,
                self.module.denoised_bounds(),
            )
            fraction = (dist > settings["coherence_threshold"]).float().mean(1)
            rejected = fraction > settings["max_incoherent_fraction"]
            drawn += pending.numel()
            rejected_total += int(rejected.sum())
            x[pending] = x0
            incoherent[pending] = fraction
            mean_distance[pending] = dist.mean(1)
            pending = pending[rejected]
            if pending.numel() == 0:
                break
        stats = {
            "n_trajectories": int(drawn),
            "n_rejected": int(rejected_total),
            "rejection_rate": float(rejected_total / max(drawn, 1)),
            "n_unresolved": int(pending.numel()),
            "incoherent_fraction": incoherent.reshape(n_samples, n_rows).numpy(),
            "mean_cosine_distance": mean_distance.reshape(n_samples, n_rows).numpy(),
        }
        self.last_sampling_ = {k: v for k, v in stats.items() if not isinstance(v, np.ndarray)}
        return x.reshape(n_samples, n_rows, -1), stats

    @torch.no_grad()
    def generate_with_stats(
        self,
        mdata: MuData | None = None,
        *,
        n_samples: int = 10,
        indices: Sequence[int] | None = None,
        conditions: Sequence[str] | None = None,
        seed: int = 0,
        num_inference_steps: int | None = None,
    ) -> tuple[np.ndarray, dict]:
        """As :meth:`generate`, also returning the rejection statistics.

        Returns
        -------
        The ``(n_samples, n_patients, n_target_dims)`` generations and a dict: ``n_trajectories`` (drawn, redraws
        included), ``n_rejected``, ``rejection_rate`` (rejected / drawn), ``n_unresolved`` (still rejected after
        ``max_redraws``; their last draw is kept), ``incoherent_fraction`` and ``mean_cosine_distance``
        (``(n_samples, n_patients)``, of the kept trajectories).
        """
        return self._generate(mdata, n_samples, indices, conditions, seed, num_inference_steps)
