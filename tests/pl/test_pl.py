"""cfmd.pl: every plot renders to PNG, draws the right artists, follows the shared conventions, rejects bad input."""

import matplotlib

matplotlib.use("Agg")

import anndata as ad
import matplotlib.pyplot as plt
import mudata as md
import numpy as np
import pandas as pd
import pytest
from matplotlib.figure import Figure
from matplotlib.patches import Ellipse, Rectangle

import cfmd
from cfmd import InvalidInputError
from cfmd.datasets import CHROMOSOMES
from cfmd.pl._base import OKABE_ITO, PLOT_PARAMS, categorical_palette, plot_options

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


def assert_png(path):
    assert path.is_file()
    data = path.read_bytes()
    assert data[:8] == PNG_MAGIC
    assert len(data) > 2000


def by_gid(axis, prefix):
    return [a for a in axis.get_children() if (a.get_gid() or "").startswith(prefix)]


def tiny_mudata():
    return md.MuData({"rna": ad.AnnData(np.zeros((4, 3), dtype=np.float32))})


def legend_texts(axis):
    legend = axis.get_legend()
    assert legend is not None
    return [t.get_text() for t in legend.get_texts()]


# ---------------------------------------------------------------------------------------------- tables
@pytest.fixture
def loco_table():
    rng = np.random.default_rng(0)
    rows = []
    for c in CHROMOSOMES:
        rows.append({"chromosome": c, "decoder": "regional", "r2": 0.75 + rng.normal(0, 0.01), "r2_random": 0.762})
        rows.append({"chromosome": c, "decoder": "pointwise", "r2": 0.40 + rng.normal(0, 0.03), "r2_random": 0.519})
    table = pd.DataFrame(rows).sample(frac=1.0, random_state=1).reset_index(drop=True)  # genomic order lost
    table["delta_r2"] = table["r2_random"] - table["r2"]
    return table


@pytest.fixture
def table3():
    return pd.DataFrame(
        [
            ("Zero-mask", np.nan, np.nan, np.nan, 0.600, 0.585, 0.615),
            ("PESD StudentEncoder", 0.864, 0.851, 0.876, 0.595, 0.580, 0.610),
            ("Ridge", 0.638, 0.622, 0.654, 0.610, 0.596, 0.624),
            ("PoE VAE (RNA-only)", 0.710, 0.695, 0.725, 0.615, 0.601, 0.629),
            ("CFMD (Full)", 0.774, 0.760, 0.788, 0.642, 0.628, 0.655),
        ],
        columns=["method", "latent_r2", "latent_r2_low", "latent_r2_high", "c_index", "c_index_low", "c_index_high"],
    )


@pytest.fixture
def table1():
    layout = cfmd.LatentLayout.cfmd328()
    rows = []
    for method, shift in (("CFMD", 0.0), ("Ridge", -0.1)):
        for s in layout:
            r2 = 0.7 + shift if s.strategy != "zero" else -0.01
            row = {"method": method, "slice": s.name, "kind": "slice", "start": s.start, "dims": s.dim, "r2": r2}
            row.update(r2_low=r2 - 0.02, r2_high=r2 + 0.02)
            row["pearson_r"] = 0.96 + shift / 10 if s.dim == 1 else np.nan
            rows.append(row)
        rows.append({"method": method, "slice": "macro", "kind": "macro", "dims": 264, "r2": 0.55 + shift})
        rows.append({"method": method, "slice": "full", "kind": "full", "dims": 328, "r2": 0.77 + shift})
    table = pd.DataFrame(rows)
    table["r2_low"] = table["r2_low"].fillna(table["r2"] - 0.01)
    table["r2_high"] = table["r2_high"].fillna(table["r2"] + 0.01)
    return table.iloc[::-1].reset_index(drop=True)  # reversed: the plot must restore layout order


