"""Read UCSC-Xena-style matrices (features x samples) and a survival table into an unpaired MuData."""

from __future__ import annotations

import csv
import os
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Literal

import anndata as ad
import numpy as np
import pandas as pd

from .._constants import DEFAULT_RNA_KEY
from .._logging import logger
from .._utils import new_mudata
from .._validation import (
    InvalidInputError,
    check_choice,
    check_counts,
    check_mapping_keys,
    describe_examples,
)
from ._barcodes import NORMAL_SAMPLE_TYPES, is_tcga_barcode, select_primary_samples
from ._probes import PROBE_AGGREGATIONS, aggregate_probes, is_probe_id
from ._symbols import read_gene_aliases
from ._xena_files import _NA_VALUES, _existing_file, _is_gzip, _open_text
from ._xena_genes import (
    _handle_duplicates,
    _map_genes,
    _name_features,
)
from ._xena_survival import (
    _add_cancer_type,
    _join_survival,
    _read_survival,
)

if TYPE_CHECKING:
    from mudata import MuData

__all__ = ["ENDPOINTS", "SCALES", "read_xena"]

#: What a matrix's features are, as recorded in ``uns['read_xena']['modalities'][mod]['feature_type']``.
_PROBE_LEVEL_MIN_FRACTION = 0.5

#: Survival endpoints of the TCGA Pan-Cancer Clinical Data Resource (Liu et al., Cell 2018): overall
#: survival, disease-specific survival, disease-free interval, progression-free interval.
ENDPOINTS: tuple[str, ...] = ("OS", "DSS", "DFI", "PFI")

#: Scales a modality can be declared with (``scales=``), and what each requires of the values.
SCALES: dict[str, str] = {
    "counts": "non-negative finite read counts (raw or RSEM expected counts)",
    "normalized": "non-negative finite normalised expression (TPM, FPKM, RSEM normalised, ...)",
    "log2": "log2-transformed values, e.g. log2(x + 1) or log2 centred",
    "zscore": "standardised values (any sign)",
    "beta": "methylation beta values in [0, 1]",
    "log2_ratio": "copy-number log2 ratios (any sign)",
    "gistic": "GISTIC thresholded copy-number calls in {-2, -1, 0, 1, 2}",
    "binary": "0/1 calls (e.g. mutations)",
    "other": "any finite values",
}


@dataclass
class _Modality:
    """One matrix on its way into the MuData (internal)."""

    name: str
    source: str
    values: np.ndarray  # features x samples, float64
    features: list[str]
    samples: list[str]
    n_samples_in_file: int = 0
    n_features_in_file: int = 0
    patients: list[str] = field(default_factory=list)
    dropped_samples: list[str] = field(default_factory=list)
    sample_types: list[str] = field(default_factory=list)
    var: pd.DataFrame | None = None
    gene_level: bool = False
    n_mapped: int = 0
    n_located: int = 0
    unmapped: list[str] = field(default_factory=list)
    n_duplicate_groups: int = 0
    n_duplicated_features: int = 0
    without_symbol: list[str] = field(default_factory=list)
    repaired: list[str] = field(default_factory=list)
    aliased: list[str] = field(default_factory=list)
    binarized: dict = field(default_factory=dict)
    feature_type: str = "other"
    probe_info: dict = field(default_factory=dict)
    probe_map: pd.DataFrame | None = None
    extra_var: pd.DataFrame | None = None


