import gzip
import logging

import mudata as md
import numpy as np
import pandas as pd
import pytest

from cfmd._validation import InvalidInputError
from cfmd.datasets import read_xena, tcga_cdr_survival

# --------------------------------------------------------------------------- helpers


def write_matrix(path, features, samples, values, *, gz=None):
    """Write a Xena-style features x samples TSV (gzip when the name ends in .gz or gz=True)."""
    lines = ["\t".join(["feature", *samples])]
    for feature, row in zip(features, values):
        lines.append("\t".join([feature, *(str(v) for v in row)]))
    text = "\n".join(lines) + "\n"
    gz = str(path).endswith(".gz") if gz is None else gz
    if gz:
        with gzip.open(path, "wt") as fh:
            fh.write(text)
    else:
        path.write_text(text)
    return path


def survival_frame(patients, times=None, events=None):
    n = len(patients)
    return pd.DataFrame(
        {
            "bcr_patient_barcode": list(patients),
            "acronym": ["BRCA"] * n,
            "OS": [1, 0] * (n // 2) + [1] * (n % 2) if events is None else events,
            "OS.time": [100.0 * (i + 1) for i in range(n)] if times is None else times,
        }
    )


PATIENTS = ["TCGA-AA-0001", "TCGA-AA-0002", "TCGA-AA-0003"]


@pytest.fixture
def rna_file(tmp_path):
    values = np.arange(12).reshape(4, 3)
    return write_matrix(
        tmp_path / "rna.tsv.gz", ["TP53", "MKI67", "EGFR", "GAPDH"], [f"{p}-01A-11R-A000-07" for p in PATIENTS], values
    )


@pytest.fixture
def meth_file(tmp_path):
    return write_matrix(
        tmp_path / "meth.tsv", ["TP53", "BRCA1"], ["TCGA.AA.0002", "TCGA.AA.0004"], [[0.1, 0.2], [0.9, 0.8]]
    )


def survival_all():
    return survival_frame([*PATIENTS, "TCGA-AA-0004"])


# --------------------------------------------------------------------------- real cohorts


def test_ov_mixed_patient_and_sample_barcodes(shared_dir):
    cohort = shared_dir / "cohorts" / "tcga_ov_20"
    mdata = read_xena(
        {
            "rna": cohort / "rna_counts.tsv.gz",
            "meth": cohort / "methylation_beta_gene.tsv.gz",
            "cnv": cohort / "cnv_log2_gene.tsv.gz",
        },
        survival="tcga_cdr",
        scales={"rna": "counts", "meth": "beta", "cnv": "log2_ratio"},
    )
    assert mdata.n_obs == 20
    # cnv columns are sample barcodes, rna/meth patient barcodes: all land on the same 20 patients
    assert set(mdata["cnv"].obs_names) == set(mdata["rna"].obs_names) == set(mdata["meth"].obs_names)
    assert all(len(p) == 12 for p in mdata.obs_names)
    cnv_samples = mdata["cnv"].obs["sample_barcode"]
    assert all(s.startswith(p) and len(s) == 28 for p, s in cnv_samples.items())
    assert (mdata["rna"].obs["sample_barcode"] == mdata["rna"].obs_names).all()
    assert [mdata[m].uns["scale"] for m in ("rna", "meth", "cnv")] == ["counts", "beta", "log2_ratio"]
    # values transposed, not altered
    raw = pd.read_csv(cohort / "rna_counts.tsv.gz", sep="\t", index_col=0)
    np.testing.assert_array_equal(mdata["rna"][raw.columns, raw.index].X, raw.T.to_numpy(dtype=np.float32))
    # names: RNA unprefixed, others prefixed; unique across the MuData
    assert "TSPAN6" in mdata["rna"].var_names and "cnv:TSPAN6" in mdata["cnv"].var_names
    assert mdata.var_names.is_unique
    for mod in ("rna", "meth", "cnv"):
        info = mdata.uns["read_xena"]["modalities"][mod]
        assert info["gene_level"] and info["n_mapped"] == 1000 and info["n_unmapped"] == 0
        assert list(mdata[mod].var.columns[:5]) == ["feature", "gene_symbol", "ensembl_id", "chromosome", "start"]
    # survival joined from the shipped TCGA-CDR table
    cdr = tcga_cdr_survival().set_index("bcr_patient_barcode").loc[mdata.obs_names]
    np.testing.assert_array_equal(mdata.obs["os_time"].to_numpy(), cdr["OS.time"].to_numpy())
    np.testing.assert_array_equal(mdata.obs["os_event"].to_numpy(), cdr["OS"].to_numpy().astype(int))
    assert mdata.obs["os_event"].dtype == np.int64
    assert (mdata.obs["cancer_type"] == "OV").all()


def test_coad_dotted_barcodes_and_missing_survival(shared_dir):
    cohort = shared_dir / "cohorts" / "tcga_coad_30"
    mods = {"rna": cohort / "rna_zscore.tsv.gz", "meth": cohort / "methylation_beta_gene.tsv.gz"}
    # one COAD patient has no OS time in TCGA-CDR: named in the error
    with pytest.raises(InvalidInputError, match=r"TCGA-AA-3521.*on_missing_survival='keep_nan'"):
        read_xena(mods, scales={"rna": "zscore", "meth": "beta"})
    mdata = read_xena(mods, scales={"rna": "zscore", "meth": "beta"}, on_missing_survival="keep_nan")
    assert mdata.n_obs == 30
    assert all(p.startswith("TCGA-") and "." not in p for p in mdata.obs_names)
    assert mdata["rna"].obs.loc["TCGA-A6-2670", "sample_barcode"] == "TCGA.A6.2670"
    assert np.isnan(mdata.obs.loc["TCGA-AA-3521", "os_time"])
    assert list(mdata.uns["read_xena"]["patients_without_survival"]) == ["TCGA-AA-3521"]
    info = mdata.uns["read_xena"]["modalities"]["rna"]
    assert info["n_mapped"] == 999 and list(info["unmapped_examples"]) == ["AHSA2"]
    assert mdata["rna"].var.loc["AHSA2", ["gene_symbol", "ensembl_id", "chromosome", "start"]].isna().all()


def test_gbm_mirna_not_treated_as_genes(shared_dir):
    cohort = shared_dir / "cohorts" / "tcga_gbm_100"
    mods = {"rna": cohort / "rna_log2_centered.tsv.gz", "mirna": cohort / "mirna_log2.tsv.gz"}
    mdata = read_xena(mods, scales={"rna": "log2", "mirna": "log2"})
    summary = mdata.uns["read_xena"]["modalities"]
    assert not summary["mirna"]["gene_level"]
    assert mdata["mirna"].var[["gene_symbol", "ensembl_id", "chromosome", "start"]].isna().all().all()
    assert mdata["mirna"].var.loc["mirna:MIMAT0000062", "feature"] == "MIMAT0000062"
    assert summary["rna"]["gene_level"] and summary["rna"]["n_mapped"] / 1500 > 0.95
    # Y-chromosome genes are known to Geneformer but have no position in the (1-22, X) annotation
    assert summary["rna"]["n_located"] < summary["rna"]["n_mapped"]
    assert mdata["rna"].var.loc["RPS4Y2", "ensembl_id"].startswith("ENSG")
    with pytest.raises(InvalidInputError, match=r"modalities\['mirna'\].*gene-level.*none of its 470"):
        read_xena(mods, gene_level={"mirna": True}, survival=None)


def test_h5mu_round_trip_with_missing_gene_columns(shared_dir, tmp_path):
    gbm = shared_dir / "cohorts" / "tcga_gbm_100"
    coad = shared_dir / "cohorts" / "tcga_coad_30"
    for name, mods, kwargs in [
        ("gbm", {"rna": gbm / "rna_log2_centered.tsv.gz", "mirna": gbm / "mirna_log2.tsv.gz"}, {}),
        ("coad", {"rna": coad / "rna_zscore.tsv.gz"}, {"on_missing_survival": "keep_nan"}),
    ]:
        mdata = read_xena(mods, **kwargs)
        mdata.write_h5mu(tmp_path / f"{name}.h5mu")
        # mudata's new behaviour (cfmd no longer sets it globally at import): no legacy column pulling on read
        with md.set_options(pull_on_update=False):
            back = md.read_h5mu(tmp_path / f"{name}.h5mu")
        for mod in mods:
            pd.testing.assert_frame_equal(back[mod].var, mdata[mod].var, check_categorical=False)
            np.testing.assert_array_equal(back[mod].X, mdata[mod].X)
        # values survive; mudata's reader may turn an integral float column of the global obs into int64
        pd.testing.assert_frame_equal(back.obs, mdata.obs, check_dtype=False)


def test_acc_unpaired_modalities_and_clinical_survival(shared_dir, tmp_path, caplog):
    cohort = shared_dir / "cohorts" / "tcga_acc_92"
    mods = {
        "rna": cohort / "rna_rsem_normalized.tsv.gz",
        "cnv": cohort / "cnv_gistic_thresholded.tsv.gz",
        "mut": cohort / "mutation_binary.tsv.gz",
        "rppa": cohort / "rppa.tsv.gz",
    }
    scales = {"rna": "normalized", "cnv": "gistic", "mut": "binary", "rppa": "zscore"}
    with caplog.at_level(logging.INFO, logger="cfmd"):
        mdata = read_xena(mods, survival=cohort / "clinical.tsv", cancer_type="ACC", scales=scales)
    assert "read_xena: 'rppa': 46 sample(s) -> 46 patient(s)" in caplog.text
    sizes = {m: mdata[m].n_obs for m in mods}
    assert sizes == {"rna": 79, "cnv": 90, "mut": 90, "rppa": 46}
    assert mdata.n_obs == 92 and mdata.uns["read_xena"]["n_patients_without_rna"] == 13
    assert mdata["rna"].obs.loc["TCGA-OR-A5J1", "sample_barcode"] == "TCGA-OR-A5J1-01A-11R-A29S-07"
    assert mdata.uns["read_xena"]["survival_layout"] == "clinical"
    # the clinical table and the shipped TCGA-CDR table agree on this cohort
    from_cdr = read_xena(mods, survival="tcga_cdr", scales=scales)
    pd.testing.assert_frame_equal(mdata.obs, from_cdr.obs)
    clinical = pd.read_csv(cohort / "clinical.tsv", sep="\t").set_index("patient").loc[mdata.obs_names]
    dead = clinical["vital_status"] == 1
    expected = np.where(dead, clinical["days_to_death"], clinical["days_to_last_followup"])
    np.testing.assert_array_equal(mdata.obs["os_time"].to_numpy(), expected)
    # h5mu round trip
    path = tmp_path / "acc.h5mu"
    mdata.write_h5mu(path)
    back = md.read_h5mu(path)
    assert back.shape == mdata.shape and set(back.mod) == set(mods)
    np.testing.assert_array_equal(back.obs["os_event"].to_numpy(), mdata.obs["os_event"].to_numpy())
    np.testing.assert_array_equal(back["cnv"].X, mdata["cnv"].X)
    assert back["rna"].var["ensembl_id"].astype(str).tolist() == mdata["rna"].var["ensembl_id"].tolist()
    assert back["rna"].uns["scale"] == "normalized"
    assert back.uns["read_xena"]["modalities"]["rppa"]["n_patients"] == 46


# --------------------------------------------------------------------------- synthetic files: basics


def test_gz_and_plain_files_read_identically(tmp_path):
    args = (["TP53", "EGFR"], ["S1", "S2"], [[1.5, 2], ["NA", 4]])
    plain = write_matrix(tmp_path / "a.tsv", *args)
    gz = write_matrix(tmp_path / "a.tsv.gz", *args)
    gz_no_suffix = write_matrix(tmp_path / "a_gzip_without_suffix", *args, gz=True)
    results = [read_xena({"rna": p}, survival=None) for p in (plain, gz, gz_no_suffix)]
    for r in results[1:]:
        np.testing.assert_array_equal(r["rna"].X, results[0]["rna"].X)
    assert np.isnan(results[0]["rna"]["S1", "EGFR"].X[0, 0])
    assert results[0].uns["read_xena"]["modalities"]["rna"]["n_missing_values"] == 1
    assert results[0].uns["read_xena"]["barcodes"] == "none"
    assert list(results[0].obs_names) == ["S1", "S2"]


def test_dataframe_input_left_unchanged_and_unpaired(rna_file, meth_file):
    rna = pd.read_csv(rna_file, sep="\t", index_col=0)
    survival = survival_all()
    rna_before, survival_before = rna.copy(), survival.copy()
    mdata = read_xena({"rna": rna, "meth": meth_file}, survival=survival, scales={"rna": "counts"})
    pd.testing.assert_frame_equal(rna, rna_before)
    pd.testing.assert_frame_equal(survival, survival_before)
    assert list(mdata.obs_names) == [*PATIENTS, "TCGA-AA-0004"]
    assert list(mdata["meth"].obs_names) == ["TCGA-AA-0002", "TCGA-AA-0004"]
    assert mdata["rna"].n_obs == 3
    assert list(mdata["meth"].var_names) == ["meth:TP53", "meth:BRCA1"]
    assert mdata.uns["read_xena"]["modalities"]["rna"]["source"] == "DataFrame"
    assert (mdata["meth"].obs["cancer_type"] == "BRCA").all()
    assert mdata.obs["os_time"].tolist() == [100.0, 200.0, 300.0, 400.0]


def test_rna_key_none_prefixes_everything(rna_file):
    mdata = read_xena({"expr": rna_file}, survival=None, rna_key=None, gene_level={"expr": True})
    assert mdata["expr"].var_names[0] == "expr:TP53"


def test_cancer_type_sources(rna_file):
    assert "cancer_type" not in read_xena({"rna": rna_file}, survival=None).obs
    assert (read_xena({"rna": rna_file}, survival=None, cancer_type="LUAD").obs["cancer_type"] == "LUAD").all()
    table = survival_frame(PATIENTS)
    table.loc[2, "acronym"] = np.nan  # gap in the table, filled by the argument
    obs = read_xena({"rna": rna_file}, survival=table, cancer_type="BRCA").obs
    assert obs["cancer_type"].tolist() == ["BRCA"] * 3
    assert isinstance(obs["cancer_type"].dtype, pd.CategoricalDtype)


def test_transposed_matrix_hint(tmp_path):
    path = write_matrix(tmp_path / "t.tsv", PATIENTS, ["TP53", "EGFR"], [[1, 2], [3, 4], [5, 6]])
    with pytest.raises(InvalidInputError, match=r"modalities\['rna'\].*looks transposed"):
        read_xena({"rna": path})


# --------------------------------------------------------------------------- barcodes


def test_repeated_patient_keeps_primary_tumour_and_reports(tmp_path, caplog):
    samples = [
        "TCGA-AA-0001-11A-01R-A000-07",
        "TCGA-AA-0001-01A-01R-A000-07",
        "TCGA-AA-0002-01B-01R-A000-07",
        "TCGA-AA-0002-01A-01R-A000-07",
        "TCGA-AA-0003-01A-01R-A000-07",
    ]
    path = write_matrix(tmp_path / "rna.tsv", ["TP53"], samples, [[1, 2, 3, 4, 5]])
    with caplog.at_level(logging.INFO, logger="cfmd"):
        mdata = read_xena({"rna": path}, survival=survival_frame(PATIENTS))
    assert list(mdata.obs_names) == PATIENTS
    assert mdata["rna"].obs["sample_barcode"].tolist() == [samples[1], samples[3], samples[4]]
    assert mdata["rna"].X[:, 0].tolist() == [2.0, 4.0, 5.0]
    dropped = mdata.uns["read_xena"]["modalities"]["rna"]["dropped_samples"]
    assert sorted(dropped) == sorted([samples[0], samples[2]])
    assert "dropped 2 extra sample(s)" in caplog.text


def test_unresolvable_repeated_patient_is_an_error(tmp_path):
    path = write_matrix(tmp_path / "rna.tsv", ["TP53"], ["TCGA.AA.0001", "TCGA-AA-0001"], [[1, 2]])
    with pytest.raises(InvalidInputError, match=r"modalities\['rna'\] \(rna.tsv\).*TCGA-AA-0001"):
        read_xena({"rna": path}, survival=None)


def test_barcode_modes(tmp_path):
    mixed = write_matrix(tmp_path / "mixed.tsv", ["TP53"], ["TCGA-AA-0001", "patient_2"], [[1, 2]])
    with pytest.raises(InvalidInputError, match=r"barcodes='auto'.*'rna'.*'patient_2'"):
        read_xena({"rna": mixed}, survival=None)
    with pytest.raises(InvalidInputError, match=r"barcodes='tcga'.*'patient_2'"):
        read_xena({"rna": mixed}, survival=None, barcodes="tcga")
    kept = read_xena({"rna": mixed}, survival=None, barcodes="none")
    assert list(kept.obs_names) == ["TCGA-AA-0001", "patient_2"]
    repeated = write_matrix(tmp_path / "rep.tsv", ["TP53"], ["p1", "p1"], [[1, 2]])
    with pytest.raises(InvalidInputError, match=r"modalities\['rna'\].*unique.*'p1'"):
        read_xena({"rna": repeated}, survival=None)
    dotted = write_matrix(tmp_path / "dots.tsv", ["TP53"], ["TCGA.AA.0001"], [[1]])
    assert list(read_xena({"rna": dotted}, survival=None, barcodes="none").obs_names) == ["TCGA.AA.0001"]


# --------------------------------------------------------------------------- features


def test_mixed_feature_id_formats_map_to_genes(tmp_path, caplog):
    features = [
        "TP53",
        "ENSG00000146648.18",
        "MKI67|4288",
        "?|100130426",
        "ISM1",
        "EIF1AY",
        "NOT_A_GENE",
        "ENSG00000141510",
    ]
    path = write_matrix(tmp_path / "rna.tsv", features, ["S1"], [[i] for i in range(len(features))])
    with caplog.at_level(logging.INFO, logger="cfmd"):
        mdata = read_xena({"rna": path}, survival=None)
    assert "'rna': 2 feature(s) not mapped to a gene, e.g. '?|100130426', 'NOT_A_GENE'" in caplog.text
    var = mdata["rna"].var
    assert list(var.index) == features  # RNA keeps its labels
    assert var.loc["ENSG00000146648.18", "gene_symbol"] == "EGFR"
    assert var.loc["MKI67|4288", "gene_symbol"] == "MKI67"
    assert var.loc["TP53", ["ensembl_id", "chromosome"]].tolist() == ["ENSG00000141510", "17"]
    assert var.loc["TP53", "start"] > 7_000_000
    assert var.loc[["?|100130426", "NOT_A_GENE"], "ensembl_id"].isna().all()
    # symbols the (older) annotation lacks are found through Geneformer's map; the label's symbol is kept
    assert var.loc["ISM1", ["gene_symbol", "ensembl_id", "chromosome"]].tolist() == ["ISM1", "ENSG00000101230", "20"]
    # a Y-chromosome gene: Ensembl ID from Geneformer's map, no position in the (1-22, X) annotation
    assert var.loc["EIF1AY", "ensembl_id"] == "ENSG00000198692" and pd.isna(var.loc["EIF1AY", "chromosome"])
    info = mdata.uns["read_xena"]["modalities"]["rna"]
    assert info["n_unmapped"] == 2 and set(info["unmapped_examples"]) == {"?|100130426", "NOT_A_GENE"}
    assert (info["n_mapped"], info["n_located"]) == (6, 5)
    # TP53 given as symbol and as Ensembl ID: one gene, reported as a duplicate group and kept apart
    assert info["n_duplicate_groups"] == 1 and info["n_duplicated_features"] == 2


def test_duplicate_features_keep_mean_first(tmp_path):
    features = ["TP53", "TP53", "EGFR", "TP53"]
    values = [[1.0, 2.0], [3.0, "NA"], [5.0, 6.0], [5.0, 8.0]]
    rna = write_matrix(tmp_path / "rna.tsv", ["GAPDH", "GAPDH"], ["S1", "S2"], [[1, 2], [3, 4]])
    meth = write_matrix(tmp_path / "meth.tsv", features, ["S1", "S2"], values)
    keep = read_xena({"rna": rna, "meth": meth}, survival=None)
    assert list(keep["rna"].var_names) == ["GAPDH", "GAPDH-1"]
    assert list(keep["meth"].var_names) == ["meth:TP53", "meth:TP53-1", "meth:EGFR", "meth:TP53-2"]
    assert keep["meth"].var["feature"].tolist() == features
    assert keep.uns["read_xena"]["modalities"]["meth"]["n_duplicated_features"] == 3
    assert keep.var_names.is_unique

    mean = read_xena({"rna": rna, "meth": meth}, survival=None, duplicate_features="mean")
    assert list(mean["meth"].var_names) == ["meth:TP53", "meth:EGFR"]
    np.testing.assert_allclose(mean["meth"]["S1", "meth:TP53"].X, [[3.0]])
    np.testing.assert_allclose(mean["meth"]["S2", "meth:TP53"].X, [[5.0]])  # NaN ignored
    assert mean["meth"].var["n_merged"].tolist() == [3, 1]
    assert list(mean["rna"].var_names) == ["GAPDH"]
    assert mean.uns["read_xena"]["modalities"]["meth"]["duplicate_features"] == "mean"

    first = read_xena({"rna": rna, "meth": meth}, survival=None, duplicate_features="first")
    np.testing.assert_allclose(first["meth"].X, [[1.0, 5.0], [2.0, 6.0]])
    assert first["meth"].var["feature"].tolist() == ["TP53", "EGFR"]


def test_ensembl_ids_of_one_gene_with_versions_are_duplicates(tmp_path):
    path = write_matrix(
        tmp_path / "rna.tsv", ["ENSG00000141510.16", "ENSG00000141510.17", "MIR_X"], ["S1"], [[1], [3], [4]]
    )
    mdata = read_xena({"rna": path}, survival=None, duplicate_features="mean")
    assert mdata["rna"].var["feature"].tolist() == ["ENSG00000141510.16;ENSG00000141510.17", "MIR_X"]
    assert mdata["rna"].X[0].tolist() == [2.0, 4.0]


def test_gene_level_without_overlap_is_an_error(tmp_path):
    path = write_matrix(tmp_path / "rna.tsv", ["hsa-mir-1", "hsa-mir-2"], ["S1"], [[1], [2]])
    with pytest.raises(InvalidInputError, match=r"modalities\['rna'\] \(rna.tsv\) is gene-level.*gene_level="):
        read_xena({"rna": path}, survival=None)
    mdata = read_xena({"rna": path}, survival=None, gene_level={"rna": False})
    assert not mdata.uns["read_xena"]["modalities"]["rna"]["gene_level"]


# --------------------------------------------------------------------------- bad matrices


def test_missing_file_checked_before_reading_anything(tmp_path):
    bad = write_matrix(tmp_path / "bad.tsv", ["TP53"], ["S1"], [["abc"]])
    with pytest.raises(FileNotFoundError, match=r"modalities\['meth'\].*nope.tsv.gz' does not exist"):
        read_xena({"rna": bad, "meth": tmp_path / "nope.tsv.gz"})
    with pytest.raises(InvalidInputError, match=r"`survival`.*missing.tsv' does not exist"):
        read_xena({"rna": bad}, survival=tmp_path / "missing.tsv")


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("feature\n", "has no samples"),
        ("feature\tS1\tS2\n", "has no features"),
        ("feature\nTP53\nEGFR\n", "has no samples"),
        ("", "has no samples"),
    ],
)
def test_empty_modality(tmp_path, content, message):
    path = tmp_path / "empty.tsv"
    path.write_text(content)
    with pytest.raises(InvalidInputError, match=rf"modalities\['cnv'\] \(empty.tsv\) {message}"):
        read_xena({"cnv": path}, survival=None, rna_key=None)