# ---------------------------------------------------------------------------------------------- base
def test_shared_docstring_fragments_are_substituted():
    for function in (cfmd.pl.loco, cfmd.pl.reconstruction_utility, cfmd.pl.slice_r2, cfmd.pl.latent_umap):
        doc = function.__doc__
        assert "{plot" not in doc and "{ax_param}" not in doc
        for name in ("ax\n", "figsize\n", "dpi\n", "return_fig\n", "save\n", "Returns\n-------"):
            assert name in doc, (function.__name__, name)
    assert PLOT_PARAMS.splitlines()[0] == "ax"


def test_palette_is_okabe_ito_then_extended():
    assert categorical_palette(3) == list(OKABE_ITO[:3])
    assert len(set(categorical_palette(20))) == 20
    assert len(categorical_palette(70)) == 70


def test_plot_options_are_validated():
    fig, axis = plt.subplots()
    with pytest.raises(InvalidInputError, match="`ax`"):
        plot_options(ax="axes", figsize=None, dpi=None, return_fig=False, save=None)
    with pytest.raises(InvalidInputError, match="2 matplotlib Axes"):
        plot_options(ax=axis, figsize=None, dpi=None, return_fig=False, save=None, n_panels=2)
    with pytest.raises(InvalidInputError, match="`figsize`"):
        plot_options(ax=None, figsize=(4, -1), dpi=None, return_fig=False, save=None)
    with pytest.raises(InvalidInputError, match="`figsize` must be two positive numbers"):
        plot_options(ax=None, figsize=("wide", 3), dpi=None, return_fig=False, save=None)
    with pytest.raises(InvalidInputError, match="`dpi`"):
        plot_options(ax=None, figsize=None, dpi=0, return_fig=False, save=None)
    with pytest.raises(InvalidInputError, match="extension"):
        plot_options(ax=None, figsize=None, dpi=None, return_fig=False, save="figure.unknown")
    options = plot_options(ax=None, figsize=[4, 3], dpi=200, return_fig=True, save="out/fig.pdf")
    assert options.figsize == (4.0, 3.0) and options.save.suffix == ".pdf"


# ---------------------------------------------------------------------------------------------- loco
def test_loco_draws_bars_in_genomic_order_with_reference_lines(loco_table, tmp_path):
    path = tmp_path / "loco.png"
    fig = cfmd.pl.loco(loco_table, negative_control=0.02, save=path, return_fig=True)
    assert_png(path)
    assert isinstance(fig, Figure)
    (axis,) = fig.axes
    assert [t.get_text() for t in axis.get_xticklabels()] == list(CHROMOSOMES)
    regional = by_gid(axis, "loco-bar-regional")
    pointwise = by_gid(axis, "loco-bar-pointwise")
    assert len(regional) == len(pointwise) == 23
    assert all(isinstance(bar, Rectangle) for bar in regional + pointwise)
    # bars follow the chromosome order, regional left of point-wise in each group
    truth = loco_table.set_index(["decoder", "chromosome"])["r2"]
    heights = [bar.get_height() for bar in regional]
    np.testing.assert_allclose(heights, [truth[("regional", c)] for c in CHROMOSOMES])
    assert all(r.get_x() < p.get_x() < r.get_x() + 1 for r, p in zip(regional, pointwise))
    # reference lines at each decoder's random-split R^2, in the decoder's colour
    (ref_regional,) = by_gid(axis, "loco-reference-regional")
    (ref_pointwise,) = by_gid(axis, "loco-reference-pointwise")
    assert ref_regional.get_ydata()[0] == pytest.approx(0.762)
    assert ref_pointwise.get_ydata()[0] == pytest.approx(0.519)
    assert matplotlib.colors.same_color(ref_regional.get_color(), regional[0].get_facecolor())
    assert matplotlib.colors.same_color(ref_pointwise.get_color(), pointwise[0].get_facecolor())
    (control,) = by_gid(axis, "loco-negative-control")
    assert control.get_ydata()[0] == pytest.approx(0.02) and control.get_linestyle() == "--"
    assert axis.get_xlabel() == "Held-out chromosome" and "R\u00b2" in axis.get_ylabel()
    texts = legend_texts(axis)
    assert len(texts) == 5
    assert texts[0].startswith("Regional decoder, LOCO (mean \u0394R\u00b2 =")
    assert any(t.startswith("Shuffled positions") for t in texts)


