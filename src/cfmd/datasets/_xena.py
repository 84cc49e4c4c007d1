"""Read UCSC-Xena-style matrices (features x samples) and a survival table into an unpaired MuData."""

from __future__ import annotations

import os
from collections.abc import Collection, Mapping
from typing import TYPE_CHECKING, Literal

import anndata as ad
import numpy as np
import pandas as pd

from .._constants import DEFAULT_RNA_KEY
from .._utils import new_mudata
from .._validation import (
    InvalidInputError,
    check_choice,
    check_mapping_keys,
    describe_examples,
)
from ._probes import PROBE_AGGREGATIONS
from ._symbols import read_gene_aliases
from ._xena_files import _existing_file
from ._xena_genes import (
    _handle_duplicates,
    _map_genes,
    _name_features,
)
from ._xena_matrix import (
    _add_extra_var,
    _aggregate,
    _binarize,
    _check_scale,
    _detect_probes,
    _read_matrix,
)
from ._xena_patients import _assign_patients, _barcode_mode, _patients_without_rna
from ._xena_summary import _log_summary, _summary
from ._xena_survival import (
    _add_cancer_type,
    _join_survival,
    _read_survival,
)

if TYPE_CHECKING:
    from mudata import MuData

__all__ = ["ENDPOINTS", "SCALES", "read_xena"]


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
