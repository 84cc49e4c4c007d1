import numpy as np
import pandas as pd
import pytest
from scipy import sparse

from cfmd._validation import (
    InvalidInputError,
    check_counts,
    check_finite,
    check_latent_matrix,
    check_modality,
    check_names,
    check_obsm,
    check_positive_number,
    check_survival,
    check_unique,
    describe_examples,
    get_matrix,
)


def test_counts_accept_integers_dense_and_sparse():
    check_counts(np.array([[0, 1], [2, 3]]), "X")
    check_counts(sparse.csr_matrix(np.array([[0.0, 1.0], [2.0, 0.0]], dtype=np.float32)), "X")


@pytest.mark.parametrize(
    ("X", "message"),
    [
        (np.array([[1.0, -2.0]]), r"rna\.X must hold non-negative counts; found 1 negative"),
        (np.array([[1.0, np.nan]]), r"rna\.X must be finite; found 1 NaN"),
        (np.array([[1.0, np.inf]]), "NaN or infinite"),
        (np.array([[1.5, 2.0]]), "integer raw counts"),
        (np.array([["a", "b"]]), "must hold numbers"),
        (sparse.csr_matrix(np.array([[0.0, -1.0]])), "negative"),
    ],
)
def test_bad_counts(X, message):
    with pytest.raises(InvalidInputError, match=message):
        check_counts(X, "rna.X")


def test_non_integer_allowed_when_not_required():
    check_counts(np.array([[1.5]]), "X", require_integer=False)
    with pytest.raises(InvalidInputError):
        check_finite(np.array([np.nan]), "X")


def test_duplicates_are_named():
    with pytest.raises(InvalidInputError, match=r"obs_names must be unique; duplicated: 'p1'"):
        check_unique(["p1", "p2", "p1"], "obs_names")


def test_modality_and_obsm_checks(small_cohort):
    assert check_modality(small_cohort, "rna").n_obs == 300
    with pytest.raises(InvalidInputError, match="no modality 'atac'"):
        check_modality(small_cohort, "atac")
    with pytest.raises(InvalidInputError, match="must be a MuData"):
        check_modality(small_cohort["rna"], "rna")
    arr = check_obsm(small_cohort, "truth_pathway", field="mdata", n_cols=50)
    assert arr.shape == (300, 50)
    with pytest.raises(InvalidInputError, match="must have 10 columns"):
        check_obsm(small_cohort, "truth_pathway", n_cols=10)
    with pytest.raises(InvalidInputError, match="no key 'X_nope'"):
        check_obsm(small_cohort, "X_nope")
    with pytest.raises(InvalidInputError, match="no layer 'counts'"):
        get_matrix(small_cohort["rna"], "counts", field="mdata['rna']")


def test_survival_checks():
    t, e = check_survival([1.0, 2.0], [1, 0])
    assert t.dtype == float and e.dtype == bool
    with pytest.raises(InvalidInputError, match=r"`os_time` .* 1 missing .*'b'"):
        check_survival([1.0, np.nan], [1, 0], index=["a", "b"])
    with pytest.raises(InvalidInputError, match="non-negative"):
        check_survival([-1.0, 2.0], [1, 0])
    with pytest.raises(InvalidInputError, match="`os_event` must be 0/1"):
        check_survival([1.0, 2.0], [1, 2])
    t, e = check_survival(pd.Series([1.0, 2.0]), pd.Series([True, False]))
    assert e.tolist() == [True, False]


def test_examples_show_numpy_values_as_python_values():
    shown = describe_examples(np.array(["MALAT1", "XIST"]))
    assert shown == "'MALAT1', 'XIST'"
    assert describe_examples(np.arange(7, dtype=np.int64), limit=2) == "0, 1, ... (7 in total)"


def test_positive_number_is_one_check_for_every_scalar_option():
    assert check_positive_number(2, "tau") == 2.0 and isinstance(check_positive_number(np.float32(0.5), "tau"), float)
    assert check_positive_number(None, "dpi", allow_none=True) is None
    for bad in (0, -1.0, np.inf, np.nan, True, "2.0", None, [1.0]):
        with pytest.raises(InvalidInputError, match=r"`tau` must be a positive number \(finite"):
            check_positive_number(bad, "tau")
    with pytest.raises(InvalidInputError, match="`dpi` must be a positive number or None"):
        check_positive_number(0, "dpi", allow_none=True)


def test_latent_matrix_counts_rows_that_are_not_finite_and_checks_width_first():
    latent = np.array([[0.0, 1.0], [np.nan, 1.0], [2.0, np.inf]])
    with pytest.raises(
        InvalidInputError, match=r"z has 2 of 3 row\(s\) with NaN or infinite values \(rows 1, 2\); drop"
    ):
        check_latent_matrix(latent, "z", missing_hint="drop them.")
    with pytest.raises(InvalidInputError, match="2-dimensional"):
        check_latent_matrix(latent[0], "z", missing_hint="")

    def width_two(width):
        if width != 3:
            raise InvalidInputError(f"width {width}")

    with pytest.raises(InvalidInputError, match="width 2"):  # the width is checked before the rows
        check_latent_matrix(latent, "z", missing_hint="", check_width=width_two)
    frame = pd.DataFrame(latent[:1])
    np.testing.assert_array_equal(check_latent_matrix(frame, "z", missing_hint=""), latent[:1])


def test_names_are_checked_against_the_allowed_ones_without_repeats():
    assert check_names("b", "models", ("a", "b")) == ["b"]
    assert check_names(None, "models", ("a", "b")) == [] and check_names(np.array(["a"]), "models", ("a",)) == ["a"]
    with pytest.raises(InvalidInputError, match=r"`models` has unknown model\(s\) 'c'; available models: \['a', 'b'\]"):
        check_names(["a", "c"], "models", ("a", "b"), what="model")
    with pytest.raises(InvalidInputError, match="`models` must not repeat a name"):
        check_names(["a", "a"], "models", ("a", "b"))