def test_loco_reads_mudata_uns_and_accepts_chromosome_spellings(loco_table):
    mdata = tiny_mudata()
    table = loco_table.copy()
    table["chromosome"] = ["chr" + c if i % 2 else c for i, c in enumerate(table["chromosome"])]
    mdata.uns["cfmd_loco"] = {"per_chromosome": table, "summary": {"r2_shuffled_positions": 0.03}}
    fig = cfmd.pl.loco(mdata, return_fig=True)
    axis = fig.axes[0]
    assert [t.get_text() for t in axis.get_xticklabels()] == list(CHROMOSOMES)
    assert by_gid(axis, "loco-negative-control")[0].get_ydata()[0] == pytest.approx(0.03)
    fig = cfmd.pl.loco(mdata, negative_control=False, decoders=["regional"], return_fig=True)
    assert not by_gid(fig.axes[0], "loco-negative-control")
    assert not by_gid(fig.axes[0], "loco-bar-pointwise")


def test_loco_draws_into_given_axes(loco_table):
    fig, (left, right) = plt.subplots(1, 2)
    n_figures = len(plt.get_fignums())
    assert cfmd.pl.loco(loco_table, ax=right) is None
    assert len(plt.get_fignums()) == n_figures
    assert len(by_gid(right, "loco-bar-regional")) == 23 and not by_gid(left, "loco-")
    assert cfmd.pl.loco(loco_table, ax=left, return_fig=True) is fig
    assert len(by_gid(left, "loco-bar-regional")) == 23


def test_plots_leave_their_input_unchanged(loco_table, table1, table3):
    loco_table["chromosome"] = "chr" + loco_table["chromosome"]  # normalised for the plot, not in the caller's table
    for function, table in (
        (cfmd.pl.loco, loco_table),
        (cfmd.pl.slice_r2, table1),
        (cfmd.pl.reconstruction_utility, table3),
    ):
        before = table.copy()
        function(table)
        pd.testing.assert_frame_equal(table, before)


def test_loco_rejects_bad_input(loco_table):
    with pytest.raises(InvalidInputError, match="r2_random"):
        cfmd.pl.loco(loco_table.drop(columns="r2_random"))
    with pytest.raises(InvalidInputError, match="'transformer'"):
        cfmd.pl.loco(loco_table, decoders=["regional", "transformer"])
    varying = loco_table.copy()
    varying.loc[varying["decoder"] == "regional", "r2_random"] = np.linspace(0.7, 0.8, 23)
    with pytest.raises(InvalidInputError, match="one value per decoder"):
        cfmd.pl.loco(varying)
    with pytest.raises(InvalidInputError, match="more than one row"):
        cfmd.pl.loco(pd.concat([loco_table, loco_table.iloc[:1]]))
    mdata = tiny_mudata()
    with pytest.raises(InvalidInputError, match="cfmd_loco"):
        cfmd.pl.loco(mdata)
    with pytest.raises(InvalidInputError, match="negative control|no shuffled-position"):
        cfmd.pl.loco(loco_table, negative_control=True)


