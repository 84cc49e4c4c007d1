"""Real-file conveniences of ``read_xena`` (issue 13): mutation counts, methylation probes, R-mangled symbols,
patients without survival or RNA, and the messages that point at the options."""

import logging

import numpy as np
import pandas as pd
import pytest
from test_read_xena import PATIENTS, survival_all, survival_frame, write_matrix

from cfmd import LatentLayout
from cfmd._expression import check_expression_scale
from cfmd._validation import InvalidInputError
from cfmd.datasets import illumina_probe_locations, read_xena, repair_r_symbol
from cfmd.tl import split_patients
from cfmd.tl._evaluate import score_methods, survival_data
from cfmd.tl._split import MISSING_STRATUM, split_indices

BARCODES = [f"{p}-01A-11D-A000-01" for p in PATIENTS]


@pytest.fixture
def rna_file(tmp_path):
    values = np.arange(12).reshape(4, 3)
    return write_matrix(
        tmp_path / "rna.tsv.gz", ["TP53", "MKI67", "EGFR", "GAPDH"], [f"{p}-01A-11R-A000-07" for p in PATIENTS], values
    )


@pytest.fixture
def meth_file(tmp_path):
    """Methylation of TCGA-AA-0002 (with RNA) and TCGA-AA-0004 (without RNA)."""
    return write_matrix(
        tmp_path / "meth.tsv", ["TP53", "BRCA1"], ["TCGA.AA.0002", "TCGA.AA.0004"], [[0.1, 0.2], [0.9, 0.8]]
    )


# --------------------------------------------------------------------------- 1. mutation counts


def test_mutation_counts_need_binarize_and_are_binarised(tmp_path):
    counts = write_matrix(tmp_path / "mut.tsv", ["TP53", "KRAS"], BARCODES, [[0, 3, 50], [1, 0, "NA"]])
    with pytest.raises(InvalidInputError, match=r"binary.*counts \(maximum 50\).*`binarize=\['mut'\]`"):
        read_xena({"mut": counts}, survival=None, rna_key=None, scales={"mut": "binary"})
    mdata = read_xena({"mut": counts}, survival=None, rna_key=None, binarize=["mut"])
    X = mdata["mut"].X
    np.testing.assert_array_equal(X[:, 0], [0, 1, 1])
    assert X[1, 1] == 0 and np.isnan(X[2, 1]) and X[0, 1] == 1
    assert mdata["mut"].uns["scale"] == "binary"
    assert mdata["mut"].uns["binarized"]["n_values_changed"] == 2 and mdata["mut"].uns["binarized"]["max_value"] == 50
    assert mdata.uns["read_xena"]["modalities"]["mut"]["binarized"]
    negative = write_matrix(tmp_path / "neg.tsv", ["TP53"], BARCODES, [[0, -1, 2]])
    with pytest.raises(InvalidInputError, match=r"`binarize`.*negative"):
        read_xena({"mut": negative}, survival=None, rna_key=None, binarize=["mut"])
    with pytest.raises(InvalidInputError, match=r"`binarize` lists 'mut'.*scales\['mut'\]='binary'"):
        read_xena({"mut": counts}, survival=None, rna_key=None, binarize=["mut"], scales={"mut": "gistic"})
    with pytest.raises(InvalidInputError, match="binarize"):
        read_xena({"mut": counts}, survival=None, rna_key=None, binarize=["cnv"])


def test_acc_mutations_binarize_is_a_no_op_on_binary_calls(shared_dir):
    cohort = shared_dir / "cohorts" / "tcga_acc_92"
    mods = {"rna": cohort / "rna_rsem_normalized.tsv.gz", "mut": cohort / "mutation_binary.tsv.gz"}
    plain = read_xena(mods, survival=None, scales={"mut": "binary"})
    binarised = read_xena(mods, survival=None, binarize=["mut"])
    np.testing.assert_array_equal(plain["mut"].X, binarised["mut"].X)
    assert binarised["mut"].uns["binarized"]["n_values_changed"] == 0


