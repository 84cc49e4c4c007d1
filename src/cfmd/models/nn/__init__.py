"""Neural-network building blocks (plain :mod:`torch` modules) used by the models."""

__all__: list[str] = []
