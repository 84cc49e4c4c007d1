"""Neural-network building blocks (plain :mod:`torch` modules) used by the models."""

from ._fingerprint import expression_weighted_fingerprint

__all__ = ["expression_weighted_fingerprint"]