# ---------------------------------------------------------------------------------------------- reconstruction-utility
def test_reconstruction_utility_points_and_reference_line(table3, tmp_path):
    path = tmp_path / "ru.png"
    fig = cfmd.pl.reconstruction_utility(table3, save=path, return_fig=True)
    assert_png(path)
    (axis,) = fig.axes
    points = by_gid(axis, "method-point-")
    assert len(points) == 4  # the zero-mask has no latent R^2: a line, not a point
    assert not by_gid(axis, "method-point-Zero-mask")
    (cfmd_point,) = by_gid(axis, "method-point-CFMD (Full)")
    np.testing.assert_allclose(cfmd_point.get_offsets()[0], [0.774, 0.642])
    (line,) = by_gid(axis, "reference-line")
    assert line.get_ydata()[0] == pytest.approx(0.600) and line.get_linestyle() == "--"
    assert len(axis.containers) == 4  # one error-bar container per point
    labels = {a.get_text() for a in by_gid(axis, "method-label-")}
    assert labels == {"PESD StudentEncoder", "Ridge", "PoE VAE (RNA-only)", "CFMD (Full)"}
    assert axis.get_xlabel().startswith("Latent R\u00b2") and "C-index" in axis.get_ylabel()
    texts = legend_texts(axis)
    assert texts[0].startswith("Zero-mask (C = 0.600")
    assert "CFMD (Full)" in texts


def test_reconstruction_utility_ellipses_and_mudata(table3):
    mdata = tiny_mudata()
    # as tl writes it for one more release: the bounds plus their deprecated `*_ci_*` copies (pl reads `*_low/_high`)
    with_copies = table3.assign(
        c_index_ci_low=table3["c_index_low"] - 1.0, c_index_ci_high=table3["c_index_high"] + 1.0
    )
    mdata.uns["cfmd_benchmark"] = {"table3": with_copies}
    fig = cfmd.pl.reconstruction_utility(
        mdata, interval_style="ellipse", methods=["CFMD (Full)", "Ridge"], return_fig=True
    )
    axis = fig.axes[0]
    ellipses = [p for p in axis.patches if isinstance(p, Ellipse)]
    assert len(ellipses) == 2
    # the ellipses span the `c_index_low/_high` interval, not the (deliberately wider) deprecated copies
    assert max(e.height for e in ellipses) < 1.0
    assert len(by_gid(axis, "method-point-")) == 2
    assert not axis.containers
    fig = cfmd.pl.reconstruction_utility(table3, reference=None, interval_style=None, labels=False, return_fig=True)
    assert not by_gid(fig.axes[0], "reference-line") and not by_gid(fig.axes[0], "method-label-")


def test_reconstruction_utility_rejects_bad_input(table3):
    with pytest.raises(InvalidInputError, match="c_index_high"):
        cfmd.pl.reconstruction_utility(table3.drop(columns="c_index_high"))
    # pl reads only `{metric}_low/_high`; a table with only the deprecated copies says what to rename
    deprecated_only = table3.rename(columns={"c_index_low": "c_index_ci_low", "c_index_high": "c_index_ci_high"})
    with pytest.raises(InvalidInputError, match="deprecated.*'c_index_ci_low'.*rename"):
        cfmd.pl.reconstruction_utility(deprecated_only)
    with pytest.raises(InvalidInputError, match="'random_forest'"):
        cfmd.pl.reconstruction_utility(table3, reference="random_forest")
    with pytest.raises(InvalidInputError, match="'Nope'"):
        cfmd.pl.reconstruction_utility(table3, methods=["CFMD (Full)", "Nope"])
    with pytest.raises(InvalidInputError, match="`ci`"), pytest.warns(FutureWarning, match="interval_style"):
        cfmd.pl.reconstruction_utility(table3, ci="cloud")
    with pytest.raises(InvalidInputError, match="`interval_style`"):
        cfmd.pl.reconstruction_utility(table3, interval_style="cloud")


def test_reconstruction_utility_ci_is_a_deprecated_alias_of_interval_style(table3):
    with pytest.warns(FutureWarning, match="renamed `interval_style=`"):
        fig = cfmd.pl.reconstruction_utility(table3, ci="ellipse", return_fig=True)
    assert [p for p in fig.axes[0].patches if isinstance(p, Ellipse)]