def read_xena(
    modalities: Mapping[str, str | os.PathLike | pd.DataFrame],
    *,
    survival: str | os.PathLike | pd.DataFrame | None = "tcga_cdr",
    endpoint: Literal["OS", "DSS", "DFI", "PFI"] = "OS",
    cancer_type: str | None = None,
    scales: Mapping[str, str] | None = None,
    gene_level: Mapping[str, bool] | None = None,
    barcodes: Literal["auto", "tcga", "none"] = "auto",
    duplicate_features: Literal["keep", "mean", "first"] = "keep",
    on_missing_survival: Literal["raise", "keep_nan"] = "raise",
    patients_without_rna: Literal["keep", "drop", "error"] = "keep",
    binarize: Collection[str] = (),
    probe_aggregation: Mapping[str, str] | None = None,
    probe_annotation: str | os.PathLike | pd.DataFrame | None = None,
    probe_bin_size: int = 1_000_000,
    repair_symbols: bool = True,
    gene_aliases: Mapping[str, str] | str | os.PathLike | pd.DataFrame | None = None,
    rna_key: str | None = DEFAULT_RNA_KEY,
    time_key: str = "os_time",
    event_key: str = "os_event",
) -> MuData:
    """Read UCSC-Xena-style matrices and a survival table into an unpaired :class:`~mudata.MuData`.

    Each matrix is features x samples, tab-separated (plain or gzip), its first column the feature label
    and its header the sample identifiers, as UCSC Xena ships TCGA matrices. Samples are harmonised to
    patients, features mapped to genes, and the survival endpoint joined into ``mdata.obs``. Every input is
    read and checked before anything is built.

    Parameters
    ----------
    modalities
        ``{modality name: matrix}``, a matrix being a path to a TSV / TSV.gz file or a
        :class:`~pandas.DataFrame` (features as index, samples as columns). Names become the MuData
        modalities, e.g. ``{"rna": "HiSeqV2.gz", "meth": "HumanMethylation450.gz"}``; they must be non-empty
        and contain neither ``/`` nor ``:``.
    survival
        ``"tcga_cdr"`` (the shipped TCGA-CDR table, :func:`~cfmd.datasets.tcga_cdr_survival`), a path to a
        survival / clinical table (TSV or CSV, plain or gzip), a :class:`~pandas.DataFrame`, or ``None`` (no
        survival columns). Three layouts are recognised:

        - TCGA-CDR-like: ``bcr_patient_barcode``, ``<endpoint>``, ``<endpoint>.time`` (and ``acronym``);
        - Xena survival files: ``sample``, ``<endpoint>``, ``<endpoint>.time``, ``_PATIENT`` (several
          samples of a patient must agree);
        - clinical tables: ``vital_status`` (1/0 or dead/alive), ``days_to_death``, ``days_to_last_followup``
          (or ``days_to_last_follow_up``): the time is ``days_to_death`` for dead patients and
          ``days_to_last_followup`` otherwise (``OS`` only).

        The identifier column is the first present of ``bcr_patient_barcode``, ``_PATIENT``, ``patient``,
        ``patient_id``, ``patientID``, ``submitter_id``, ``case_submitter_id``, ``sample``, ``sampleID``,
        ``sample_id``; otherwise a DataFrame's index when it is not a default range index; otherwise the
        first column. Times are in days.
    endpoint
        Survival endpoint written to ``obs[time_key]`` / ``obs[event_key]``: one of :data:`ENDPOINTS`.
    cancer_type
        Cancer type of the cohort. Where the survival table has a cancer type (``acronym`` in TCGA-CDR,
        ``cancer type abbreviation`` in Xena's copy of it), the table wins and this fills its gaps (a
        disagreement is logged as a warning); without either, ``obs['cancer_type']`` is not written.
    scales
        ``{modality: scale}``: the declared scale of each matrix, one of :data:`SCALES` (``"counts"``,
        ``"normalized"``, ``"log2"``, ``"zscore"``, ``"beta"``, ``"log2_ratio"``, ``"gistic"``, ``"binary"``,
        ``"other"``). The values are checked against it (``"counts"``: non-negative and finite, ...) and it is
        stored in ``mdata[mod].uns['scale']``. Undeclared modalities are only checked to be numeric without
        infinities.
    gene_level
        ``{modality: bool}``: whether a modality's features are genes, overriding the automatic rule: the
        ``rna_key`` modality is gene-level; another modality is gene-level when at least
        :data:`GENE_LEVEL_MIN_FRACTION` of its features map to a gene. A gene-level modality with no feature
        in the gene annotation is an error. Features of a non-gene-level modality (miRNAs, probes, ...) are
        not mapped.
    barcodes
        How sample identifiers become patients. ``"tcga"``: TCGA barcodes are harmonised (dots and
        underscores to dashes, upper case) and reduced to the patient barcode (first 12 characters); when a
        patient has several samples in one matrix, one is kept by
        :func:`~cfmd.datasets.select_primary_samples` (primary tumour ``01`` first, following
        :data:`~cfmd.datasets.SAMPLE_TYPE_PREFERENCE`; then vial letter; then barcode), and a patient whose
        samples cannot be ranked is an error naming the patient. ``"none"``: identifiers are kept as
        they are and must be unique. ``"auto"``: ``"tcga"`` if every identifier of every matrix is a TCGA
        barcode, ``"none"`` if none is (a mix is an error).
    duplicate_features
        What to do with duplicated features within a modality: features sharing a label (Ensembl version
        suffixes ignored) or, in gene-level modalities, mapped to the same Ensembl ID (e.g. several
        methylation probes labelled with one gene). ``"keep"``: keep all, with unique names (``TP53``,
        ``TP53-1``) and the original label in ``var['feature']``; ``"mean"``: average them (NaN ignored; the
        labels are joined with ``";"`` in ``var['feature']``); ``"first"``: keep the first in file order. With
        ``"mean"``/``"first"``, ``var['n_merged']`` counts the features each row stands for. Averaging raw
        counts makes them non-integer; ``"first"`` keeps them integral.
    on_missing_survival
        Patients in the matrices but absent from the survival table, or with a missing time or event:
        ``"raise"`` an error naming them, or ``"keep_nan"`` (a missing time is NaN; where an event is missing,
        ``obs[event_key]`` uses pandas' nullable ``Int64`` dtype). Downstream, :func:`~cfmd.tl.split_patients`
        splits such patients like any other and :func:`~cfmd.tl.evaluate` leaves them out of the survival head
        and the C-index (logged with their count); slice fidelity still scores them.
    patients_without_rna
        Patients that only other modalities (methylation, CNV, ...) cover. ``"keep"`` (default): keep them in
        ``mdata.obs`` and their modalities (logged as a warning; the models, which need RNA for every patient,
        refuse such a MuData); ``"drop"``: remove them from every modality (logged with their count and listed in
        ``uns['read_xena']['patients_dropped_without_rna']``); ``"error"``: raise an error naming them. Needs
        ``rna_key``.
    binarize
        Modalities whose values are binarised: ``> 0`` -> 1, ``0`` -> 0, NaN kept (e.g. ``binarize=["mut"]`` for
        per-gene mutation counts, where a count of 3 means "mutated"). Values must be non-negative; the scale
        becomes ``"binary"`` (a declared scale must be ``"binary"`` or absent) and
        ``mdata[mod].uns['binarized']`` records the rule and how many values were changed.
    probe_aggregation
        ``{modality: level}`` for Illumina methylation probe matrices (450k / 27k / EPIC IDs such as ``cg00000029``):
        ``"none"`` keeps probes as features; ``"chromosome"``, ``"arm"`` (p / q, hg19 centromeres) or ``"bin"``
        (``probe_bin_size`` windows, hg19) average each patient's probes over the region (NaN ignored) using the
        shipped 450k location table (:func:`~cfmd.datasets.illumina_probe_locations`); ``"gene"`` averages over
        the probes annotated to each gene, which needs ``probe_annotation`` with a gene column. Default for a
        modality not listed here whose features are mostly probe IDs: probes are kept, not gene-level, their
        ``var['chromosome']`` filled from the probe table, and a warning names this option.
    probe_annotation
        Probe table for ``probe_aggregation``: ``None`` (the shipped 450k table: hg19 positions at 100 kb
        resolution, no genes), or a path / DataFrame with a probe ID column (``probe``, ``#id``, ``id``, ``Name``,
        ...), ``chromosome`` / ``chrom``, a position (``position``, ``chromStart``, ``MAPINFO``, ...) and optionally
        ``gene`` (several genes separated by ``,`` or ``;``): UCSC Xena's probeMap files work as they are.
    probe_bin_size
        Width (bp) of the genomic bins of ``probe_aggregation="bin"`` (a multiple of 100 kb with the shipped table).
    repair_symbols
        Map R-mangled gene symbols back when the label itself is not in the annotation and the repair is:
        dots back to dashes (``NKX6.2`` -> ``NKX6-2``, ``HLA.A`` -> ``HLA-A``), a ``make.names`` ``X`` prefix
        removed, or a ``make.unique`` suffix ``.1`` removed (``AGAP4.1`` -> ``AGAP4``); see
        :func:`~cfmd.datasets.repair_r_symbol`. Repaired features keep their label in ``var['feature']`` and get
        the repaired ``var['gene_symbol']``.
    gene_aliases
        Alias / previous symbols to current ones, applied before the annotation lookup: a mapping
        ``{"KIAA1199": "CEMIP"}``, a DataFrame or a path to a TSV/CSV with ``alias`` and ``symbol`` columns (HGNC's
        download with ``Previous symbol`` / ``Alias symbol`` / ``Approved symbol`` works). The shipped annotation
        has no alias information, so without this table old symbols stay unmapped.
    rna_key
        The RNA modality, whose feature names are kept as they are (made unique if repeated); every other
        modality's names are prefixed ``"<modality>:"`` so that names are unique across the MuData. ``None``
        when there is no RNA modality (all names prefixed).
    time_key
        Column of ``mdata.obs`` that receives the survival time (days).
    event_key
        Column of ``mdata.obs`` that receives the event indicator (1 = event observed, 0 = censored).

    Returns
    -------
    Unpaired MuData (each modality holds only its patients; ``mdata.obs`` is their union, indexed by
    patient barcode) with

    ``mdata[mod].X``
        The matrix transposed to patients x features, dense ``float32``.
    ``mdata[mod].obs``
        ``sample_barcode``: the sample identifier kept for the patient, exactly as in the file; plus copies of
        the columns written to ``mdata.obs``.
    ``mdata[mod].var``
        ``feature`` (original label), ``gene_symbol``, ``ensembl_id``, ``chromosome`` (categoricals; the
        chromosome's categories are :data:`~cfmd.datasets.CHROMOSOMES`), ``start`` (``float64`` bp, GRCh38);
        missing where a feature does not map or the modality is not gene-level. With
        ``duplicate_features="mean"|"first"`` also ``n_merged``. RNA var names are the labels, other
        modalities' ``"<mod>:<label>"``. Probe-level modalities kept as probes: ``chromosome`` from the probe
        table. Aggregated probe modalities: ``feature`` is the region (``chr1``, ``chr1p``,
        ``chr1:0-1000000`` in hg19, or the gene), ``n_probes`` the number of probes averaged, and ``arm`` /
        ``bin_start_hg19`` / ``bin_end_hg19`` where they apply.
    ``mdata[mod].uns['scale']``
        The declared scale (only when given in ``scales``; ``"binary"`` for modalities in ``binarize``).
    ``mdata[mod].uns['binarized']``
        For ``binarize``: ``rule`` (``"value > 0 -> 1"``), ``n_values_changed`` (values other than 0/1 before),
        ``max_value`` (before).
    ``mdata[mod].uns['probe_aggregation']``
        For ``probe_aggregation``: ``level``, ``probe_annotation`` (source), ``bin_size``, ``n_probes_in_file``,
        ``n_probes_used``, ``n_probes_unlocated``, ``unlocated_examples`` and ``probe_map`` (a DataFrame
        ``probe``, ``feature``: which original probe IDs went into each feature).
    ``mdata.obs['cancer_type']``
        Categorical (see ``cancer_type``).
    ``mdata.obs[time_key]``, ``mdata.obs[event_key]``
        Survival time (days, float) and event (0/1 int) for ``endpoint`` (when ``survival`` is given).
    ``mdata.uns['read_xena']``
        Summary: ``barcodes`` (the mode used), ``rna_key``, ``n_patients``, ``n_patients_without_rna``;
        with survival ``survival`` (source), ``survival_layout``, ``endpoint``, ``time_key``, ``event_key``,
        ``n_patients_without_survival``, ``patients_without_survival``; and under ``modalities``, per
        modality: ``source``, ``scale``, ``n_samples`` (columns in the file), ``n_patients``,
        ``n_features_in_file``, ``n_features``, ``gene_level``, ``n_mapped`` / ``n_located`` / ``n_unmapped``
        features with ``unmapped_examples``, ``duplicate_features`` with ``n_duplicate_groups`` /
        ``n_duplicated_features``, ``dropped_samples``, ``n_normal_samples_kept``, ``n_missing_values``,
        ``feature_type`` (``"gene"``, ``"probe"`` or ``"other"``), ``n_without_symbol`` with
        ``without_symbol_examples`` (labels whose symbol is empty, e.g. ``|100130426``: not counted as unmapped
        nor shown as unmapped examples; TCGA's ``?|100130426`` is a symbol ``?`` and counts as unmapped), ``n_repaired`` with ``repaired_examples`` (``"NKX6.2->NKX6-2"``), ``n_aliased`` with
        ``aliased_examples``, ``binarized`` and ``probe_aggregation`` (the level or ``"none"``). Also
        ``patients_without_rna`` (the option) and ``patients_dropped_without_rna``. The same summary is logged
        to the ``cfmd`` logger.

    Raises
    ------
    InvalidInputError
        On any bad input, before anything is built: a missing file (also a :class:`FileNotFoundError`), an
        empty or non-numeric matrix, values outside the declared scale, infinite values, unresolvable
        repeated patients, a gene-level modality without any annotated gene, an unusable survival table or
        patients without survival (``on_missing_survival="raise"``), or an unknown option value. Messages
        name the modality, file or column and what was expected.

    Notes
    -----
    Features are mapped to genes with the shipped GRCh38 annotation (:func:`~cfmd.datasets.gene_annotation`):
    labels that are Ensembl gene IDs (version suffix stripped) by ID, other labels by symbol (for
    ``SYMBOL|EntrezID`` labels, the part before ``|``). Symbols the annotation does not know are looked up in
    Geneformer's symbol -> Ensembl map (:func:`~cfmd.datasets.geneformer_gene_name_id`); the annotation then
    gives the position when it knows that Ensembl ID (Y-chromosome genes, for instance, it does not), otherwise only the Ensembl ID is
    known (``n_mapped`` counts features with an Ensembl ID, ``n_located`` those with a chromosome; the
    annotation covers chromosomes 1-22 and X). ``gene_symbol`` is the label's symbol when the label is a symbol
    (the annotation's symbols are older than some current HGNC names, e.g. ``C20orf82`` for ``ISM1``), the
    annotation's (or Geneformer's) symbol when it is an Ensembl ID.

    Examples
    --------
    Files downloaded from the UCSC Xena TCGA hub (``https://xenabrowser.net/datapages/``):

    >>> mdata = cfmd.datasets.read_xena(
    ...     {"rna": "TCGA.OV.sampleMap_HiSeqV2.gz", "meth": "TCGA.OV.sampleMap_HumanMethylation450.gz"},
    ...     scales={"rna": "log2", "meth": "beta"},
    ...     survival="tcga_cdr",
    ... )  # doctest: +SKIP
    >>> mdata.obs[["cancer_type", "os_time", "os_event"]].head()  # doctest: +SKIP

    From DataFrames (features x samples), with a clinical table:

    >>> rna = pd.DataFrame({"TCGA-OR-A5J1-01A": [10, 0], "TCGA-OR-A5J2-01A": [3, 5]}, index=["TP53", "MKI67"])
    >>> clinical = pd.DataFrame(
    ...     {
    ...         "patient": ["TCGA-OR-A5J1", "TCGA-OR-A5J2"],
    ...         "vital_status": [1, 0],
    ...         "days_to_death": [400, None],
    ...         "days_to_last_followup": [None, 900],
    ...     }
    ... )
    >>> mdata = cfmd.datasets.read_xena({"rna": rna}, survival=clinical, cancer_type="ACC", scales={"rna": "counts"})
    >>> mdata.obs["os_time"].tolist(), mdata.obs["os_event"].tolist()
    ([400.0, 900.0], [1, 0])
    """
    # ------------------------------------------------------------------ options
    if not isinstance(modalities, Mapping) or len(modalities) == 0:
        raise InvalidInputError(
            "`modalities` must be a non-empty mapping {modality name: path or DataFrame}; "
            f"got {type(modalities).__name__}{' (empty)' if isinstance(modalities, Mapping) else ''}."
        )
    for name in modalities:
        if not isinstance(name, str) or not name or "/" in name or ":" in name:
            raise InvalidInputError(f"`modalities` keys must be non-empty strings without '/' or ':'; got {name!r}.")
    check_choice(endpoint, "endpoint", ENDPOINTS)
    check_choice(barcodes, "barcodes", ("auto", "tcga", "none"))
    check_choice(duplicate_features, "duplicate_features", ("keep", "mean", "first"))
    check_choice(on_missing_survival, "on_missing_survival", ("raise", "keep_nan"))
    check_choice(patients_without_rna, "patients_without_rna", ("keep", "drop", "error"))
    if patients_without_rna != "keep" and rna_key is None:
        raise InvalidInputError(
            f"`patients_without_rna={patients_without_rna!r}` needs an RNA modality; `rna_key` is None."
        )
    if isinstance(binarize, str) or not isinstance(binarize, Collection):
        raise InvalidInputError(f"`binarize` must be a list of modality names (e.g. ['mut']); got {binarize!r}.")
    binarize = list(binarize)
    check_mapping_keys(dict.fromkeys(binarize), modalities, "binarize")
    probe_aggregation = dict(probe_aggregation or {})
    check_mapping_keys(probe_aggregation, modalities, "probe_aggregation")
    for mod, level in probe_aggregation.items():
        check_choice(level, f"probe_aggregation[{mod!r}]", PROBE_AGGREGATIONS)
    if isinstance(probe_bin_size, bool) or not isinstance(probe_bin_size, int | np.integer) or probe_bin_size <= 0:
        raise InvalidInputError(f"`probe_bin_size` must be a positive integer (bp); got {probe_bin_size!r}.")
    if not isinstance(repair_symbols, bool | np.bool_):
        raise InvalidInputError(f"`repair_symbols` must be True or False; got {repair_symbols!r}.")
    aliases = read_gene_aliases(gene_aliases) if gene_aliases is not None else {}
    if rna_key is not None and rna_key not in modalities:
        raise InvalidInputError(
            f"`rna_key` must name one of the modalities {describe_examples(list(modalities))} (or be None when "
            f"there is no RNA modality); got {rna_key!r}."
        )
    scales = dict(scales or {})
    check_mapping_keys(scales, modalities, "scales")
    for mod, scale in scales.items():
        check_choice(scale, f"scales[{mod!r}]", SCALES)
    for mod in binarize:
        if scales.get(mod, "binary") != "binary":
            raise InvalidInputError(
                f"`binarize` lists {mod!r}, whose declared scale is {scales[mod]!r}; binarised values are 0/1: declare "
                f"`scales[{mod!r}]='binary'` or leave it out."
            )
        scales[mod] = "binary"
    gene_level = dict(gene_level or {})
    check_mapping_keys(gene_level, modalities, "gene_level")
    for mod, flag in gene_level.items():
        if not isinstance(flag, bool | np.bool_):
            raise InvalidInputError(f"`gene_level[{mod!r}]` must be True or False; got {flag!r}.")
    if cancer_type is not None and (not isinstance(cancer_type, str) or not cancer_type):
        raise InvalidInputError(f"`cancer_type` must be a non-empty string or None; got {cancer_type!r}.")
    for key, value in (("time_key", time_key), ("event_key", event_key)):
        if not isinstance(value, str) or not value:
            raise InvalidInputError(f"`{key}` must be a non-empty string; got {value!r}.")
    if time_key == event_key:
        raise InvalidInputError(f"`time_key` and `event_key` must differ; both are {time_key!r}.")
    if not (survival is None or isinstance(survival, str | os.PathLike | pd.DataFrame)):
        raise InvalidInputError(
            f"`survival` must be None, 'tcga_cdr', a path or a DataFrame; got {type(survival).__name__}."
        )

    # every file must exist before any is read
    for mod, source in modalities.items():
        if not isinstance(source, str | os.PathLike | pd.DataFrame):
            raise InvalidInputError(
                f"`modalities[{mod!r}]` must be a path to a TSV / TSV.gz matrix or a DataFrame; "
                f"got {type(source).__name__}."
            )
        if not isinstance(source, pd.DataFrame):
            _existing_file(source, f"modalities[{mod!r}]")
    if isinstance(survival, str | os.PathLike) and not (isinstance(survival, str) and survival == "tcga_cdr"):
        _existing_file(survival, "survival")

    # ------------------------------------------------------------------ read and check every input
    mods = [_read_matrix(mod, source) for mod, source in modalities.items()]
    for m in mods:
        if m.name in binarize:
            _binarize(m)
        _check_scale(m, scales.get(m.name))
        _detect_probes(m, probe_aggregation.get(m.name), is_rna=m.name == rna_key)
    mode = _barcode_mode(mods, barcodes)
    for m in mods:
        _assign_patients(m, mode)
    dropped_without_rna = _patients_without_rna(mods, rna_key, patients_without_rna)
    for m in mods:
        level = probe_aggregation.get(m.name, "none")
        if level != "none":
            _aggregate(m, level, probe_annotation, probe_bin_size)
        declared = gene_level.get(m.name)
        if declared is None and m.feature_type == "probe":
            declared = level == "gene"
        _map_genes(m, declared, is_rna=m.name == rna_key, aliases=aliases, repair=bool(repair_symbols))
        _add_extra_var(m, explicit=m.name in probe_aggregation)
        _handle_duplicates(m, duplicate_features)
    _name_features(mods, rna_key)

    patients = list(dict.fromkeys(p for m in mods for p in m.patients))
    obs = pd.DataFrame(index=pd.Index(patients, dtype=object))
    survival_info: dict = {"survival": "none"}
    if survival is not None:
        table, source, layout, id_column = _read_survival(survival, endpoint, mode)
        obs, survival_info = _join_survival(
            obs, table, source, id_column, endpoint, on_missing_survival, time_key, event_key
        )
        survival_info.update(survival=source, survival_layout=layout, endpoint=endpoint)
    _add_cancer_type(obs, cancer_type)

    # ------------------------------------------------------------------ build
    adatas = {}
    for m in mods:
        mod_obs = obs.loc[m.patients].copy()
        mod_obs.insert(0, "sample_barcode", np.asarray(m.samples, dtype=object))
        adata = ad.AnnData(X=m.values.T.astype(np.float32), obs=mod_obs, var=m.var)
        if m.name in scales:
            adata.uns["scale"] = scales[m.name]
        if m.binarized:
            adata.uns["binarized"] = dict(m.binarized)
        if m.probe_info:
            adata.uns["probe_aggregation"] = {**m.probe_info, "probe_map": m.probe_map}
        adatas[m.name] = adata
    import mudata as md

    mdata = new_mudata(adatas)
    with md.set_options(pull_on_update=False):
        mdata.obs = obs.loc[mdata.obs_names].copy()
    summary = _summary(mods, mode, scales, duplicate_features, obs, rna_key, survival_info)
    summary["patients_without_rna"] = patients_without_rna
    summary["patients_dropped_without_rna"] = np.asarray(dropped_without_rna, dtype=object)
    mdata.uns["read_xena"] = summary
    _log_summary(mods, summary)
    return mdata


