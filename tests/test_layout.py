import anndata as ad
import mudata as md
import numpy as np
import pytest
import torch

import cfmd
from cfmd import InvalidInputError, LatentLayout, Slice


def test_cfmd328_matches_the_paper():
    layout = LatentLayout.cfmd328()
    assert layout.n_dims == 328
    expected = {
        "prolif": (0, 1, "rna"),
        "pathway": (1, 201, "geneformer"),
        "ctx": (201, 232, "zero"),
        "residual": (232, 248, "esm"),
        "meth": (248, 296, "regional_methylation"),
        "cnv": (296, 328, "zero"),
    }
    assert {s.name: (s.start, s.stop, s.strategy) for s in layout} == expected
    pathway = layout["pathway"]
    assert len(pathway.groups) == 50 and pathway.group_size == 4
    assert pathway.groups[0] == "HALLMARK_TNFA_SIGNALING_VIA_NFKB"
    assert pathway.group_slice("HALLMARK_HYPOXIA") == slice(5, 9)
    assert pathway.group_slice(49) == slice(197, 201)


def test_slices_are_sorted_and_queryable():
    layout = LatentLayout([Slice("b", 2, 5, "esm"), {"name": "a", "start": 0, "stop": 2, "strategy": "rna"}])
    assert layout.names == ["a", "b"]
    assert "a" in layout and "c" not in layout
    assert layout.strategies == {"a": "rna", "b": "esm"}
    assert [s.name for s in layout.with_strategy("esm")] == ["b"]
    np.testing.assert_array_equal(layout.mask("b"), [False, False, True, True, True])
    np.testing.assert_array_equal(layout["b"].indices, [2, 3, 4])


def test_from_sizes_builds_contiguous_layout():
    layout = LatentLayout.from_sizes([("x", 3, "geneformer"), ("y", 2, "zero")])
    assert [(s.start, s.stop) for s in layout] == [(0, 3), (3, 5)]
    assert LatentLayout.from_sizes({"x": (3, "geneformer"), "y": (2, "zero")}) == layout


@pytest.mark.parametrize(
    ("slices", "message"),
    [
        ([Slice("a", 0, 3), Slice("b", 2, 5)], "overlap"),
        ([Slice("a", 0, 2), Slice("b", 3, 5)], r"gap: dimensions \[2, 3\)"),
        ([Slice("a", 1, 3)], r"gap: dimensions \[0, 1\)"),
        ([Slice("a", 0, 2), Slice("a", 2, 4)], "unique"),
        ([], "at least one slice"),
    ],
)
def test_invalid_layouts(slices, message):
    with pytest.raises(InvalidInputError, match=message):
        LatentLayout(slices)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"name": "a", "start": -1, "stop": 2}, "start"),
        ({"name": "a", "start": 3, "stop": 3}, "stop"),
        ({"name": "a", "start": 0, "stop": 2.5}, "integer"),
        ({"name": "", "start": 0, "stop": 2}, "name"),
        ({"name": "a", "start": 0, "stop": 2, "strategy": ""}, "strategy"),
        ({"name": "a", "start": 0, "stop": 6, "groups": ("g1", "g2", "g3", "g4")}, "equal groups"),
    ],
)
def test_invalid_slices(kwargs, message):
    with pytest.raises(InvalidInputError, match=message):
        Slice(**kwargs)


def test_width_checks():
    layout = LatentLayout.cfmd328()
    layout.check_width(328)
    with pytest.raises(InvalidInputError, match="has 300 dimensions but its LatentLayout describes 328"):
        layout.check_width(300)
    with pytest.raises(InvalidInputError, match="n_dims"):
        LatentLayout(list(layout), n_dims=330)
    with pytest.raises(InvalidInputError, match="no slice 'nope'"):
        layout["nope"]


def test_take_and_put_numpy_and_torch():
    layout = LatentLayout.from_sizes([("x", 2, "rna"), ("y", 3, "esm")])
    arr = np.arange(10.0).reshape(2, 5)
    np.testing.assert_array_equal(layout.take(arr, "y"), arr[:, 2:])
    out = layout.put(arr.copy(), "x", np.zeros((2, 2)))
    np.testing.assert_array_equal(out[:, :2], 0)
    np.testing.assert_array_equal(out[:, 2:], arr[:, 2:])
    t = torch.arange(10.0).reshape(2, 5)
    assert torch.equal(layout.take(t, "x"), t[:, :2])
    with pytest.raises(InvalidInputError, match="must have 3 columns"):
        layout.put(arr.copy(), "y", np.zeros((2, 2)))
    with pytest.raises(InvalidInputError, match="dimensions"):
        layout.take(np.zeros((2, 4)), "x")


def test_replace_strategies_returns_new_layout():
    layout = LatentLayout.cfmd328()
    no_esm = layout.replace_strategies(residual="zero")
    assert no_esm["residual"].strategy == "zero"
    assert layout["residual"].strategy == "esm"
    with pytest.raises(InvalidInputError):
        layout.replace_strategies(nope="zero")


def test_uns_round_trip_through_h5mu(tmp_path):
    layout = LatentLayout.cfmd328()
    rna = ad.AnnData(np.ones((3, 2), dtype=np.float32))
    mdata = md.MuData({"rna": rna})
    mdata.obsm["X_latent"] = np.zeros((3, 328), dtype=np.float32)
    layout.write(mdata, "X_latent")
    path = tmp_path / "x.h5mu"
    mdata.write(path)
    back = md.read_h5mu(path)
    assert cfmd.LatentLayout.from_mudata(back, "X_latent") == layout
    assert LatentLayout.from_dict(layout.to_dict()) == layout


def test_write_checks_width_and_missing_layout_errors():
    mdata = md.MuData({"rna": ad.AnnData(np.ones((3, 2), dtype=np.float32))})
    mdata.obsm["X_latent"] = np.zeros((3, 10), dtype=np.float32)
    with pytest.raises(InvalidInputError, match="10 dimensions"):
        LatentLayout.cfmd328().write(mdata, "X_latent")
    assert "X_latent_layout" not in mdata.uns
    with pytest.raises(InvalidInputError, match="X_latent_layout"):
        LatentLayout.from_mudata(mdata, "X_latent")