# --------------------------------------------------------------------------- 2. methylation probes

PROBES = ["cgA", "cgB", "cgC", "cgD", "cgE"]


def probe_table():
    return pd.DataFrame(
        {
            "#id": ["cg00000001", "cg00000002", "cg00000003", "cg00000004", "cg00000005"],
            "gene": ["TP53", "TP53,EGFR", "EGFR", "", "MYC"],
            "chrom": ["chr17", "chr17", "chr7", "chr7", "chr8"],
            "chromStart": [7_500_000, 7_600_000, 55_000_000, 10_000_000, 128_000_000],
        }
    )


@pytest.fixture
def probe_file(tmp_path):
    values = [[0.1, 0.2, 0.3], [0.3, 0.4, "NA"], [0.5, 0.5, 0.5], [0.9, 0.8, 0.7], [0.0, 0.1, 0.2]]
    ids = probe_table()["#id"].tolist()
    return write_matrix(tmp_path / "meth.tsv", ids, BARCODES, values)


def test_probe_aggregation_levels_with_known_locations(probe_file):
    table = probe_table()
    by = {}
    for level in ("chromosome", "arm", "bin", "gene"):
        by[level] = read_xena(
            {"meth": probe_file},
            survival=None,
            rna_key=None,
            scales={"meth": "beta"},
            probe_aggregation={"meth": level},
            probe_annotation=table,
            probe_bin_size=5_000_000,
        )["meth"]
    chrom = by["chromosome"]
    assert chrom.var["feature"].tolist() == ["chr7", "chr8", "chr17"]  # genome order
    assert chrom.var["n_probes"].tolist() == [2, 1, 2]
    # chr17 = mean of probes 1 and 2 (NaN ignored): patient 3 has only probe 1
    np.testing.assert_allclose(chrom.X[:, 2], [0.2, 0.3, 0.3], rtol=1e-6)
    arm = by["arm"]  # chr7 centromere at 58.05 Mb: both chr7 probes on 7p; chr17p ends at 22.26 Mb
    assert arm.var["feature"].tolist() == ["chr7p", "chr8q", "chr17p"] and arm.var["arm"].tolist() == ["p", "q", "p"]
    assert by["bin"].var["feature"].tolist() == [
        "chr7:10000000-15000000", "chr7:55000000-60000000", "chr8:125000000-130000000", "chr17:5000000-10000000",
    ]  # fmt: skip
    assert by["bin"].var["bin_end_hg19"].iloc[0] == 15_000_000
    gene = by["gene"]  # probe 2 counts for TP53 and EGFR; probe 4 has no gene
    assert gene.var["feature"].tolist() == ["TP53", "EGFR", "MYC"] and gene.var["n_probes"].tolist() == [2, 2, 1]
    assert gene.var["ensembl_id"].notna().all()  # gene-level: mapped to the annotation
    info = gene.uns["probe_aggregation"]
    assert info["level"] == "gene" and info["n_probes_used"] == 4 and info["n_probes_unlocated"] == 1
    probe_map = info["probe_map"]
    assert sorted(probe_map.loc[probe_map["feature"] == "EGFR", "probe"]) == ["cg00000002", "cg00000003"]


