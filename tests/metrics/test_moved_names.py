"""The statistics moved from cfmd.tl to cfmd.metrics: the old names still resolve, with a FutureWarning."""

import pytest

import cfmd
import cfmd.metrics
from cfmd.tl import _MOVED_TO_METRICS


@pytest.mark.parametrize("name", _MOVED_TO_METRICS)
def test_tl_name_warns_and_returns_metrics_object(name):
    with pytest.warns(FutureWarning, match=f"cfmd.metrics.{name}"):
        obj = getattr(cfmd.tl, name)
    assert obj is getattr(cfmd.metrics, name)
    assert name not in cfmd.tl.__all__


def test_metrics_is_a_lazy_subpackage():
    assert "metrics" in cfmd.__all__
    assert cfmd.metrics.slice_metrics.__module__ == "cfmd.metrics._r2"
