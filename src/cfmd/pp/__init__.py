"""Preprocessing: rank-value tokenisation and foundation-model teacher embeddings."""

__all__: list[str] = []