def test_probe_defaults_and_errors(probe_file, rna_file, caplog):
    with caplog.at_level(logging.INFO, logger="cfmd"):
        mdata = read_xena({"meth": probe_file}, survival=None, rna_key=None)
    # default: probes kept, not gene-level, chromosome from the shipped table, a warning naming the option
    assert "kept probe-level" in caplog.text and "probe_aggregation={'meth'" in caplog.text
    info = mdata.uns["read_xena"]["modalities"]["meth"]
    assert info["feature_type"] == "probe" and info["probe_aggregation"] == "none" and not info["gene_level"]
    assert mdata["meth"].var_names[0] == "meth:cg00000001"
    with pytest.raises(InvalidInputError, match=r"probe_aggregation='gene'.*`probe_annotation=`"):
        read_xena({"meth": probe_file}, survival=None, rna_key=None, probe_aggregation={"meth": "gene"})
    with pytest.raises(InvalidInputError, match=r"`probe_bin_size` must be a multiple of 100,000"):
        read_xena(
            {"meth": probe_file}, survival=None, rna_key=None, probe_aggregation={"meth": "bin"}, probe_bin_size=50_000
        )
    with pytest.raises(InvalidInputError, match=r"probe_aggregation\['rna'\].*not probe-level"):
        read_xena({"rna": rna_file}, survival=None, probe_aggregation={"rna": "arm"})
    with pytest.raises(InvalidInputError, match=r"probe_aggregation\['meth'\]"):
        read_xena({"meth": probe_file}, survival=None, rna_key=None, probe_aggregation={"meth": "region"})
    with pytest.raises(InvalidInputError, match=r"none of the 5 probes"):
        read_xena(
            {"meth": probe_file},
            survival=None,
            rna_key=None,
            probe_aggregation={"meth": "chromosome"},
            probe_annotation=probe_table().assign(**{"#id": PROBES}),
        )


def test_shipped_probe_table():
    table = illumina_probe_locations()
    assert len(table) == 485_512 and table.index.is_unique
    # cg00000029 is on chr16 at 53,468,112 (hg19): stored at 100 kb resolution
    assert table.loc["cg00000029"].tolist() == ["16", 53_400_000]


def test_brca_27k_probes_aggregate_to_arms(shared_dir):
    cohort = shared_dir / "cohorts" / "tcga_brca_348"
    mdata = read_xena(
        {"rna": cohort / "rna_agilent_log2ratio_unnamed.tsv.gz", "meth": cohort / "methylation_probe_beta.tsv.gz"},
        survival=None,
        gene_level={"rna": False},
        scales={"meth": "beta"},
        probe_aggregation={"meth": "arm"},
    )
    info = mdata["meth"].uns["probe_aggregation"]
    # every one of the 574 HumanMethylation27 probes is in the 450k table
    assert (info["n_probes_in_file"], info["n_probes_used"], info["n_probes_unlocated"]) == (574, 574, 0)
    var = mdata["meth"].var
    assert var["n_probes"].sum() == 574 and set(var["arm"]) == {"p", "q"}
    assert len(info["probe_map"]) == 574 and info["probe_map"]["probe"].is_unique
    assert mdata["meth"].n_obs == 348 and np.isfinite(mdata["meth"].X).mean() > 0.99


# --------------------------------------------------------------------------- 3. symbols