# ---------------------------------------------------------------------- reading


def _read_matrix(mod: str, source) -> _Modality:
    """Read one features x samples matrix (path or DataFrame) and check that it is non-empty and numeric."""
    if isinstance(source, pd.DataFrame):
        where = f"modalities[{mod!r}] (DataFrame)"
        frame = source
        features = [str(f).strip() for f in frame.index]
        samples = [str(s).strip() for s in frame.columns]
        cells = frame
        source_name = "DataFrame"
    else:
        path = _existing_file(source, f"modalities[{mod!r}]")
        where = f"modalities[{mod!r}] ({path.name})"
        source_name = str(path)
        try:
            with _open_text(path) as fh:
                header = next(csv.reader(fh, delimiter="\t", quoting=csv.QUOTE_NONE), [])
        except (OSError, UnicodeDecodeError, EOFError) as err:
            raise InvalidInputError(f"{where}: cannot read the file as tab-separated text ({err}).") from None
        samples = [s.strip() for s in header[1:]]
        if samples:
            try:
                cells = pd.read_csv(
                    path,
                    sep="\t",
                    header=None,
                    skiprows=1,
                    dtype={0: str},
                    keep_default_na=False,
                    na_values=dict.fromkeys(range(1, len(samples) + 1), _NA_VALUES),
                    compression="gzip" if _is_gzip(path) else None,
                    quoting=csv.QUOTE_NONE,
                )
            except pd.errors.EmptyDataError:
                cells = pd.DataFrame(columns=range(len(samples) + 1))
            except (pd.errors.ParserError, UnicodeDecodeError, OSError, EOFError) as err:
                raise InvalidInputError(f"{where}: cannot parse the matrix ({err}).") from None
            if cells.shape[1] != len(samples) + 1:
                raise InvalidInputError(
                    f"{where}: the header names {len(samples)} sample(s) but rows have {cells.shape[1] - 1} value(s); "
                    "expected a features x samples matrix whose first column is the feature label."
                )
            features = [str(f).strip() for f in cells.iloc[:, 0]]
            cells = cells.iloc[:, 1:]
        else:
            features, cells = [], pd.DataFrame()

    if not samples:
        raise InvalidInputError(
            f"{where} has no samples: expected sample identifiers in the header after the feature column."
        )
    if not features:
        raise InvalidInputError(f"{where} has no features: expected one row per feature below the header.")
    empty_samples = [j for j, s in enumerate(samples) if not s]
    if empty_samples:
        raise InvalidInputError(
            f"{where}: sample identifier(s) in column(s) {describe_examples([j + 2 for j in empty_samples])} are empty."
        )
    empty_features = [i for i, f in enumerate(features) if not f or f == "nan"]
    if empty_features:
        raise InvalidInputError(
            f"{where}: feature label(s) of row(s) {describe_examples([i + 1 for i in empty_features])} are empty; "
            "expected a label (gene, probe, ...) in the first column of every row."
        )
    values = _numeric_values(cells, features, samples, where)
    n_inf = int(np.isinf(values).sum())
    if n_inf:
        i, j = np.argwhere(np.isinf(values))[0]
        raise InvalidInputError(
            f"{where} must not hold infinite values; found {n_inf} (e.g. feature {features[i]!r}, sample "
            f"{samples[j]!r}). Missing values may be NA or empty."
        )
    return _Modality(
        name=mod,
        source=source_name,
        values=values,
        features=features,
        samples=samples,
        n_samples_in_file=len(samples),
        n_features_in_file=len(features),
    )


