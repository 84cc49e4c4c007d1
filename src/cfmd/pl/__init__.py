"""Plotting: latent UMAPs, leave-one-chromosome-out bars, reconstruction-utility scatters."""

__all__: list[str] = []
