"""Illumina methylation probes: the shipped 450k location table and probe -> region aggregation.

The shipped table ``illumina450k_probe_bins_hg19.tsv.gz`` is a compact copy of the Bioconductor
``IlluminaHumanMethylation450kanno.ilmn12.hg19`` ``Locations`` table (485,512 probes: 482,421 ``cg`` and
3,091 ``ch`` probes): chromosome and position (hg19) rounded down to :data:`PROBE_POSITION_RESOLUTION`
(100 kb), so that it stays under 2 MB. ``cg`` rows are sorted by probe number and store the difference to
the previous number; ``ch`` rows store the probe name. It is enough for chromosome, arm and genomic-bin
aggregation (bins that are multiples of 100 kb); gene-level aggregation needs a probe -> gene table
(``probe_annotation=``, e.g. UCSC Xena's ``illuminaMethyl450_hg19_GPL16304_TCGAlegacy`` probeMap). The
HumanMethylation27 array's probes are, with few exceptions, 450k probes (all 574 of ``tcga_brca_348``);
EPIC-only probes are not in the table and are reported as unlocated.
"""

from __future__ import annotations

import os
import re
from functools import cache
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import sparse

from .._constants import chromosome_label
from .._validation import InvalidInputError, describe_examples

__all__ = [
    "CENTROMERES_HG19",
    "PROBE_AGGREGATIONS",
    "PROBE_POSITION_RESOLUTION",
    "aggregate_probes",
    "illumina_probe_locations",
    "is_probe_id",
]

#: Levels probe-level methylation can be aggregated to (``probe_aggregation=``); ``"none"`` keeps probes.
PROBE_AGGREGATIONS: tuple[str, ...] = ("none", "gene", "bin", "arm", "chromosome")
#: Resolution (bp) of the positions in the shipped probe table.
PROBE_POSITION_RESOLUTION = 100_000
#: hg19 centromere gaps (UCSC ``gap`` table, type ``centromere``): ``{chromosome: (start, end)}``. A probe is on
#: the p arm when its position is before the start, otherwise on the q arm (no 450k probe lies inside a gap).
CENTROMERES_HG19: dict[str, tuple[int, int]] = {
    "1": (121_535_434, 124_535_434), "2": (92_326_171, 95_326_171), "3": (90_504_854, 93_504_854),
    "4": (49_660_117, 52_660_117), "5": (46_405_641, 49_405_641), "6": (58_830_166, 61_830_166),
    "7": (58_054_331, 61_054_331), "8": (43_838_887, 46_838_887), "9": (47_367_679, 50_367_679),
    "10": (39_254_935, 42_254_935), "11": (51_644_205, 54_644_205), "12": (34_856_694, 37_856_694),
    "13": (16_000_000, 19_000_000), "14": (16_000_000, 19_000_000), "15": (17_000_000, 20_000_000),
    "16": (35_335_801, 38_335_801), "17": (22_263_006, 25_263_006), "18": (15_460_898, 18_460_898),
    "19": (24_681_782, 27_681_782), "20": (26_369_569, 29_369_569), "21": (11_288_129, 14_288_129),
    "22": (13_000_000, 16_000_000), "X": (58_632_012, 61_632_012), "Y": (10_104_553, 13_104_553),
}  # fmt: skip
_CHROM_ORDER = {c: i for i, c in enumerate(CENTROMERES_HG19)}
_PROBE = re.compile(r"^(cg\d{8}|ch\.[0-9XY]{1,2}\.\d+[FR]?|rs\d+|nv\.\S+)$")
_FILE = "illumina450k_probe_bins_hg19.tsv.gz"
_ID_COLUMNS = ("probe", "#id", "id", "probe_id", "ID", "Name", "IlmnID")
_CHROM_COLUMNS = ("chromosome", "chrom", "chr", "CHR", "seqnames")
_POS_COLUMNS = ("position", "position_hg19", "chromStart", "start", "pos", "MAPINFO")
_GENE_COLUMNS = ("gene", "genes", "gene_symbol", "UCSC_RefGene_Name")


def is_probe_id(labels) -> np.ndarray:
    """Boolean array: which labels look like Illumina methylation probe IDs (``cg00000029``, ``ch.X.1234R``, ``rs...``)."""
    return np.array([bool(_PROBE.match(str(label))) for label in labels], dtype=bool)