def _numeric_values(cells: pd.DataFrame, features: list[str], samples: list[str], where: str) -> np.ndarray:
    """The matrix as float64, or an error naming the first non-numeric cell."""
    if all(pd.api.types.is_numeric_dtype(dt) and not pd.api.types.is_bool_dtype(dt) for dt in cells.dtypes):
        return cells.to_numpy(dtype=np.float64, na_value=np.nan)
    columns = []
    for j in range(cells.shape[1]):
        col = cells.iloc[:, j]
        if pd.api.types.is_bool_dtype(col.dtype):
            raise InvalidInputError(f"{where} must be numeric; sample {samples[j]!r} holds booleans.")
        if pd.api.types.is_numeric_dtype(col.dtype):
            columns.append(col.to_numpy(dtype=np.float64, na_value=np.nan))
            continue
        raw = col.astype(object)
        as_text = raw.where(raw.isna(), raw.astype(str).str.strip())
        as_text = as_text.mask(as_text.isin(_NA_VALUES))
        numbers = pd.to_numeric(as_text, errors="coerce")
        bad = numbers.isna().to_numpy() & as_text.notna().to_numpy()
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            raise InvalidInputError(
                f"{where} must be numeric; found {int(bad.sum())} non-numeric value(s) in sample {samples[j]!r} "
                f"(e.g. {as_text.iloc[i]!r} for feature {features[i]!r}). Expected numbers, with NA or empty "
                "cells for missing values."
            )
        columns.append(numbers.to_numpy(dtype=np.float64, na_value=np.nan))
    return np.column_stack(columns)


