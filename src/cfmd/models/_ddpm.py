"""DDPM mechanics shared by :class:`~cfmd.models.LatentDiffusion` and :class:`~cfmd.models.CoherentDenoising`.

The noise schedule's scaling (:func:`scaled_betas`), one network's training loop with early stopping on fully denoised
validation samples (:func:`noise_loss`, :func:`fit_noise_network`) and the reverse process (:class:`FusedDDPMStep`,
:func:`reverse_diffusion`, :func:`sample_network`). The schedule and the step are :class:`diffusers.DDPMScheduler`'s;
nothing here knows about MuData.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Mapping, Sequence

import torch

from .nn import ConditionalNoiseMLP, StackedNoiseTrunks

__all__ = [
    "FusedDDPMStep",
    "fit_noise_network",
    "noise_loss",
    "reverse_diffusion",
    "sample_network",
    "scaled_betas",
]


def scaled_betas(num_train_timesteps: int, beta_start: float | None, beta_end: float | None) -> tuple[float, float]:
    """The seed's linear schedule (1e-4 -> 0.02 at T = 1000) scaled by 1000 / T where not given.

    ``beta_end`` is capped at 0.4: beyond, a reverse step divides by ``sqrt(1 - beta_t)`` close to 0 and short
    chains blow up (T < 50 then ends in slightly less than pure noise).
    """
    scale = 1000.0 / int(num_train_timesteps)
    start = min(1e-4 * scale, 0.01) if beta_start is None else float(beta_start)
    end = min(0.02 * scale, 0.4) if beta_end is None else float(beta_end)
    return start, end


def noise_loss(network, scheduler, batch: Mapping, generator: torch.Generator, random_masks: bool) -> torch.Tensor:
    """The DDPM objective on one minibatch: MSE between the added and the predicted noise.

    With ``random_masks``, every condition of every patient is kept with probability 1/2 (all subsets of the
    conditions, the empty set included, equally likely), on top of the patient's availability.
    """
    x0 = batch["target"]
    n = x0.shape[0]
    t = torch.randint(0, scheduler.config.num_train_timesteps, (n,), generator=generator)
    noise = torch.randn(x0.shape, generator=generator)
    x_t = scheduler.add_noise(x0, noise, t)
    masks = dict(batch["masks"])
    if random_masks:
        masks = {k: m * (torch.rand(n, generator=generator) < 0.5).to(m.dtype) for k, m in masks.items()}
    return torch.mean((network(x_t, t, batch["conditions"], masks) - noise) ** 2)


class FusedDDPMStep:
    """:meth:`diffusers.DDPMScheduler.step` (epsilon prediction, no clipping) as per-step coefficients.

    ``x_{t-1} = a_t x_t - b_t eps + s_t z``, with ``a_t``, ``b_t``, ``s_t`` computed once from the scheduler's own
    ``alphas_cumprod``, ``previous_timestep`` and ``_get_variance`` (its schedule, its variance type), and ``z``
    drawn as the scheduler draws it (``torch.randn`` of the sample's shape from ``generator``, none at t = 0). One
    step is then three in-place tensor operations instead of the scheduler's dozen plus Python bookkeeping; the
    result equals the scheduler's step up to float rounding (checked in the tests).

    Parameters
    ----------
    scheduler
        A :class:`diffusers.DDPMScheduler`; ``set_timesteps(num_inference_steps)`` is called on it.
    num_inference_steps
        Reverse steps.
    x0_bounds
        ``(low, high)`` per-dimension bounds of the step's ``x_0`` estimate (``x_0 = (x_t - sqrt(1 - alpha_bar_t)
        eps) / sqrt(alpha_bar_t)``, clipped, then the posterior mean ``c_0 x_0 + c_t x_t``); None: no clipping (the
        scheduler's step with ``clip_sample=False``).
    """

    def __init__(self, scheduler, num_inference_steps: int, x0_bounds: tuple | None = None) -> None:
        config = scheduler.config
        if config.prediction_type != "epsilon" or config.clip_sample or getattr(config, "thresholding", False):
            raise ValueError("FusedDDPMStep needs epsilon prediction without clipping or thresholding")
        if config.variance_type not in ("fixed_small", "fixed_large"):
            raise ValueError(f"FusedDDPMStep supports fixed_small / fixed_large variances, not {config.variance_type}")
        scheduler.set_timesteps(int(num_inference_steps))
        self.timesteps = scheduler.timesteps
        coefficients, posterior = [], []
        for t in self.timesteps.tolist():
            prev = scheduler.previous_timestep(t)
            alpha_prod = scheduler.alphas_cumprod[t].double()
            alpha_prod_prev = scheduler.alphas_cumprod[prev].double() if prev >= 0 else scheduler.one.double()
            beta_prod, beta_prod_prev = 1 - alpha_prod, 1 - alpha_prod_prev
            current_alpha = alpha_prod / alpha_prod_prev
            original_coeff = alpha_prod_prev.sqrt() * (1 - current_alpha) / beta_prod
            sample_coeff = current_alpha.sqrt() * beta_prod_prev / beta_prod
            a = original_coeff / alpha_prod.sqrt() + sample_coeff
            b = original_coeff * beta_prod.sqrt() / alpha_prod.sqrt()
            s = float(scheduler._get_variance(t).double().sqrt()) if t > 0 else 0.0
            coefficients.append((float(a), float(b), s))
            posterior.append(
                (float(alpha_prod.sqrt()), float(beta_prod.sqrt()), float(original_coeff), float(sample_coeff))
            )
        self.coefficients = coefficients
        self.posterior = posterior
        self.x0_bounds = x0_bounds

    def __call__(self, index: int, eps: torch.Tensor, x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        """``x_{t-1}`` from ``x_t`` (overwritten in place) and the predicted noise at step ``index``."""
        a, b, s = self.coefficients[index]
        if self.x0_bounds is None:
            x.mul_(a).sub_(eps, alpha=b)
        else:
            sqrt_alpha_prod, sqrt_beta_prod, original_coeff, sample_coeff = self.posterior[index]
            x0 = torch.clamp((x - sqrt_beta_prod * eps) / sqrt_alpha_prod, *self.x0_bounds)
            x.mul_(sample_coeff).add_(x0, alpha=original_coeff)
        if s > 0:
            x.add_(torch.randn(x.shape, generator=generator, dtype=x.dtype), alpha=s)
        return x


def reverse_diffusion(
    predict, scheduler, x: torch.Tensor, generator: torch.Generator, num_inference_steps: int, x0_bounds=None
):
    """Run the reverse process from ``x`` (pure noise) with ``predict(x_t, t) -> eps``; returns ``x_0``.

    The steps are the scheduler's, applied through :class:`FusedDDPMStep` (``x`` is not modified; ``x0_bounds``
    clip each step's ``x_0`` estimate, see there).
    """
    step = FusedDDPMStep(scheduler, num_inference_steps, x0_bounds)
    x = x.clone()
    for index, t in enumerate(step.timesteps):
        step(index, predict(x, t), x, generator)
    return x


@torch.no_grad()
def sample_network(
    network: ConditionalNoiseMLP,
    scheduler,
    conditions: Mapping[str, torch.Tensor],
    masks: Mapping[str, torch.Tensor],
    *,
    n_rows: int,
    n_samples: int,
    generator: torch.Generator,
    num_inference_steps: int,
    x0_bounds: tuple | None = None,
) -> torch.Tensor:
    """``n_samples`` generations per row, ``(n_samples, n_rows, n_features)`` (standardised units).

    The condition embeddings (independent of ``x_t`` and ``t``) are computed once, not at every step, and the
    trunk runs as :class:`~cfmd.models.nn.StackedNoiseTrunks` of one member (BatchNorm folded, preallocated
    buffers).
    """
    was_training = network.training
    network.eval()
    rep = {k: v.repeat(n_samples, 1) for k, v in conditions.items()}
    rep_masks = {k: v.repeat(n_samples) for k, v in masks.items()}
    c_emb = network.embed_conditions(rep, rep_masks, batch_size=n_rows * n_samples)
    x = torch.randn((n_rows * n_samples, network.n_features), generator=generator)
    scheduler.set_timesteps(int(num_inference_steps))
    trunk = StackedNoiseTrunks([network]).session(c_emb.unsqueeze(0), scheduler.timesteps)

    def predict(x_t, t):
        return trunk(x_t, t.reshape(1))[0]

    out = reverse_diffusion(predict, scheduler, x, generator, num_inference_steps, x0_bounds)
    network.train(was_training)
    return out.reshape(n_samples, n_rows, -1)


def _rows(data: Mapping, rows: torch.Tensor, names: Sequence[str] | None = None) -> dict:
    names = list(data["conditions"]) if names is None else list(names)
    return {
        "target": data["target"][rows],
        "conditions": {k: data["conditions"][k][rows] for k in names},
        "masks": {k: data["masks"][k][rows] for k in names},
    }


def fit_noise_network(
    network: ConditionalNoiseMLP,
    scheduler,
    train: Mapping,
    validation: Mapping,
    *,
    max_epochs: int,
    batch_size: int,
    lr: float,
    validate_every: int,
    patience: int,
    seed: int,
    random_masks: bool,
    num_inference_steps: int,
    x0_bounds: tuple | None = None,
) -> dict:
    """Train one noise network: Adam on the noise MSE, early stopping on fully denoised validation samples.

    ``x0_bounds`` clip the validation denoising's steps as generation does (see :class:`FusedDDPMStep`).

    Every ``validate_every`` epochs the validation patients are fully denoised (one generation each, a fixed seed) and the MSE to their true target is the early-stopping criterion (the seed's);
    the best state is restored. Returns the history (``train_loss``, ``validation_mse``, ``best_epoch``).
    """
    generator = torch.Generator().manual_seed(int(seed))
    optimiser = torch.optim.Adam(network.parameters(), lr=lr)
    n = train["target"].shape[0]
    history = {"train_loss": [], "validation_epoch": [], "validation_mse": [], "best_epoch": -1}
    best, best_state, waited = math.inf, None, 0
    for epoch in range(int(max_epochs)):
        network.train()
        order = torch.randperm(n, generator=generator)
        total = 0.0
        for start in range(0, n, batch_size):
            rows = order[start : start + batch_size]
            if rows.numel() < 2:  # BatchNorm needs two rows
                continue
            loss = noise_loss(network, scheduler, _rows(train, rows), generator, random_masks)
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
            total += loss.item() * rows.numel()
        history["train_loss"].append(total / n)
        if (epoch + 1) % validate_every and epoch + 1 != max_epochs:
            continue
        denoised = sample_network(
            network,
            scheduler,
            validation["conditions"],
            validation["masks"],
            n_rows=validation["target"].shape[0],
            n_samples=1,
            generator=torch.Generator().manual_seed(int(seed) + 1),
            num_inference_steps=num_inference_steps,
            x0_bounds=x0_bounds,
        )[0]
        mse = float(torch.mean((denoised - validation["target"]) ** 2))
        history["validation_epoch"].append(epoch + 1)
        history["validation_mse"].append(mse)
        if mse < best:
            best, best_state, waited, history["best_epoch"] = mse, copy.deepcopy(network.state_dict()), 0, epoch + 1
        else:
            waited += 1
            if waited >= patience:
                break
    if best_state is not None:
        network.load_state_dict(best_state)
    network.eval()
    history["best_validation_mse"] = best
    return history