def test_empty_dataframe_modality():
    with pytest.raises(InvalidInputError, match=r"modalities\['rna'\] \(DataFrame\) has no samples"):
        read_xena({"rna": pd.DataFrame(index=["TP53"])}, survival=None)


def test_non_numeric_matrix(tmp_path):
    path = write_matrix(tmp_path / "rna.tsv", ["TP53", "EGFR"], ["S1", "S2"], [[1, 2], [3, "high"]])
    with pytest.raises(
        InvalidInputError, match=r"modalities\['rna'\] \(rna.tsv\) must be numeric.*'S2'.*'high'.*'EGFR'"
    ):
        read_xena({"rna": path}, survival=None)
    frame = pd.DataFrame({"S1": ["1", "x"]}, index=["TP53", "EGFR"])
    before = frame.copy()
    with pytest.raises(InvalidInputError, match=r"\(DataFrame\) must be numeric"):
        read_xena({"rna": frame}, survival=None)
    pd.testing.assert_frame_equal(frame, before)


def test_infinite_values(tmp_path):
    path = write_matrix(tmp_path / "rna.tsv", ["TP53"], ["S1", "S2"], [[1, "-Inf"]])
    with pytest.raises(InvalidInputError, match=r"modalities\['rna'\].*infinite.*'TP53'"):
        read_xena({"rna": path}, survival=None)