# ---------------------------------------------------------------------- scales


def _check_scale(m: _Modality, scale: str | None) -> None:
    what = f"modalities[{m.name!r}] ({Path(m.source).name}, declared scale {scale!r})"
    values = m.values
    if scale in ("counts", "normalized"):
        check_counts(values, what, require_integer=False)
        if scale == "counts" and np.any(np.abs(values - np.round(values)) > 1e-6):
            logger.info(
                "read_xena: %r declared as counts holds non-integer values (e.g. RSEM expected counts).", m.name
            )
        return
    observed = values[~np.isnan(values)]
    if scale == "beta" and observed.size and (observed.min() < 0 or observed.max() > 1):
        raise InvalidInputError(
            f"{what} must hold beta values in [0, 1]; found values from {observed.min():g} to {observed.max():g}."
        )
    allowed = {"gistic": (-2.0, -1.0, 0.0, 1.0, 2.0), "binary": (0.0, 1.0)}.get(scale or "")
    if allowed is not None:
        bad = observed[~np.isin(observed, allowed)]
        if bad.size:
            hint = ""
            if scale == "binary" and bad.min() >= 0:
                hint = (
                    f" These look like counts (maximum {bad.max():g}): pass `binarize=[{m.name!r}]` to turn values "
                    "> 0 into 1."
                )
            raise InvalidInputError(
                f"{what} must hold only {describe_examples([int(a) for a in allowed])}; "
                f"found {bad.size} other value(s), e.g. {bad[0]:g}.{hint}"
            )