@cache
def _shipped() -> pd.DataFrame:
    from importlib.resources import files

    with (files("cfmd.datasets") / "data" / _FILE).open("rb") as fh:
        raw = pd.read_csv(fh, sep="\t", compression="gzip", dtype=str, keep_default_na=False)
    is_cg = ~raw["key"].str.startswith("ch")
    numbers = np.cumsum(raw.loc[is_cg, "key"].astype(np.int64).to_numpy())
    names = raw["key"].to_numpy(dtype=object).copy()
    names[is_cg.to_numpy()] = [f"cg{n:08d}" for n in numbers]
    return pd.DataFrame(
        {
            "chromosome": raw["chromosome"].to_numpy(dtype=object),
            "position": raw["bin"].astype(np.int64).to_numpy() * PROBE_POSITION_RESOLUTION,
        },
        index=pd.Index(names, name="probe", dtype=object),
    )


def illumina_probe_locations() -> pd.DataFrame:
    """The shipped Illumina 450k probe locations (hg19, 100 kb resolution).

    Returns
    -------
    One row per probe (index ``probe``: 485,512 ``cg``/``ch`` probes) with ``chromosome`` (``"1"``-``"22"``,
    ``"X"``, ``"Y"``) and ``position`` (hg19 bp, rounded down to :data:`PROBE_POSITION_RESOLUTION`).

    Examples
    --------
    >>> table = cfmd.datasets.illumina_probe_locations()
    >>> table.loc["cg00000029", "chromosome"]
    '16'
    """
    return _shipped().copy()


def _build_shipped_table(full_table: str | os.PathLike, out: str | os.PathLike) -> None:  # pragma: no cover
    """Rebuild the shipped compact table from the full Bioconductor ``Locations`` TSV (probe, chromosome, position_hg19)."""
    import gzip

    full = pd.read_csv(full_table, sep="\t", dtype={"chromosome": str})
    cg = full[full["probe"].str.startswith("cg")].copy()
    cg["number"] = cg["probe"].str[2:].astype(np.int64)
    cg = cg.sort_values("number")
    cg["key"] = np.diff(cg["number"].to_numpy(), prepend=0).astype(str)
    ch = full[~full["probe"].str.startswith("cg")].copy()
    ch["key"] = ch["probe"]
    rows = pd.concat([cg, ch])
    rows["bin"] = rows["position_hg19"] // PROBE_POSITION_RESOLUTION
    with gzip.open(out, "wt", compresslevel=9) as fh:
        rows[["key", "chromosome", "bin"]].to_csv(fh, sep="\t", index=False)


def _read_probe_annotation(source) -> tuple[pd.DataFrame, str, bool]:
    """User probe table -> (``chromosome``, ``position``[, ``gene``] indexed by probe, source name, exact positions)."""
    if source is None:
        return _shipped(), "shipped Illumina 450k locations (hg19, 100 kb resolution)", False
    if isinstance(source, pd.DataFrame):
        raw, name = source.copy(), "DataFrame"
        if not isinstance(raw.index, pd.RangeIndex) and not any(c in raw.columns for c in _ID_COLUMNS):
            raw = raw.rename_axis("probe").reset_index()
    else:
        path = Path(os.fspath(source)).expanduser()
        if not path.is_file():
            raise InvalidInputError(f"`probe_annotation`: {str(path)!r} does not exist; expected a TSV / CSV file.")
        name = str(path)
        with open(path, "rb") as fh:
            gz = fh.read(2) == b"\x1f\x8b"
        try:
            raw = pd.read_csv(path, sep=None, engine="python", dtype=str, compression="gzip" if gz else None)
        except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError, OSError) as err:
            raise InvalidInputError(f"`probe_annotation` ({path.name}): cannot read the table ({err}).") from None
    columns = list(raw.columns)
    id_col = next((c for c in _ID_COLUMNS if c in columns), columns[0] if columns else None)
    chrom_col = next((c for c in _CHROM_COLUMNS if c in columns), None)
    pos_col = next((c for c in _POS_COLUMNS if c in columns), None)
    gene_col = next((c for c in _GENE_COLUMNS if c in columns), None)
    if id_col is None or chrom_col is None or (pos_col is None and gene_col is None):
        raise InvalidInputError(
            f"`probe_annotation` ({Path(name).name}) must have a probe ID column ({describe_examples(_ID_COLUMNS)}), "
            f"a chromosome column ({describe_examples(_CHROM_COLUMNS)}) and a position "
            f"({describe_examples(_POS_COLUMNS)}) or gene ({describe_examples(_GENE_COLUMNS)}) column; found "
            f"{describe_examples(columns, limit=12)}."
        )
    chrom = np.array([chromosome_label(value) for value in raw[chrom_col]], dtype=object)
    table = pd.DataFrame({"chromosome": chrom}, index=pd.Index(raw[id_col].astype(str), name="probe"))
    if pos_col is not None:
        table["position"] = pd.to_numeric(raw[pos_col], errors="coerce").to_numpy()
    if gene_col is not None:
        genes = raw[gene_col].astype(object).where(raw[gene_col].notna(), "")
        table["gene"] = genes.astype(str).to_numpy(dtype=object)
    table = table[~table.index.duplicated()]
    return table, name, True