@pytest.mark.parametrize(
    ("scale", "values", "message"),
    [
        ("counts", [[1, -3]], "non-negative counts; found 1 negative"),
        ("counts", [[1, "NA"]], "must be finite"),
        ("normalized", [[-0.5, 2]], "non-negative"),
        ("beta", [[0.5, 1.2]], r"beta values in \[0, 1\]"),
        ("gistic", [[0, 3]], "must hold only -2, -1, 0, 1, 2"),
        ("binary", [[0, 0.5]], "must hold only 0, 1"),
    ],
)
def test_values_outside_declared_scale(tmp_path, scale, values, message):
    path = write_matrix(tmp_path / "x.tsv", ["TP53"], ["S1", "S2"], values)
    with pytest.raises(InvalidInputError, match=rf"modalities\['rna'\] \(x.tsv, declared scale '{scale}'\).*{message}"):
        read_xena({"rna": path}, survival=None, scales={"rna": scale})


def test_declared_scales_pass_and_are_stored(tmp_path):
    path = write_matrix(tmp_path / "x.tsv", ["TP53"], ["S1", "S2"], [[0, 1]])
    mdata = read_xena({"rna": path}, survival=None, scales={"rna": "binary"})
    assert mdata["rna"].uns["scale"] == "binary"
    assert "scale" not in read_xena({"rna": path}, survival=None)["rna"].uns


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"endpoint": "OSS"}, "`endpoint` must be one of 'OS', 'DSS', 'DFI', 'PFI'"),
        ({"barcodes": "TCGA"}, "`barcodes` must be one of 'auto', 'tcga', 'none'"),
        ({"duplicate_features": "sum"}, "`duplicate_features` must be one of"),
        ({"on_missing_survival": "drop"}, "`on_missing_survival` must be one of"),
        ({"scales": {"rna": "tpm"}}, r"`scales\['rna'\]` must be one of"),
        ({"scales": {"atac": "counts"}}, "`scales` has unknown key"),
        ({"gene_level": {"rna": "yes"}}, r"`gene_level\['rna'\]` must be True or False"),
        ({"rna_key": "RNA"}, "`rna_key` must name one of the modalities"),
        ({"survival": 3}, "`survival` must be None"),
        ({"cancer_type": ""}, "`cancer_type` must be a non-empty string"),
    ],
)
def test_bad_options(rna_file, kwargs, message):
    with pytest.raises(InvalidInputError, match=message):
        read_xena({"rna": rna_file}, **kwargs)