# ---------------------------------------------------------------------------------------------- slice R^2
def test_slice_r2_layout_order_points_and_pearson(table1, tmp_path):
    path = tmp_path / "slices.png"
    fig = cfmd.pl.slice_r2(table1, save=path, return_fig=True)
    assert_png(path)
    (axis,) = fig.axes
    ticks = [t.get_text().split("\n")[0] for t in axis.get_xticklabels()]
    assert ticks == ["prolif", "pathway", "ctx", "residual", "meth", "cnv", "macro", "full latent"]
    for method in ("CFMD", "Ridge"):
        (points,) = by_gid(axis, f"slice-r2-points-{method}")
        assert len(points.get_offsets()) == 8
    cfmd_values = by_gid(axis, "slice-r2-points-CFMD")[0].get_offsets()[:, 1]
    np.testing.assert_allclose(cfmd_values[[1, 2, 7]], [0.7, -0.01, 0.77])
    pearson = [a.get_text() for a in by_gid(axis, "pearson-annotation")]
    assert pearson == ["r = 0.95", "r = 0.96"]  # methods in table order (the table is reversed: Ridge first)
    assert legend_texts(axis) == ["Ridge", "CFMD"]
    assert axis.get_xlabel() == "Latent slice" and axis.get_ylabel().startswith("R\u00b2")
    assert len(axis.containers) == 2  # one error-bar container per method
    # without a `start` column the order comes from `layout=`
    fig = cfmd.pl.slice_r2(table1.drop(columns="start"), layout=cfmd.LatentLayout.cfmd328(), return_fig=True)
    assert [t.get_text().split("\n")[0] for t in fig.axes[0].get_xticklabels()] == ticks


def test_slice_r2_bars_selection_and_uns(table1):
    fig = cfmd.pl.slice_r2(table1, style="bar", methods=["Ridge"], slices=["meth", "pathway"], return_fig=True)
    axis = fig.axes[0]
    bars = by_gid(axis, "slice-r2-bar-Ridge")
    assert len(bars) == 2 and all(isinstance(bar, Rectangle) for bar in bars)
    np.testing.assert_allclose([bar.get_height() for bar in bars], [0.6, 0.6])
    assert not by_gid(axis, "slice-r2-bar-CFMD")
    assert [t.get_text().split("\n")[0] for t in axis.get_xticklabels()] == ["pathway", "meth"]
    # one method's table as cfmd.metrics.bootstrap_slice_metrics writes it (no method column, bounds + *_ci_* copies)
    one = table1[table1["method"] == "CFMD"].drop(columns="method")
    one = one.assign(r2_ci_low=one["r2_low"], r2_ci_high=one["r2_high"])
    mdata = tiny_mudata()
    mdata.uns["cfmd_evaluation"] = {"slices": one}
    fig = cfmd.pl.slice_r2(mdata, key="cfmd_evaluation", return_fig=True)
    axis = fig.axes[0]
    assert axis.get_legend() is None
    assert len(by_gid(axis, "slice-r2-points-")[0].get_offsets()) == 8
    assert len(axis.containers) == 1


def test_slice_r2_rejects_bad_input(table1):
    with pytest.raises(InvalidInputError, match="'Nope'"):
        cfmd.pl.slice_r2(table1, methods=["CFMD", "Nope"])
    with pytest.raises(InvalidInputError, match="'mystery'"):
        cfmd.pl.slice_r2(table1, slices=["meth", "mystery"])
    with pytest.raises(InvalidInputError, match="'kind'"):
        cfmd.pl.slice_r2(table1.drop(columns="kind"))
    with pytest.raises(InvalidInputError, match="r2_high"):
        cfmd.pl.slice_r2(table1.drop(columns="r2_high"))
    deprecated_only = table1.rename(columns={"r2_low": "r2_ci_low", "r2_high": "r2_ci_high"})
    with pytest.raises(InvalidInputError, match="deprecated.*'r2_ci_low'.*'r2_low'"):
        cfmd.pl.slice_r2(deprecated_only)
    mdata = tiny_mudata()
    with pytest.raises(InvalidInputError, match="cfmd_benchmark"):
        cfmd.pl.slice_r2(mdata)