def _binarize(m: _Modality) -> None:
    """``binarize``: values > 0 -> 1 (mutation counts -> mutated); negative values are an error."""
    observed = m.values[~np.isnan(m.values)]
    if observed.size and observed.min() < 0:
        i, j = np.argwhere(m.values < 0)[0]
        raise InvalidInputError(
            f"modalities[{m.name!r}] ({Path(m.source).name}) is listed in `binarize` but holds negative values "
            f"(e.g. {m.values[i, j]:g} for feature {m.features[i]!r}); expected non-negative counts or calls."
        )
    changed = int(np.count_nonzero(~np.isin(observed, (0.0, 1.0))))
    m.binarized = {
        "rule": "value > 0 -> 1, 0 -> 0, NaN kept",
        "n_values_changed": changed,
        "max_value": float(observed.max()) if observed.size else 0.0,
    }
    m.values = np.where(np.isnan(m.values), np.nan, (m.values > 0).astype(np.float64))
    logger.info(
        "read_xena: %r binarised (values > 0 -> 1): %d value(s) other than 0/1 changed (maximum %g).",
        m.name,
        changed,
        m.binarized["max_value"],
    )


# ---------------------------------------------------------------------- methylation probes


def _detect_probes(m: _Modality, level: str | None, *, is_rna: bool) -> None:
    fraction = float(is_probe_id(m.features).mean())
    if fraction >= _PROBE_LEVEL_MIN_FRACTION and not is_rna:
        m.feature_type = "probe"
    if level not in (None, "none") and m.feature_type != "probe":
        raise InvalidInputError(
            f"`probe_aggregation[{m.name!r}]={level!r}` but modalities[{m.name!r}] ({Path(m.source).name}) is not "
            f"probe-level: {fraction:.0%} of its features (e.g. {describe_examples(m.features, limit=3)}) are "
            "Illumina probe IDs (cg00000029, ...); expected at least half."
        )