def test_bad_modalities_argument(rna_file):
    with pytest.raises(InvalidInputError, match="`modalities` must be a non-empty mapping"):
        read_xena({})
    with pytest.raises(InvalidInputError, match="`modalities` keys must be non-empty strings"):
        read_xena({"a/b": rna_file})
    with pytest.raises(InvalidInputError, match=r"`modalities\['rna'\]` must be a path"):
        read_xena({"rna": np.zeros((2, 2))})


# --------------------------------------------------------------------------- survival


def test_survival_missing_or_absent_patients(rna_file):
    table = survival_frame(PATIENTS[:2], times=[10.0, np.nan])
    with pytest.raises(
        InvalidInputError, match=r"1 patient\(s\) absent from it \('TCGA-AA-0003'\).*missing OS time.*'TCGA-AA-0002'"
    ):
        read_xena({"rna": rna_file}, survival=table)
    mdata = read_xena({"rna": rna_file}, survival=table, on_missing_survival="keep_nan")
    assert mdata.obs["os_time"].isna().tolist() == [False, True, True]
    assert mdata.obs["os_event"].dtype == "Int64" and mdata.obs["os_event"].isna().tolist() == [False, False, True]
    assert mdata.uns["read_xena"]["n_patients_without_survival"] == 2


def test_survival_bad_values(rna_file):
    with pytest.raises(InvalidInputError, match=r"times must be non-negative.*'TCGA-AA-0002'"):
        read_xena({"rna": rna_file}, survival=survival_frame(PATIENTS, times=[1.0, -5.0, 3.0]))
    with pytest.raises(InvalidInputError, match=r"events must be 0/1.*'TCGA-AA-0003'"):
        read_xena({"rna": rna_file}, survival=survival_frame(PATIENTS, events=[1, 0, 2]))
    with pytest.raises(InvalidInputError, match=r"\['OS.time'\] must be numeric.*'soon'"):
        read_xena({"rna": rna_file}, survival=survival_frame(PATIENTS, times=["1", "soon", "3"]))
    with pytest.raises(InvalidInputError, match="must have columns 'OS' and 'OS.time'.*clinical layout"):
        read_xena({"rna": rna_file}, survival=pd.DataFrame({"patient": PATIENTS, "time": [1, 2, 3]}))
    with pytest.raises(InvalidInputError, match=r"shipped TCGA-CDR table\) must have columns 'DFI' and 'DFI.time'"):
        read_xena({"rna": rna_file}, endpoint="DFI")  # the shipped table has OS, DSS and PFI only
    empty = pd.DataFrame(columns=["bcr_patient_barcode", "OS", "OS.time"])
    with pytest.raises(InvalidInputError, match="is empty"):
        read_xena({"rna": rna_file}, survival=empty)