# ---------------------------------------------------------------------------------------------- latent UMAP
@pytest.fixture(scope="module")
def umap_mdata():
    mdata = cfmd.datasets.synthetic_cohort(n_patients=120, n_genes=300, seed=0)
    rng = np.random.default_rng(0)
    codes = mdata.obs["cancer_type"].cat.codes.to_numpy()
    centres = rng.normal(0.0, 2.0, size=(codes.max() + 1, 328))
    truth = centres[codes] + rng.normal(0.0, 1.0, size=(mdata.n_obs, 328))
    observed = truth.copy()
    observed[~mdata.obs_names.isin(mdata["meth"].obs_names)] = np.nan  # RNA-only patients: NaN rows
    mdata.obsm["X_structured"] = observed
    mdata.obsm["X_cfmd"] = truth + rng.normal(0.0, 0.05, size=truth.shape)
    mdata.obs["split"] = np.where(np.arange(mdata.n_obs) % 3 == 0, "test", "train")
    cfmd.tl.latent_umap(mdata, observed_key="X_structured", imputed_keys="X_cfmd", random_state=0)
    return mdata


@pytest.mark.slow
def test_latent_umap_shares_one_embedding(umap_mdata, tmp_path):
    path = tmp_path / "umap.png"
    fig = cfmd.pl.latent_umap(umap_mdata, save=path, return_fig=True, random_state=0)
    assert_png(path)
    observed_axis, imputed_axis = fig.axes
    n_observed = int(np.isfinite(umap_mdata.obsm["X_structured"]).all(axis=1).sum())
    observed_points = by_gid(observed_axis, "umap-points")[0].get_offsets()
    imputed_points = by_gid(imputed_axis, "umap-points")[0].get_offsets()
    assert len(observed_points) == n_observed < umap_mdata.n_obs == len(imputed_points)
    assert observed_axis.get_xlim() == imputed_axis.get_xlim() and observed_axis.get_ylim() == imputed_axis.get_ylim()
    assert observed_axis.get_title().startswith("Observed (X_structured), n = ")
    assert imputed_axis.get_title() == f"Imputed (X_cfmd), n = {umap_mdata.n_obs}"
    assert observed_axis.get_xlabel() == "UMAP 1" and observed_axis.get_ylabel() == "UMAP 2"
    # the legend is drawn once, listing the cancer types present
    assert observed_axis.get_legend() is None and not fig.legends
    assert legend_texts(imputed_axis) == list(umap_mdata.obs["cancer_type"].cat.categories)
    # same coordinates: an imputed latent (close to the observed one) lands among observed patients of its cancer
    # type: its nearest observed point has its colour (the drawing order is a seeded permutation, so match by colour)
    colours_obs = by_gid(observed_axis, "umap-points")[0].get_facecolors()
    colours_imp = by_gid(imputed_axis, "umap-points")[0].get_facecolors()
    distances = np.linalg.norm(imputed_points[:, None, :] - observed_points[None], axis=2)
    nearest_colour = colours_obs[np.argmin(distances, axis=1)]
    assert np.mean((nearest_colour == colours_imp).all(axis=1)) > 0.95
    # seeded: the same call gives the same coordinates
    again_mdata = umap_mdata.copy()
    cfmd.tl.latent_umap(again_mdata, observed_key="X_structured", imputed_keys="X_cfmd", random_state=0)
    again = cfmd.pl.latent_umap(again_mdata, return_fig=True, random_state=0)
    np.testing.assert_allclose(by_gid(again.axes[1], "umap-points")[0].get_offsets(), imputed_points)


