"""cfmd._expression: the one home of the expression transforms (numpy and torch agree)."""

import numpy as np
import pytest
import torch
from scipy import sparse

from cfmd._expression import COUNTS_TARGET_SUM, fingerprint_log_expression, log_normalise


@pytest.fixture
def counts():
    X = np.random.default_rng(0).poisson(3.0, size=(5, 7)).astype(np.float64)
    X[2] = 0.0  # a patient without counts
    return X


def test_log_normalise_counts_is_log1p_cp10k_and_numpy_matches_torch(counts):
    expected = np.zeros_like(counts)
    for i, row in enumerate(counts):
        if row.sum() > 0:
            expected[i] = np.log1p(row / row.sum() * COUNTS_TARGET_SUM)
    np.testing.assert_allclose(log_normalise(counts, "counts"), expected, rtol=1e-12)
    np.testing.assert_allclose(log_normalise(sparse.csr_matrix(counts), "counts"), expected, rtol=1e-12)
    tensor = log_normalise(torch.as_tensor(counts, dtype=torch.float32), "counts")
    assert isinstance(tensor, torch.Tensor) and tensor.dtype == torch.float32
    np.testing.assert_allclose(tensor.numpy(), expected, rtol=1e-5)
    assert not log_normalise(counts, "counts")[2].any()


@pytest.mark.parametrize("scale", ["log2", "zscore"])
def test_log_normalise_keeps_log_scales_as_given(counts, scale):
    np.testing.assert_array_equal(log_normalise(counts, scale), counts)
    x = torch.as_tensor(counts)
    assert log_normalise(x, scale) is x


def test_fingerprint_log_expression_is_log2_of_counts_only(counts):
    np.testing.assert_allclose(fingerprint_log_expression(counts, "counts"), np.log2(counts + 1.0))
    np.testing.assert_allclose(
        fingerprint_log_expression(torch.as_tensor(counts), "counts").numpy(), np.log2(counts + 1.0)
    )
    assert fingerprint_log_expression(counts, "log2") is counts