def test_endpoint_choice(rna_file):
    table = survival_frame(PATIENTS)
    table["PFI"] = [0, 1, 1]
    table["PFI.time"] = [5.0, 6.0, 7.0]
    mdata = read_xena({"rna": rna_file}, survival=table, endpoint="PFI", time_key="pfi_time", event_key="pfi_event")
    assert mdata.obs["pfi_time"].tolist() == [5.0, 6.0, 7.0]
    assert mdata.obs["pfi_event"].tolist() == [0, 1, 1]
    assert mdata.uns["read_xena"]["endpoint"] == "PFI"


def test_xena_survival_file_several_samples_per_patient(rna_file, tmp_path):
    path = tmp_path / "survival.txt"
    path.write_text(
        "sample\t_PATIENT\tOS\tOS.time\n"
        "TCGA-AA-0001-01\tTCGA-AA-0001\t1\t100\n"
        "TCGA-AA-0001-11\tTCGA-AA-0001\t1\t100\n"
        "TCGA-AA-0002-01\tTCGA-AA-0002\t0\t200\n"
        "TCGA-AA-0003-01\tTCGA-AA-0003\t0\t300\n"
    )
    mdata = read_xena({"rna": rna_file}, survival=path, cancer_type="BRCA")
    assert mdata.obs["os_time"].tolist() == [100.0, 200.0, 300.0]
    assert mdata.uns["read_xena"]["survival_layout"] == "xena"
    conflicting = tmp_path / "conflict.txt"
    conflicting.write_text(path.read_text() + "TCGA-AA-0003-02\tTCGA-AA-0003\t1\t50\n")
    with pytest.raises(InvalidInputError, match=r"conflict.txt\) has conflicting rows for patient\(s\) 'TCGA-AA-0003'"):
        read_xena({"rna": rna_file}, survival=conflicting)


