"""Tools: fit the structured latent, impute, evaluate, audit."""

__all__: list[str] = []
