import pandas as pd

from cfmd import datasets


def test_hallmark_sets():
    sets = datasets.hallmark_gene_sets()
    assert len(sets) == 50
    assert all(name.startswith("HALLMARK_") for name in sets)
    assert all(len(genes) == len(set(genes)) >= 30 for genes in sets.values())
    sets["HALLMARK_HYPOXIA"].append("NOT_A_GENE")  # callers get copies
    assert "NOT_A_GENE" not in datasets.hallmark_gene_sets()["HALLMARK_HYPOXIA"]


def test_annotation():
    ann = datasets.gene_annotation()
    assert list(ann.columns[:5]) == ["ensembl_id", "symbol", "chromosome", "start", "end"]
    assert ann["ensembl_id"].is_unique and ann["symbol"].is_unique
    assert set(ann["chromosome"]) == set(datasets.CHROMOSOMES)
    assert ann.loc[ann.symbol == "TP53", "chromosome"].item() == "17"


def test_geneformer_dictionaries():
    tokens = datasets.geneformer_token_dictionary()
    assert tokens["<pad>"] == 0 and tokens["<mask>"] == 1 and len(tokens) == 25426
    assert sorted(tokens.values()) == list(range(len(tokens)))
    medians = datasets.geneformer_gene_medians()
    assert all(v > 0 for v in medians.values())
    assert set(medians) <= set(tokens)
    name_id = datasets.geneformer_gene_name_id()
    assert name_id["TP53"].startswith("ENSG")


def test_signatures_and_survival():
    prolif = datasets.proliferation_signature()
    assert "MKI67" in prolif and len(prolif) == 73
    assert len(datasets.tme_genes()) > 4000
    cdr = datasets.tcga_cdr_survival()
    assert {"bcr_patient_barcode", "acronym", "OS", "OS.time"} <= set(cdr.columns)
    assert isinstance(cdr, pd.DataFrame) and len(cdr) > 11000