def test_clinical_table_with_text_vital_status(rna_file, tmp_path):
    path = tmp_path / "clinical.csv"
    path.write_text(
        "submitter_id,vital_status,days_to_death,days_to_last_follow_up\n"
        "TCGA-AA-0001,Dead,120,[Not Available]\n"
        "TCGA-AA-0002,Alive,[Not Applicable],800\n"
        "TCGA-AA-0003,Alive,,950\n"
    )
    mdata = read_xena({"rna": rna_file}, survival=path)
    assert mdata.obs["os_time"].tolist() == [120.0, 800.0, 950.0]
    assert mdata.obs["os_event"].tolist() == [1, 0, 0]
    with pytest.raises(InvalidInputError, match="clinical table.*only `endpoint='OS'`"):
        read_xena({"rna": rna_file}, survival=path, endpoint="PFI")
    path.write_text("patient,vital_status,days_to_death,days_to_last_followup\nTCGA-AA-0001,Unknown,1,\n")
    with pytest.raises(InvalidInputError, match=r"\['vital_status'\] must be 1/0 or dead/alive.*'Unknown'"):
        read_xena({"rna": rna_file}, survival=path)


def test_survival_indexed_dataframe_and_non_tcga_ids(tmp_path):
    path = write_matrix(tmp_path / "rna.tsv", ["TP53"], ["p1", "p2"], [[1, 2]])
    table = pd.DataFrame({"OS": [True, False], "OS.time": [10, 20]}, index=["p2", "p1"])
    mdata = read_xena({"rna": path}, survival=table, cancer_type="X")
    assert mdata.obs["os_time"].tolist() == [20.0, 10.0]
    assert mdata.obs["os_event"].tolist() == [0, 1]
    assert mdata.obs["cancer_type"].tolist() == ["X", "X"]
    # the default (shipped TCGA-CDR) cannot match non-TCGA patients: the error says what to do
    with pytest.raises(
        InvalidInputError, match=r"No patient matched: check that column 'bcr_patient_barcode'.*survival=None"
    ):
        read_xena({"rna": path})