def test_r_mangled_symbols_aliases_and_empty_symbols(tmp_path, caplog):
    features = ["NKX6.2", "HLA.A", "AGAP4.1", "KIAA1199", "|100130426", "TP53", "NOT.A.GENE"]
    path = write_matrix(tmp_path / "rna.tsv", features, ["S1"], [[i] for i in range(len(features))])
    with caplog.at_level(logging.INFO, logger="cfmd"):
        mdata = read_xena({"rna": path}, survival=None, gene_aliases={"KIAA1199": "CEMIP"})
    var = mdata["rna"].var
    assert var.loc["NKX6.2", "gene_symbol"] == "NKX6-2" and var.loc["HLA.A", "gene_symbol"] == "HLA-A"
    assert var.loc["AGAP4.1", "gene_symbol"] == "AGAP4"  # R's make.unique suffix
    assert var.loc["KIAA1199", "gene_symbol"] == "CEMIP" and var.loc["KIAA1199", "ensembl_id"] == "ENSG00000103888"
    assert var.loc["NKX6.2", "feature"] == "NKX6.2"  # the label is kept
    info = mdata.uns["read_xena"]["modalities"]["rna"]
    assert info["n_repaired"] == 3 and "NKX6.2->NKX6-2" in info["repaired_examples"]
    assert info["n_aliased"] == 1 and list(info["aliased_examples"]) == ["KIAA1199->CEMIP"]
    # the empty symbol is reported apart, never as an example of an unmapped gene
    assert info["n_without_symbol"] == 1 and list(info["without_symbol_examples"]) == ["|100130426"]
    assert list(info["unmapped_examples"]) == ["NOT.A.GENE"]
    assert "not mapped to a gene, e.g. 'NOT.A.GENE'." in caplog.text
    # without the options: no repair, no alias
    plain = read_xena({"rna": path}, survival=None, repair_symbols=False)
    assert plain["rna"].var["ensembl_id"].notna().sum() == 1  # TP53 only
    assert repair_r_symbol("X7SK", {"7SK"}.__contains__) == ("7SK", "x_prefix")
    assert repair_r_symbol("RP11.34P13.7", {"RP11-34P13.7"}.__contains__) == ("RP11-34P13.7", "dots_to_dashes")
    assert repair_r_symbol("TP53", {"TP53"}.__contains__) is None
    alias_file = tmp_path / "hgnc.tsv"
    pd.DataFrame({"Approved symbol": ["CEMIP"], "Previous symbol": ["KIAA1199"]}).to_csv(alias_file, sep="\t")
    assert (
        read_xena({"rna": path}, survival=None, gene_aliases=alias_file)["rna"].var.loc["KIAA1199", "gene_symbol"]
        == "CEMIP"
    )
    with pytest.raises(InvalidInputError, match=r"`gene_aliases`.*'alias' and a 'symbol' column"):
        read_xena({"rna": path}, survival=None, gene_aliases=pd.DataFrame({"a": ["x"]}))


def test_lihc_symbol_repair(shared_dir):
    cohort = shared_dir / "cohorts" / "tcga_lihc_360"
    mdata = read_xena({"rna": cohort / "rna_rsem_norm.tsv.gz"}, survival=None, scales={"rna": "normalized"})
    info = mdata.uns["read_xena"]["modalities"]["rna"]
    assert "AGAP4.1->AGAP4" in info["repaired_examples"]
    assert info["n_mapped"] == 353 - info["n_unmapped"] - info["n_without_symbol"]
    assert "" not in set(info["unmapped_examples"])


# --------------------------------------------------------------------------- 4. survival missingness


def _latent(mdata, rng):
    layout = LatentLayout.from_sizes({"a": (3, "geneformer"), "b": (2, "zero")})
    truth = rng.normal(size=(mdata.n_obs, layout.n_dims))
    mdata.obsm["X_truth"] = truth
    layout.write(mdata, "X_truth")
    return layout, truth


def test_missing_survival_route_read_split_evaluate(shared_dir, caplog):
    cohort = shared_dir / "cohorts" / "tcga_lihc_360"
    mdata = read_xena(
        {"rna": cohort / "rna_rsem_norm.tsv.gz", "meth": cohort / "methylation_gene_beta.tsv.gz"},
        survival="tcga_cdr",
        scales={"rna": "normalized", "meth": "beta"},
        on_missing_survival="keep_nan",
    )
    missing = mdata.obs["os_time"].isna() | mdata.obs["os_event"].isna()
    assert missing.sum() == 1  # TCGA-2V-A95S: in the CDR without an OS time
    split_patients(mdata, seed=0)
    assert mdata.uns["cfmd_split"]["n_missing_stratum"] == 0
    parts = split_indices(mdata, "cfmd_split")
    layout, truth = _latent(mdata, np.random.default_rng(0))
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="cfmd"):
        surv = survival_data(
            mdata, "X_truth", parts, time_key="os_time", event_key="os_event", cancer_type_key="cancer_type"
        )
    n_test_missing = int(missing.to_numpy()[parts["test"]].sum())
    assert f"test {n_test_missing} of {len(parts['test'])}" in caplog.text
    assert len(surv.train_time) == int((~missing.to_numpy()[parts["train"]]).sum())
    assert np.isfinite(surv.test_time).all()
    rows = parts["test"]
    result = score_methods(
        truth[rows],
        {"noisy": [truth[rows] + 0.1]},
        layout,
        cancer_type=mdata.obs["cancer_type"].astype(str).to_numpy()[rows],
        survival=surv,
        n_boot=20,
    )
    assert np.isfinite(result["summary"].set_index("method").loc["noisy", "c_index"])


