import pandas as pd
import pytest

from cfmd._validation import InvalidInputError
from cfmd.datasets import (
    SAMPLE_TYPE_PREFERENCE,
    harmonise_tcga_barcodes,
    is_tcga_barcode,
    select_primary_samples,
    tcga_patient_barcodes,
)


def test_harmonise_dots_underscores_and_case():
    out = harmonise_tcga_barcodes(["TCGA.A6.2670", "tcga_or_a5j1_01a", "TCGA-OR-A5J1-01A-11R-A29S-07", "S1", "a.b"])
    assert out.tolist() == ["TCGA-A6-2670", "TCGA-OR-A5J1-01A", "TCGA-OR-A5J1-01A-11R-A29S-07", "S1", "a.b"]


def test_is_tcga_barcode():
    ids = ["TCGA.A6.2670", "TCGA-29-1701", "TCGA-OR-A5J1-01A-11R-A29S-07", "TCGA-OR-A5J1-01", "MIMAT0000062", "TCGA-1"]
    assert is_tcga_barcode(ids).tolist() == [True, True, True, True, False, False]


def test_patient_barcodes_and_non_tcga_error():
    ids = ["TCGA.A6.2670", "TCGA-OR-A5J1-01A-11R-A29S-07", "TCGA-29-1701"]
    assert tcga_patient_barcodes(ids).tolist() == ["TCGA-A6-2670", "TCGA-OR-A5J1", "TCGA-29-1701"]
    with pytest.raises(InvalidInputError, match="non-TCGA identifier.*'sample_7'"):
        tcga_patient_barcodes(["TCGA-29-1701", "sample_7"])


def test_primary_tumour_first_then_vial_then_barcode():
    ids = [
        "TCGA-AA-0001-11A-01R-0001-07",  # normal
        "TCGA-AA-0001-02A-01R-0001-07",  # recurrence
        "TCGA-AA-0001-01B-01R-0001-07",  # primary, vial B
        "TCGA-AA-0001-01A-21R-0001-07",  # primary, vial A, later portion
        "TCGA-AA-0001-01A-11R-0001-07",  # primary, vial A -> lexicographically first
        "TCGA-AA-0002-11A-01R-0001-07",  # only a normal sample
        "TCGA-AA-0003-06A-01R-0001-07",  # metastasis beats normal
        "TCGA-AA-0003-10A-01R-0001-07",
    ]
    table = select_primary_samples(ids)
    assert list(table.index) == ids
    assert table.loc[table["selected"]].index.tolist() == [
        "TCGA-AA-0001-01A-11R-0001-07",
        "TCGA-AA-0002-11A-01R-0001-07",
        "TCGA-AA-0003-06A-01R-0001-07",
    ]
    assert table["sample_type"].tolist()[:3] == ["11", "02", "01"]
    assert table["vial"].tolist()[2] == "B"
    assert SAMPLE_TYPE_PREFERENCE[0] == "01"


def test_unknown_sample_type_ranks_after_listed_and_dotted_ids():
    table = select_primary_samples(["TCGA.AA.0001.99A", "TCGA.AA.0001.14A"])
    assert table["selected"].tolist() == [False, True]
    assert table["patient_barcode"].tolist() == ["TCGA-AA-0001", "TCGA-AA-0001"]


def test_missing_vial_ranks_after_letters():
    table = select_primary_samples(["TCGA-AA-0001-01", "TCGA-AA-0001-01C"])
    assert table["selected"].tolist() == [False, True]


@pytest.mark.parametrize(
    "ids",
    [
        ["TCGA.A6.2670", "TCGA-A6-2670"],  # identical patient-level barcodes
        ["TCGA-A6-2670", "TCGA-A6-2670-01A"],  # patient-level next to a sample barcode
        ["TCGA-A6-2670-01A-11R", "TCGA.A6.2670.01A.11R"],  # identical sample barcodes
    ],
)
def test_unresolvable_repeated_patient_names_it(ids):
    with pytest.raises(InvalidInputError, match="my matrix: cannot tell which sample.*TCGA-A6-2670"):
        select_primary_samples(ids, field="my matrix")


def test_no_repeats_returns_all_selected():
    table = select_primary_samples(pd.Index(["TCGA-29-1701", "TCGA-29-1702-01A"]))
    assert table["selected"].all()
    assert table["sample_type"].tolist() == ["", "01"]
