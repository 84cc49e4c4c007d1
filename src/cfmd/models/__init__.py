"""scvi-tools models: StructuredVAE, CFMD and baselines."""

__all__: list[str] = []