def _aggregate(m: _Modality, level: str, annotation, bin_size: int) -> None:
    where = f"modalities[{m.name!r}] ({Path(m.source).name})"
    m.values, var, m.probe_map, m.probe_info = aggregate_probes(
        m.values, m.features, level, annotation=annotation, bin_size=int(bin_size), field=where
    )
    m.features = var["feature"].tolist()
    m.extra_var = var.drop(columns=["feature"]).reset_index(drop=True)
    logger.info(
        "read_xena: %r: %d probe(s) averaged into %d %s feature(s) (%d probe(s) not in the probe table).",
        m.name,
        m.probe_info["n_probes_used"],
        len(m.features),
        level,
        m.probe_info["n_probes_unlocated"],
    )


def _add_extra_var(m: _Modality, *, explicit: bool) -> None:
    """Region columns of aggregated probes, or the chromosome of kept probes, into ``m.var``."""
    if m.extra_var is not None:
        for column in m.extra_var.columns:
            values = m.extra_var[column].to_numpy()
            if column == "chromosome":
                m.var["chromosome"] = pd.Categorical(values, categories=m.var["chromosome"].cat.categories)
            else:
                m.var[column] = values
        return
    if m.feature_type == "probe" and not m.gene_level:
        from ._probes import illumina_probe_locations

        chrom = illumina_probe_locations()["chromosome"].reindex(pd.Index(m.features, dtype=object))
        m.var["chromosome"] = pd.Categorical(
            chrom.to_numpy(dtype=object), categories=m.var["chromosome"].cat.categories
        )
        if explicit:
            return
        logger.warning(
            "read_xena: %r holds Illumina methylation probes (%d); kept probe-level (not gene-level). Pass "
            "`probe_aggregation={%r: 'gene'|'bin'|'arm'|'chromosome'}` to average them over regions.",
            m.name,
            len(m.features),
            m.name,
        )


def _patients_without_rna(mods: list[_Modality], rna_key: str | None, how: str) -> list[str]:
    if rna_key is None:
        return []
    rna = set(next(m.patients for m in mods if m.name == rna_key))
    without = list(dict.fromkeys(p for m in mods for p in m.patients if p not in rna))
    if not without or how == "keep":
        if without:
            logger.warning(
                "read_xena: %d patient(s) have other modalities but no RNA (e.g. %s); kept. The models need RNA for "
                "every patient: pass `patients_without_rna='drop'` to leave them out.",
                len(without),
                describe_examples(without, limit=3),
            )
        return []
    if how == "error":
        raise InvalidInputError(
            f"{len(without)} patient(s) have other modalities but no RNA in modalities[{rna_key!r}] "
            f"({describe_examples(without)}); every patient needs RNA. Pass `patients_without_rna='drop'` to leave "
            "them out, or 'keep' to keep them."
        )
    drop = set(without)
    for m in mods:
        keep = np.array([p not in drop for p in m.patients], dtype=bool)
        if keep.all():
            continue
        m.values = m.values[:, keep]
        m.patients = [p for p, k in zip(m.patients, keep) if k]
        m.samples = [s for s, k in zip(m.samples, keep) if k]
        m.sample_types = [t for t, k in zip(m.sample_types, keep) if k]
        if not m.patients:
            raise InvalidInputError(
                f"modalities[{m.name!r}] has no patient with RNA: `patients_without_rna='drop'` would leave it empty."
            )
    logger.warning(
        "read_xena: dropped %d patient(s) without RNA (`patients_without_rna='drop'`), e.g. %s.",
        len(without),
        describe_examples(without, limit=3),
    )
    return without


# ---------------------------------------------------------------------- barcodes


def _barcode_mode(mods: list[_Modality], barcodes: str) -> str:
    tcga = {m.name: is_tcga_barcode(m.samples) for m in mods}
    for m in mods:
        if barcodes != "none" and not tcga[m.name].any() and is_tcga_barcode(m.features[:1000]).mean() > 0.5:
            raise InvalidInputError(
                f"modalities[{m.name!r}]: the feature column holds TCGA barcodes and the header does not; the "
                "matrix looks transposed. Expected features x samples (samples as columns)."
            )
    if barcodes == "none":
        return "none"
    if barcodes == "tcga":
        for m in mods:
            bad = [s for s, ok in zip(m.samples, tcga[m.name]) if not ok]
            if bad:
                raise InvalidInputError(
                    f"modalities[{m.name!r}]: `barcodes='tcga'` but sample identifier(s) {describe_examples(bad)} are "
                    "not TCGA barcodes (TCGA-XX-XXXX...); pass `barcodes='none'` to keep identifiers as they are."
                )
        return "tcga"
    if all(t.all() for t in tcga.values()):
        return "tcga"
    if not any(t.any() for t in tcga.values()):
        return "none"
    mixed = [
        f"{m.name!r} ({int(tcga[m.name].sum())} TCGA, e.g. non-TCGA "
        f"{describe_examples([s for s, ok in zip(m.samples, tcga[m.name]) if not ok], limit=3)})"
        for m in mods
        if not tcga[m.name].all()
    ]
    raise InvalidInputError(
        "`barcodes='auto'` found TCGA barcodes in some sample identifiers but not all: "
        f"{'; '.join(mixed)}. Pass `barcodes='tcga'` (after removing non-TCGA columns) or `barcodes='none'`."
    )