def test_split_without_survival_and_with_missing_strata(rna_file, caplog):
    table = survival_frame(PATIENTS + ["TCGA-AA-0004"])
    table.loc[1, ["OS", "OS.time", "acronym"]] = np.nan
    mdata = read_xena({"rna": rna_file}, survival=table, on_missing_survival="keep_nan", scales={"rna": "counts"})
    assert mdata.obs["cancer_type"].isna().sum() == 1 and mdata.obs["os_time"].isna().sum() == 1
    with caplog.at_level(logging.INFO, logger="cfmd"):
        split_patients(mdata, require_modalities=[], seed=0, fractions=(1.0, 0.0, 0.0))
    assert (
        f"1 patient(s) with a missing mdata.obs['cancer_type'] split as their own stratum {MISSING_STRATUM!r}"
        in caplog.text
    )
    assert (mdata.obs["cfmd_split"] == "train").all() and mdata.uns["cfmd_split"]["n_missing_stratum"] == 1


# --------------------------------------------------------------------------- 5. messages and patients without RNA


def test_patients_without_rna(rna_file, meth_file, caplog):
    mods = {"rna": rna_file, "meth": meth_file}  # meth has TCGA-AA-0004, which has no RNA
    with caplog.at_level(logging.WARNING, logger="cfmd"):
        kept = read_xena(mods, survival=survival_all())
    assert "TCGA-AA-0004" in kept.obs_names and "patients_without_rna='drop'" in caplog.text
    with pytest.raises(InvalidInputError, match=r"1 patient\(s\).*no RNA.*`patients_without_rna='drop'`"):
        read_xena(mods, survival=survival_all(), patients_without_rna="error")
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="cfmd"):
        dropped = read_xena(mods, survival=survival_all(), patients_without_rna="drop")
    assert list(dropped.obs_names) == PATIENTS and list(dropped["meth"].obs_names) == ["TCGA-AA-0002"]
    assert list(dropped.uns["read_xena"]["patients_dropped_without_rna"]) == ["TCGA-AA-0004"]
    assert dropped.uns["read_xena"]["n_patients_without_rna"] == 0
    assert "dropped 1 patient(s) without RNA" in caplog.text
    with pytest.raises(InvalidInputError, match="patients_without_rna"):
        read_xena(mods, survival=None, patients_without_rna="ignore")


def test_acc_patients_without_rna_dropped(shared_dir):
    cohort = shared_dir / "cohorts" / "tcga_acc_92"
    mdata = read_xena(
        {"rna": cohort / "rna_rsem_normalized.tsv.gz", "cnv": cohort / "cnv_gistic_thresholded.tsv.gz"},
        survival=cohort / "clinical.tsv",
        cancer_type="ACC",
        patients_without_rna="drop",
    )
    assert mdata.n_obs == 79 and mdata["cnv"].n_obs == 90 - 13  # the 13 patients without RNA all have CNV
    assert len(mdata.uns["read_xena"]["patients_dropped_without_rna"]) == 13


def test_non_count_rna_message_names_rna_scale():
    with pytest.raises(InvalidInputError, match=r"`rna_scale='counts'`.*`rna_scale='log2'`"):
        check_expression_scale(np.array([[1.5, 2.0]]), "counts", "mdata['rna'].X")