def test_latent_umap_subset_continuous_colour_and_given_axes(umap_mdata):
    fig, axes = plt.subplots(1, 2)
    result = cfmd.pl.latent_umap(umap_mdata, color="os_time", patients=("split", "test"), ax=axes, return_fig=True)
    assert result is fig
    test = (umap_mdata.obs["split"] == "test").to_numpy()
    finite = np.isfinite(umap_mdata.obsm["X_structured"]).all(axis=1)
    assert len(by_gid(axes[0], "umap-points")[0].get_offsets()) == int((test & finite).sum())
    assert len(by_gid(axes[1], "umap-points")[0].get_offsets()) == int(test.sum())
    assert len(fig.axes) == 3  # the two panels and one shared colour bar
    assert fig.axes[2].get_ylabel() == "os_time"
    assert axes[0].get_xlim() == axes[1].get_xlim()
    mask = umap_mdata.obs["cancer_type"].eq("BRCA").to_numpy()
    fig = cfmd.pl.latent_umap(umap_mdata, color=None, patients=mask, return_fig=True)
    assert len(by_gid(fig.axes[1], "umap-points")[0].get_offsets()) == int(mask.sum())


def test_latent_umap_rejects_bad_input(umap_mdata):
    with pytest.raises(InvalidInputError, match="'X_missing'"):
        cfmd.pl.latent_umap(umap_mdata, imputed_key="X_missing")
    with pytest.raises(InvalidInputError, match="'subtype'"):
        cfmd.pl.latent_umap(umap_mdata, color="subtype")
    with pytest.raises(InvalidInputError, match="'holdout'"):
        cfmd.pl.latent_umap(umap_mdata, patients=("split", "holdout"))
    with pytest.raises(InvalidInputError, match="boolean mask"):
        cfmd.pl.latent_umap(umap_mdata, patients=np.arange(umap_mdata.n_obs))
    with pytest.raises(InvalidInputError, match="2 matplotlib Axes"):
        cfmd.pl.latent_umap(umap_mdata, ax=plt.subplots()[1])
    narrow = umap_mdata.copy()
    narrow.obsm["X_cfmd"] = narrow.obsm["X_cfmd"][:, :10]
    with pytest.raises(InvalidInputError, match="as wide as"):
        cfmd.tl.latent_umap(narrow)
    with pytest.raises(InvalidInputError, match=r"cfmd\.tl\.latent_umap\(mdata, observed_key='X_structured'"):
        cfmd.pl.latent_umap(umap_mdata, imputed_key="X_missing")


def test_tl_latent_umap_writes_the_shared_embedding(umap_mdata):
    assert umap_mdata.obsm["X_umap_structured"].shape == umap_mdata.obsm["X_umap_cfmd"].shape == (umap_mdata.n_obs, 2)
    observed = np.isfinite(umap_mdata.obsm["X_structured"]).all(axis=1)
    assert np.array_equal(np.isfinite(umap_mdata.obsm["X_umap_structured"]).all(axis=1), observed)
    assert np.isfinite(umap_mdata.obsm["X_umap_cfmd"]).all()
    record = umap_mdata.uns["cfmd_umap"]
    assert record["observed_key"] == "X_structured" and list(record["imputed_keys"]) == ["X_cfmd"]
    assert record["params"]["random_state"] == 0


@pytest.mark.parametrize("ylim", [(1.0, 0.0), ("low", 1.0), (0.0, float("nan")), (0.0, 0.5, 1.0)])
def test_axis_limits_are_checked_in_one_place_for_every_plot(table1, ylim):
    semantics = pd.DataFrame(
        {"slice": ["meth", "cnv"], "r2_slice_to_modality": [0.6, 0.5], "r2_pca_ceiling": [0.7, 0.6],
         "r2_rna_to_slice": [0.4, 0.3], "r2_rna_to_modality": [0.35, 0.3], "r2_rna_only_vs_full": [0.3, 0.2]}
    )  # fmt: skip
    with pytest.raises(InvalidInputError, match="`ylim` must be \\(low, high\\)"):
        cfmd.pl.slice_r2(table1, ylim=ylim)
    with pytest.raises(InvalidInputError, match="`ylim` must be \\(low, high\\)"):
        cfmd.pl.slice_semantics(semantics, ylim=ylim)
    fig = cfmd.pl.slice_semantics(semantics, ylim=[-0.5, 1], return_fig=True)
    assert fig.axes[0].get_ylim() == (-0.5, 1.0)
    plt.close(fig)