def aggregate_probes(
    values: np.ndarray,
    probes: list[str],
    level: str,
    *,
    annotation=None,
    bin_size: int = 1_000_000,
    field: str = "probe-level matrix",
) -> tuple[np.ndarray, pd.DataFrame, pd.DataFrame, dict]:
    """Average probe-level beta values (features x samples) over genes, genomic bins, chromosome arms or chromosomes.

    Parameters
    ----------
    values
        Probes x samples (NaN ignored in the means).
    probes
        Probe IDs, one per row of ``values``.
    level
        ``"gene"``, ``"bin"``, ``"arm"`` or ``"chromosome"``.
    annotation
        ``None`` (the shipped 450k table) or a table / path with probe ID, chromosome, position and (for
        ``"gene"``) gene columns (Xena probeMap ``#id gene chrom chromStart ...`` works as is).
    bin_size
        Bin width (bp) for ``level="bin"``; with the shipped table a multiple of 100 kb.
    field
        Name used in error messages.

    Returns
    -------
    ``(values, var, probe_map, info)``: regions x samples means; ``var`` with ``feature`` (region label),
    ``chromosome``, ``arm`` / ``bin_start_hg19`` / ``bin_end_hg19`` where they apply and ``n_probes``; ``probe_map``
    (``probe``, ``feature``: which probes went into each feature, a probe listed once per gene it annotates);
    ``info`` (level, annotation source, bin size, counts of used / unlocated probes with examples).
    """
    if level not in PROBE_AGGREGATIONS[1:]:
        raise InvalidInputError(
            f"probe aggregation level must be one of {list(PROBE_AGGREGATIONS[1:])}; got {level!r}."
        )
    table, source, exact = _read_probe_annotation(annotation)
    if level == "bin":
        if isinstance(bin_size, bool) or not isinstance(bin_size, int | np.integer) or bin_size <= 0:
            raise InvalidInputError(f"`probe_bin_size` must be a positive integer (bp); got {bin_size!r}.")
        if not exact and bin_size % PROBE_POSITION_RESOLUTION:
            raise InvalidInputError(
                f"`probe_bin_size` must be a multiple of {PROBE_POSITION_RESOLUTION:,} bp with the shipped probe table "
                f"(its positions are rounded to that); got {bin_size}. Pass `probe_annotation=` with exact positions "
                "for finer bins."
            )
    if level == "gene" and "gene" not in table.columns:
        raise InvalidInputError(
            f"{field}: `probe_aggregation='gene'` needs a probe -> gene table, which the shipped 450k location table "
            "does not have: pass `probe_annotation=` a table with a gene column (e.g. UCSC Xena's probeMap "
            "'illuminaMethyl450_hg19_GPL16304_TCGAlegacy': #id, gene, chrom, chromStart, ...), or aggregate to "
            "'bin', 'arm' or 'chromosome'."
        )
    if level != "gene" and "position" not in table.columns and level != "chromosome":
        raise InvalidInputError(f"`probe_annotation` ({source}) has no position column; {level!r} needs positions.")
    located = table.reindex(pd.Index(probes, dtype=object))
    ok = located["chromosome"].isin(list(CENTROMERES_HG19)).to_numpy()
    if level != "chromosome" and level != "gene":
        ok &= np.isfinite(located["position"].to_numpy(dtype=float))
    rows, labels = [], []
    chrom = located["chromosome"].to_numpy(dtype=object)
    if level == "gene":
        for i, genes in enumerate(located["gene"].to_numpy(dtype=object)):
            if not ok[i] or not isinstance(genes, str):
                continue
            for gene in dict.fromkeys(g.strip() for g in re.split(r"[;,]", genes) if g.strip()):
                rows.append(i)
                labels.append(gene)
        ok = np.isin(np.arange(len(probes)), rows)
    else:
        position = located["position"].to_numpy(dtype=float) if "position" in located else np.full(len(probes), np.nan)
        for i in np.flatnonzero(ok):
            c = chrom[i]
            if level == "chromosome":
                labels.append(f"chr{c}")
            elif level == "arm":
                labels.append(f"chr{c}{'p' if position[i] < CENTROMERES_HG19[c][0] else 'q'}")
            else:
                start = int(position[i] // bin_size * bin_size)
                labels.append(f"chr{c}:{start}-{start + bin_size}")
            rows.append(i)
    if not rows:
        raise InvalidInputError(
            f"{field}: none of the {len(probes)} probes (e.g. {describe_examples(probes, limit=3)}) is in the probe "
            f"table ({source}){' with a gene' if level == 'gene' else ''}; expected Illumina 450k / 27k probe IDs "
            "(cg00000029), or pass `probe_annotation=` for other arrays (EPIC)."
        )
    rows_arr = np.asarray(rows)
    codes, uniques = pd.factorize(pd.Index(labels, dtype=object))
    order = _region_order(list(uniques), level)
    rank = np.empty(len(order), dtype=np.int64)
    rank[order] = np.arange(len(order))
    codes = rank[codes]
    uniques = [uniques[j] for j in order]
    membership = sparse.csr_matrix((np.ones(len(codes)), (codes, rows_arr)), shape=(len(uniques), len(probes)))
    observed = ~np.isnan(values)
    sums = np.asarray(membership @ np.where(observed, values, 0.0))
    counts = np.asarray(membership @ observed.astype(np.float64))
    with np.errstate(invalid="ignore", divide="ignore"):
        means = np.where(counts > 0, sums / np.maximum(counts, 1), np.nan)
    var = pd.DataFrame({"feature": np.asarray(uniques, dtype=object)})
    var["n_probes"] = np.bincount(codes, minlength=len(uniques)).astype(np.int64)
    if level != "gene":
        var["chromosome"] = [u.split(":")[0][3:].rstrip("pq") for u in uniques]
    if level == "arm":
        var["arm"] = [u[-1] for u in uniques]
    if level == "bin":
        var["bin_start_hg19"] = [int(u.split(":")[1].split("-")[0]) for u in uniques]
        var["bin_end_hg19"] = var["bin_start_hg19"] + int(bin_size)
    probe_map = pd.DataFrame(
        {"probe": np.asarray(probes, dtype=object)[rows_arr], "feature": np.asarray(uniques, dtype=object)[codes]}
    )
    unlocated = [p for p, k in zip(probes, ok) if not k]
    info = {
        "level": level,
        "probe_annotation": source,
        "bin_size": int(bin_size) if level == "bin" else 0,
        "n_probes_in_file": len(probes),
        "n_probes_used": int(ok.sum()),
        "n_probes_unlocated": len(unlocated),
        "unlocated_examples": np.asarray(unlocated[:10], dtype=object),
    }
    return means, var, probe_map, info


def _region_order(labels: list[str], level: str) -> np.ndarray:
    if level == "gene":
        return np.arange(len(labels))

    def key(label: str):
        chrom, _, rest = label[3:].partition(":")
        arm = chrom[-1] if chrom[-1] in "pq" else ""
        chrom = chrom[:-1] if arm else chrom
        start = int(rest.split("-")[0]) if rest else 0
        return (_CHROM_ORDER.get(chrom, 99), arm, start)

    return np.array(sorted(range(len(labels)), key=lambda i: key(labels[i])), dtype=np.int64)