def _assign_patients(m: _Modality, mode: str) -> None:
    where = f"sample columns of modalities[{m.name!r}] ({Path(m.source).name})"
    if mode == "none":
        index = pd.Index(m.samples)
        if not index.is_unique:
            dups = index[index.duplicated()].unique()
            raise InvalidInputError(
                f"{where} must be unique with `barcodes='none'`; repeated patient(s) {describe_examples(dups)}."
            )
        m.patients = list(m.samples)
        m.sample_types = [""] * len(m.samples)
        return
    table = select_primary_samples(m.samples, field=where)
    keep = table["selected"].to_numpy()
    m.dropped_samples = [s for s, k in zip(m.samples, keep) if not k]
    m.values = m.values[:, keep]
    m.patients = table["patient_barcode"].to_numpy()[keep].tolist()
    m.sample_types = table["sample_type"].to_numpy()[keep].tolist()
    m.samples = [s for s, k in zip(m.samples, keep) if k]


# ---------------------------------------------------------------------- genes


# ---------------------------------------------------------------------- survival


# ---------------------------------------------------------------------- summary


def _summary(
    mods: list[_Modality],
    mode: str,
    scales: Mapping[str, str],
    duplicate_features: str,
    obs: pd.DataFrame,
    rna_key: str | None,
    survival_info: dict,
) -> dict:
    per_mod = {}
    for m in mods:
        n_missing = int(np.isnan(m.values).sum())
        per_mod[m.name] = {
            "source": m.source,
            "scale": scales.get(m.name, ""),
            "n_samples": m.n_samples_in_file,
            "n_patients": len(m.patients),
            "n_features_in_file": m.n_features_in_file,
            "n_features": len(m.var),
            "gene_level": bool(m.gene_level),
            "n_mapped": m.n_mapped,
            "n_located": m.n_located,
            "n_unmapped": len(m.unmapped),
            "unmapped_examples": np.asarray(m.unmapped[:10], dtype=object),
            "duplicate_features": duplicate_features,
            "n_duplicate_groups": m.n_duplicate_groups,
            "n_duplicated_features": m.n_duplicated_features,
            "dropped_samples": np.asarray(m.dropped_samples, dtype=object),
            "n_normal_samples_kept": int(sum(t in NORMAL_SAMPLE_TYPES for t in m.sample_types)),
            "n_missing_values": n_missing,
            "feature_type": m.feature_type,
            "n_without_symbol": len(m.without_symbol),
            "without_symbol_examples": np.asarray(m.without_symbol[:10], dtype=object),
            "n_repaired": len(m.repaired),
            "repaired_examples": np.asarray(m.repaired[:10], dtype=object),
            "n_aliased": len(m.aliased),
            "aliased_examples": np.asarray(m.aliased[:10], dtype=object),
            "binarized": bool(m.binarized),
            "probe_aggregation": m.probe_info.get("level", "none"),
        }
    rna_patients = set(next((m.patients for m in mods if m.name == rna_key), []))
    summary = {
        "barcodes": mode,
        "rna_key": rna_key or "",
        "n_patients": len(obs),
        "n_patients_without_rna": len(obs) - len(rna_patients) if rna_key is not None else len(obs),
        "modalities": per_mod,
    }
    summary.update(survival_info)
    return summary


def _log_summary(mods: list[_Modality], summary: dict) -> None:
    logger.info(
        "read_xena: %d patient(s) over %d modalities (barcodes=%r).",
        summary["n_patients"],
        len(mods),
        summary["barcodes"],
    )
    for m in mods:
        s = summary["modalities"][m.name]
        logger.info(
            "read_xena: %r: %d sample(s) -> %d patient(s), %d feature(s)%s.",
            m.name,
            s["n_samples"],
            s["n_patients"],
            s["n_features"],
            f", {s['n_mapped']} mapped to genes ({s['n_located']} with a position)"
            if m.gene_level
            else ", not gene-level",
        )
        if s["dropped_samples"].size:
            logger.info(
                "read_xena: %r: dropped %d extra sample(s) of repeated patients (kept the preferred sample type): %s.",
                m.name,
                s["dropped_samples"].size,
                describe_examples(s["dropped_samples"]),
            )
        if s["n_normal_samples_kept"]:
            logger.warning(
                "read_xena: %r: %d patient(s) are represented by a normal-tissue sample (no tumour sample in the file).",
                m.name,
                s["n_normal_samples_kept"],
            )
        if s["n_unmapped"]:
            logger.info(
                "read_xena: %r: %d feature(s) not mapped to a gene, e.g. %s.",
                m.name,
                s["n_unmapped"],
                describe_examples(m.unmapped),
            )
        if s["n_without_symbol"]:
            logger.info(
                "read_xena: %r: %d feature(s) with an empty gene symbol (e.g. %s); not counted as unmapped.",
                m.name,
                s["n_without_symbol"],
                describe_examples(m.without_symbol, limit=3),
            )
        if s["n_repaired"] or s["n_aliased"]:
            logger.info(
                "read_xena: %r: %d R-mangled symbol(s) repaired (e.g. %s) and %d mapped through `gene_aliases`.",
                m.name,
                s["n_repaired"],
                describe_examples(m.repaired, limit=3) if m.repaired else "none",
                s["n_aliased"],
            )
        if s["n_duplicated_features"]:
            action = {
                "keep": "kept apart with unique names",
                "mean": "averaged",
                "first": "reduced to the first",
            }[s["duplicate_features"]]
            logger.info(
                "read_xena: %r: %d feature(s) in %d duplicate group(s) %s.",
                m.name,
                s["n_duplicated_features"],
                s["n_duplicate_groups"],
                action,
            )
        if s["n_missing_values"]:
            logger.warning("read_xena: %r holds %d missing value(s) (NaN).", m.name, s["n_missing_values"])
    if summary["rna_key"] and summary["n_patients_without_rna"]:
        logger.info("read_xena: %d patient(s) have no RNA.", summary["n_patients_without_rna"])
