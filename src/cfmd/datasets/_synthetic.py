"""A synthetic multi-omics cohort with planted, documented ground truth.

The cohort is the test bed for every claim ``cfmd`` makes: signals are planted strongly enough to be
recovered by the right model from the right slice, and absent from the wrong one. See
:func:`synthetic_cohort` for the generative model and :data:`DEFAULT_SIGNAL` for the strengths.
"""

from __future__ import annotations

from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor

import anndata as ad
import numpy as np
import pandas as pd
from scipy import sparse

from .._constants import DEFAULT_SEED
from .._utils import new_mudata
from .._validation import InvalidInputError, check_positive_int, check_probability
from ._reference import (
    CHROMOSOMES,
    gene_annotation,
    geneformer_gene_medians,
    geneformer_token_dictionary,
    hallmark_gene_sets,
    proliferation_signature,
)

__all__ = ["DEFAULT_SIGNAL", "SURVIVAL_PATHWAYS", "TCGA_CANCER_TYPES", "synthetic_cohort"]

#: Cancer-type labels (TCGA acronyms) used in order.
TCGA_CANCER_TYPES = (
    "BRCA", "LUAD", "KIRC", "COAD", "OV", "GBM", "LUSC", "HNSC", "UCEC", "THCA", "PRAD", "LGG", "SKCM",
    "STAD", "BLCA", "LIHC", "CESC", "KIRP", "SARC", "PAAD", "PCPG", "READ", "ESCA", "TGCT", "THYM",
    "LAML", "KICH", "ACC", "MESO", "UVM", "UCS", "DLBC", "CHOL",
)  # fmt: skip

#: Planted signal strengths (all on the natural-log scale of the expression mean unless stated).
DEFAULT_SIGNAL: dict[str, float] = {
    # RNA: effect of one standard deviation of each latent program on the genes it acts on
    "pathway_loading": 0.45,  # mean |loading| of a pathway activity on each gene of its Hallmark set
    "prolif_loading": 0.6,  # proliferation program on the 73 proliferation-signature genes
    "regional_loading": 0.4,  # SD of TME genes' loadings on their chromosome's regional program
    "residual_loading": 0.35,  # residual programs, acting through the genes' structural features
    "cnv_dosage": 0.15,  # log2 expression change per unit of log2 copy ratio
    "cancer_type_expression": 0.3,  # SD of cancer-type shifts (on 20% of genes)
    # regional expression programs R = E @ B + noise: E = methylation state (6 factors)
    "regional_noise": 1.0,  # SD of the part of each regional program not explained by the methylation state
    # methylation beta = sigmoid(baseline + E @ L + cancer type + noise)
    "meth_loading": 0.7,
    "meth_noise": 0.3,
    # CNV log2 ratio per segment = 0.35 * C @ B + noise
    "cnv_loading": 0.35,
    "cnv_noise": 0.08,
    # context (mutations): logit = -2.5 + ctx @ M
    "ctx_loading": 1.2,
    # planted teacher signal: rna.obsm["transcriptomic_context"] = tanh-MLP(pathway, prolif) + noise
    "context_noise": 0.3,
    # survival log-hazard coefficients (per SD of the factor)
    "hazard_prolif": 0.5,
    "hazard_meth_state_0": 0.45,
    "hazard_meth_state_1": -0.3,
    "hazard_cnv_0": 0.2,
    "hazard_ctx_0": 0.25,
}

#: Pathways that act on the hazard, with their log-hazard coefficients.
SURVIVAL_PATHWAYS: dict[str, float] = {
    "HALLMARK_HYPOXIA": 0.35,
    "HALLMARK_EPITHELIAL_MESENCHYMAL_TRANSITION": 0.35,
    "HALLMARK_INTERFERON_GAMMA_RESPONSE": -0.35,
    "HALLMARK_GLYCOLYSIS": 0.25,
    "HALLMARK_P53_PATHWAY": -0.25,
}

N_METH_STATE = 6
N_CNV_FACTORS = 8
N_CTX_FACTORS = 6
N_RESIDUAL_FACTORS = 4
N_STRUCTURAL_FEATURES = 32
N_CONTEXT_FEATURES = 256
_AMINO_ACIDS = np.array(list("ACDEFGHIKLMNPQRSTVWY"))


def synthetic_cohort(
    n_patients: int = 1000,
    n_genes: int = 2000,
    n_cancer_types: int = 4,
    frac_rna_only: float = 0.2,
    *,
    n_meth_features: int = 500,
    n_cnv_features: int = 500,
    n_mutations: int = 100,
    protein_sequences: bool = True,
    signal: Mapping[str, float] | None = None,
    unpredictable_noise: float = 0.0,
    unpredictable_outcome: float = 0.0,
    seed: int = DEFAULT_SEED,
):
    """Generate a synthetic pan-cancer cohort as :class:`~mudata.MuData` with planted ground truth.

    Parameters
    ----------
    n_patients
        Number of patients (all have RNA).
    n_genes
        Number of genes in ``rna`` (>= 220), drawn from the shipped GRCh38 annotation among genes that
        Geneformer's V1 dictionary can tokenise. Hallmark genes are over-represented (up to 70% of the genes,
        at least 3 per pathway) and every proliferation-signature gene the annotation knows is included (70 of 73).
    n_cancer_types
        Number of cancer types (labelled with TCGA acronyms), with unequal prevalences.
    frac_rna_only
        Fraction of patients that only have RNA (absent from ``meth``, ``cnv`` and ``mut``).
    n_meth_features
        Gene-level methylation features (beta values).
    n_cnv_features
        Gene-level CNV features (log2 copy ratios), in genomic order.
    n_mutations
        Binary mutation features (the non-transcriptomic context modality ``mut``).
    protein_sequences
        Add synthetic canonical protein sequences to ``rna.var['protein_sequence']`` (some longer than 1,022
        residues) so the ESM-2 path can run.
    signal
        Overrides of :data:`DEFAULT_SIGNAL` (e.g. ``{"meth_noise": 0.5}``).
    unpredictable_noise
        Plant an "unpredictable" subgroup (off at 0, the default, which leaves every output unchanged): the
        patients of the last cancer type get their methylation generated from their methylation state plus
        Gaussian noise of this SD, independent of RNA (RNA still reads the noiseless state). Flagged in
        ``obs["truth_unpredictable"]``; the noisy state is ``obsm["truth_meth_observed"]``.
    unpredictable_outcome
        Make the outcome of that subgroup depend on what only methylation knows (off at 0, the default, which
        leaves every output unchanged; needs ``unpredictable_noise > 0``): the subgroup's log-hazard gains
        ``unpredictable_outcome`` x (``hazard_meth_state_0`` d_0 + ``hazard_meth_state_1`` d_1), where
        d = ``truth_meth_observed`` - ``truth_meth_state`` is the RNA-independent part of their methylation state.
        At 1 their hazard reads the methylation state as measured (the latent the methylation gives), at 0 the
        noiseless one every other patient's does. Writes ``obs["truth_meth_only_log_hazard"]`` (that term; 0
        outside the subgroup) and ``obs["risk_group"]`` (``"high"`` / ``"low"``: planted log-hazard above / below
        its median, a class outcome for classifiers). This is the ground truth of
        :func:`cfmd.tl.prioritize_assays`: for these patients alone, observing methylation changes the prediction.
    seed
        Random seed; the same seed gives an identical object.

    Returns
    -------
    MuData with modalities

    ``rna``
        Raw negative-binomial counts (CSR, float32; library sizes log-normal around 30 million reads);
        ``var``: ``gene_symbol``, ``ensembl_id``, ``chromosome``, ``start``, ``is_hallmark``,
        ``in_proliferation_signature``, (``protein_sequence``); ``varm['structural_features']``: the
        32-d gene-level structural features standing in for protein embeddings; ``obsm['transcriptomic_context']``:
        a 256-d sample embedding standing in for what an informative transcriptomic foundation model
        (Geneformer) gives. Both are planted teacher signals (see Notes), not computed from the counts.
    ``meth``
        Gene-level methylation beta values in (0, 1) (patients with multi-omics only).
    ``cnv``
        Gene-level log2 copy ratios, piecewise constant over chromosome-arm segments.
    ``mut``
        Binary mutation calls (0/1, float32).

    and ``obs`` with ``cancer_type``, ``os_time`` (days), ``os_event`` (1 = death observed, 0 = censored).
    Non-RNA feature names are prefixed with the modality (``"meth:TP53"``) so names are unique across the
    MuData; the gene symbol is in ``var['gene_symbol']``.

    Ground truth (for recovery checks), all rows aligned with ``mdata.obs``:

    - ``obs['truth_prolif']``: proliferation program; ``obs['truth_log_hazard']``: the planted log-hazard;
    - ``obsm['truth_pathway']``: 50 pathway activities (Hallmark order, as ``uns['synthetic']['pathways']``);
    - ``obsm['truth_meth_state']``: 6 methylation-state factors; ``obsm['truth_regional']``: the 23
      per-chromosome expression programs of TME genes they drive (order ``uns['synthetic']['chromosomes']``);
    - ``obsm['truth_cnv']``: 8 copy-number factors; ``obsm['truth_ctx']``: 6 context factors (mutations only,
      invisible to RNA); ``obsm['truth_residual']``: 4 residual expression programs;
    - ``uns['synthetic']``: seed, sizes, signal strengths and survival coefficients.

    Notes
    -----
    Generative model (per patient *i*, gene *g*; all factors standard normal plus a cancer-type mean shift):

    - log mean expression = log library size + gene baseline + cancer-type shift
      + ``pathway_loading`` x activity of every Hallmark set containing *g*
      + ``prolif_loading`` x proliferation (signature genes)
      + regional program of *g*'s chromosome x loading (Hallmark "TME" genes)
      + residual programs x ``residual_loading`` x (W e_g), where e_g are *g*'s structural features,
      so the expression-weighted structural fingerprint carries the residual programs
      + ``cnv_dosage`` x log(2) x copy ratio of *g*'s segment.
      Counts ~ NB(mean, dispersion per gene ~ log-normal around 20).
    - regional programs R (23, one per chromosome) = E B + ``regional_noise`` noise, with E the 6-d
      methylation state; methylation beta = sigmoid(baseline + ``meth_loading`` E L + cancer type + noise).
      RNA therefore informs methylation only through regional programs spread over all chromosomes.
    - CNV: 8 factors loading on 46 chromosome-arm segments; CNV acts on RNA only through dosage.
    - mutations: logistic in 6 context factors, independent of everything RNA sees.
    - planted teacher signals: ``structural_features`` are what an ideal protein model would return for each
      gene (the residual programs act through them, so the expression-weighted fingerprint carries the residual
      programs); ``transcriptomic_context`` is a fixed random two-layer tanh network applied to the patient's
      standardised pathway activities and proliferation, plus Gaussian noise (``context_noise``), i.e. what a
      foundation model that understood the transcriptome would summarise. The tiny random checkpoints of
      :func:`tiny_geneformer_checkpoint` / :func:`tiny_esm2_checkpoint` carry no such information; use these
      planted signals to check that CFMD distils what its teachers know.
    - survival: Weibull (shape 1.3, median about 3 years at zero log-hazard) with log-hazard
      ``hazard_prolif`` x proliferation + :data:`SURVIVAL_PATHWAYS` + methylation state 0/1 + CNV factor 0
      + context factor 0 + cancer-type baseline; uniform administrative censoring over 1-10 years.

    Examples
    --------
    >>> mdata = cfmd.datasets.synthetic_cohort(n_patients=200, n_genes=500, seed=0)
    >>> mdata["rna"].X.dtype, mdata["meth"].n_obs < mdata.n_obs
    (dtype('float32'), True)
    """
    n_patients = check_positive_int(n_patients, "n_patients", minimum=10)
    n_genes = check_positive_int(n_genes, "n_genes", minimum=220)  # 70 signature + 3 x 50 pathway genes
    n_cancer_types = check_positive_int(n_cancer_types, "n_cancer_types")
    if n_cancer_types > len(TCGA_CANCER_TYPES):
        raise InvalidInputError(f"`n_cancer_types` must be at most {len(TCGA_CANCER_TYPES)}; got {n_cancer_types}.")
    frac_rna_only = check_probability(frac_rna_only, "frac_rna_only", closed_right=False)
    if (
        isinstance(unpredictable_noise, bool)
        or not isinstance(unpredictable_noise, int | float)
        or not (np.isfinite(unpredictable_noise) and unpredictable_noise >= 0)
    ):
        raise InvalidInputError(f"`unpredictable_noise` must be a non-negative number; got {unpredictable_noise!r}.")
    if (
        isinstance(unpredictable_outcome, bool)
        or not isinstance(unpredictable_outcome, int | float)
        or not (np.isfinite(unpredictable_outcome) and unpredictable_outcome >= 0)
    ):
        raise InvalidInputError(
            f"`unpredictable_outcome` must be a non-negative number; got {unpredictable_outcome!r}."
        )
    if unpredictable_outcome and not unpredictable_noise:
        raise InvalidInputError(
            "`unpredictable_outcome` needs `unpredictable_noise` > 0 (the methylation-only part the outcome reads)."
        )
    n_meth_features = check_positive_int(n_meth_features, "n_meth_features")
    n_cnv_features = check_positive_int(n_cnv_features, "n_cnv_features")
    n_mutations = check_positive_int(n_mutations, "n_mutations")
    if not isinstance(seed, int | np.integer) or isinstance(seed, bool):
        raise InvalidInputError(f"`seed` must be an integer; got {seed!r}.")
    strengths = dict(DEFAULT_SIGNAL)
    if signal:
        unknown = set(signal) - set(strengths)
        if unknown:
            raise InvalidInputError(
                f"`signal` has unknown key(s) {sorted(unknown)}; expected some of {sorted(strengths)}."
            )
        strengths.update({k: float(v) for k, v in signal.items()})

    root = np.random.SeedSequence(int(seed))
    rng_genes, rng_patients, rng_modalities, rng_counts = (np.random.default_rng(s) for s in root.spawn(4))
    count_seeds = root.spawn(1)[0]

    genes = _choose_genes(n_genes, rng_genes)
    n_genes = len(genes)
    pathways = hallmark_gene_sets()
    pathway_names = list(pathways)
    patient_ids = pd.Index([f"P{i:05d}" for i in range(n_patients)], name="patient")

    # ------------------------------------------------------------------ patient-level factors
    prevalence = rng_patients.dirichlet(np.full(n_cancer_types, 4.0))
    ct_codes = rng_patients.choice(n_cancer_types, size=n_patients, p=prevalence)
    ct_codes[:n_cancer_types] = np.arange(n_cancer_types)  # every cancer type present
    ct_onehot = np.eye(n_cancer_types)[ct_codes]

    def factor(n: int, shift_sd: float) -> np.ndarray:
        ct_mean = rng_patients.normal(0.0, shift_sd, size=(n_cancer_types, n))
        return ct_mean[ct_codes] + rng_patients.standard_normal((n_patients, n))

    prolif = factor(1, 0.6)
    pathway = factor(50, 0.5)
    meth_state = factor(N_METH_STATE, 0.6)
    regional_basis = rng_patients.standard_normal((N_METH_STATE, len(CHROMOSOMES))) / np.sqrt(N_METH_STATE)
    regional = meth_state @ regional_basis + strengths["regional_noise"] * rng_patients.standard_normal(
        (n_patients, len(CHROMOSOMES))
    )
    cnv_factors = factor(N_CNV_FACTORS, 0.4)
    ctx = factor(N_CTX_FACTORS, 0.4)
    residual = factor(N_RESIDUAL_FACTORS, 0.3)

    # CNV segments: chromosome arms, split at the median gene position of each chromosome
    segment_of_gene, segment_names = _segments(genes)
    cnv_basis = rng_patients.standard_normal((N_CNV_FACTORS, len(segment_names))) / np.sqrt(N_CNV_FACTORS)
    cnv_segments = strengths["cnv_loading"] * (cnv_factors @ cnv_basis)
    cnv_segments += strengths["cnv_noise"] * rng_patients.standard_normal(cnv_segments.shape)

    # ------------------------------------------------------------------ gene-level parameters
    structural = rng_genes.standard_normal((n_genes, N_STRUCTURAL_FEATURES)) / np.sqrt(N_STRUCTURAL_FEATURES)
    residual_map = rng_genes.standard_normal((N_RESIDUAL_FACTORS, N_STRUCTURAL_FEATURES))
    residual_loadings = strengths["residual_loading"] * (structural @ residual_map.T)  # genes x 4

    symbol_pos = pd.Series(np.arange(n_genes), index=genes["symbol"].to_numpy())
    pathway_loadings = np.zeros((50, n_genes))
    for k, name in enumerate(pathway_names):
        idx = symbol_pos.reindex(pathways[name]).dropna().astype(int).to_numpy()
        w = np.abs(rng_genes.normal(strengths["pathway_loading"], 0.12, size=idx.size))
        w *= np.where(rng_genes.random(idx.size) < 0.2, -1.0, 1.0)
        pathway_loadings[k, idx] = w
    prolif_loadings = strengths["prolif_loading"] * genes["in_proliferation_signature"].to_numpy(float)
    chrom_index = pd.Index(CHROMOSOMES).get_indexer(genes["chromosome"])
    regional_loadings = np.zeros((len(CHROMOSOMES), n_genes))
    tme = genes["is_hallmark"].to_numpy()
    regional_loadings[chrom_index[tme], np.flatnonzero(tme)] = rng_genes.normal(
        0.0, strengths["regional_loading"], size=int(tme.sum())
    )
    ct_expression = rng_genes.normal(0.0, strengths["cancer_type_expression"], size=(n_cancer_types, n_genes))
    ct_expression *= rng_genes.random((n_cancer_types, n_genes)) < 0.2
    segment_loadings = np.zeros((len(segment_names), n_genes))
    segment_loadings[segment_of_gene, np.arange(n_genes)] = strengths["cnv_dosage"] * np.log(2.0)

    # baseline relative abundances: broad log-normal, a quarter of genes barely expressed
    log_base = rng_genes.normal(0.0, 2.0, size=n_genes) - np.where(rng_genes.random(n_genes) < 0.25, 9.0, 0.0)
    log_base -= np.log(np.exp(log_base).sum())
    dispersion = np.exp(rng_genes.normal(np.log(20.0), 0.5, size=n_genes))
    library = np.exp(rng_patients.normal(np.log(3e7), 0.35, size=n_patients))

    # all RNA effects as one matmul: [factors] @ [loadings]
    patient_design = np.hstack([pathway, prolif, regional, residual, cnv_segments, ct_onehot]).astype(np.float32)
    gene_design = np.vstack(
        [
            pathway_loadings,
            prolif_loadings[None],
            regional_loadings,
            residual_loadings.T,
            segment_loadings,
            ct_expression,
        ]
    ).astype(np.float32)
    X = _sample_counts(patient_design, gene_design, log_base, np.log(library), dispersion, count_seeds)

    obs = pd.DataFrame(index=patient_ids)
    obs["cancer_type"] = pd.Categorical(
        np.array(TCGA_CANCER_TYPES)[ct_codes], categories=TCGA_CANCER_TYPES[:n_cancer_types]
    )
    var = genes.set_index("symbol", drop=False).rename(columns={"symbol": "gene_symbol"})
    var.index.name = None
    if protein_sequences:
        var["protein_sequence"] = _protein_sequences(n_genes, rng_genes)
    rna = ad.AnnData(X=X, obs=obs.copy(), var=var)
    rna.varm["structural_features"] = structural.astype(np.float32)
    programs = np.hstack([pathway, prolif])
    programs = (programs - programs.mean(0)) / programs.std(0)
    w1 = rng_genes.standard_normal((programs.shape[1], 128)) / np.sqrt(programs.shape[1])
    w2 = rng_genes.standard_normal((128, N_CONTEXT_FEATURES)) / np.sqrt(128)
    context = np.tanh(programs @ w1) @ w2
    context += strengths["context_noise"] * context.std() * rng_patients.standard_normal(context.shape)
    rna.obsm["transcriptomic_context"] = context.astype(np.float32)
    rna.uns["scale"] = "counts"

    # ------------------------------------------------------------------ other modalities
    multiomic = np.sort(rng_modalities.permutation(n_patients)[: n_patients - int(round(frac_rna_only * n_patients))])
    if multiomic.size == 0:
        raise InvalidInputError("`frac_rna_only` leaves no patient with multi-omics; lower it.")

    meth_genes = np.sort(rng_modalities.choice(n_genes, size=min(n_meth_features, n_genes), replace=False))
    meth_base = np.where(rng_modalities.random(meth_genes.size) < 0.5, -2.0, 2.0) + rng_modalities.normal(
        0, 0.5, meth_genes.size
    )
    meth_load = rng_modalities.standard_normal((N_METH_STATE, meth_genes.size)) / np.sqrt(N_METH_STATE)
    meth_ct = rng_modalities.normal(0.0, 0.3, size=(n_cancer_types, meth_genes.size))
    meth_observed = meth_state
    if unpredictable_noise:  # a separate stream: the default outputs are unchanged
        unpredictable = ct_codes == n_cancer_types - 1
        extra = np.random.default_rng(root.spawn(1)[0]).standard_normal(meth_state.shape)
        meth_observed = meth_state + float(unpredictable_noise) * extra * unpredictable[:, None]
    meth_logit = (
        meth_base
        + strengths["meth_loading"] * meth_observed[multiomic] @ meth_load
        + meth_ct[ct_codes[multiomic]]
        + strengths["meth_noise"] * rng_modalities.standard_normal((multiomic.size, meth_genes.size))
    )
    meth = _feature_modality(
        1.0 / (1.0 + np.exp(-meth_logit)), genes.iloc[meth_genes], "meth", patient_ids[multiomic], obs
    )
    meth.uns["scale"] = "beta"

    cnv_genes = np.sort(rng_modalities.choice(n_genes, size=min(n_cnv_features, n_genes), replace=False))
    cnv_values = cnv_segments[np.ix_(multiomic, segment_of_gene[cnv_genes])]
    cnv_values = cnv_values + 0.05 * rng_modalities.standard_normal(cnv_values.shape)
    cnv = _feature_modality(cnv_values, genes.iloc[cnv_genes], "cnv", patient_ids[multiomic], obs)
    cnv.uns["scale"] = "log2_ratio"

    mut_genes = np.sort(rng_modalities.choice(n_genes, size=min(n_mutations, n_genes), replace=False))
    mut_load = (
        strengths["ctx_loading"]
        * rng_modalities.standard_normal((N_CTX_FACTORS, mut_genes.size))
        / np.sqrt(N_CTX_FACTORS)
    )
    mut_p = 1.0 / (1.0 + np.exp(-(-2.5 + ctx[multiomic] @ mut_load)))
    mut_values = (rng_modalities.random(mut_p.shape) < mut_p).astype(np.float32)
    mut = _feature_modality(mut_values, genes.iloc[mut_genes], "mut", patient_ids[multiomic], obs)
    mut.uns["scale"] = "binary"

    # ------------------------------------------------------------------ survival
    path_index = {name: k for k, name in enumerate(pathway_names)}
    ct_hazard = rng_patients.normal(0.0, 0.3, size=n_cancer_types)
    log_hazard = (
        strengths["hazard_prolif"] * prolif[:, 0]
        + sum(coef * pathway[:, path_index[name]] for name, coef in SURVIVAL_PATHWAYS.items())
        + strengths["hazard_meth_state_0"] * meth_state[:, 0]
        + strengths["hazard_meth_state_1"] * meth_state[:, 1]
        + strengths["hazard_cnv_0"] * cnv_factors[:, 0]
        + strengths["hazard_ctx_0"] * ctx[:, 0]
        + ct_hazard[ct_codes]
    )
    if unpredictable_outcome:  # deterministic in the planted factors: no random stream is touched
        meth_only = meth_observed - meth_state
        meth_only_hazard = float(unpredictable_outcome) * (
            strengths["hazard_meth_state_0"] * meth_only[:, 0] + strengths["hazard_meth_state_1"] * meth_only[:, 1]
        )
        log_hazard = log_hazard + meth_only_hazard
    shape, scale = 1.3, 2400.0 / np.log(2.0) ** (1 / 1.3)  # median 2,400 days at zero log-hazard
    event_time = scale * (-np.log(rng_patients.random(n_patients))) ** (1 / shape) * np.exp(-log_hazard / shape)
    censor_time = rng_patients.uniform(365.0, 3650.0, size=n_patients)
    obs["os_time"] = np.round(np.minimum(event_time, censor_time), 1)
    obs["os_event"] = (event_time <= censor_time).astype(np.int64)
    obs["truth_prolif"] = prolif[:, 0]
    obs["truth_log_hazard"] = log_hazard
    if unpredictable_outcome:
        obs["truth_meth_only_log_hazard"] = meth_only_hazard
        high = log_hazard > np.median(log_hazard)
        obs["risk_group"] = pd.Categorical(np.where(high, "high", "low"), categories=["low", "high"])

    mdata = new_mudata({"rna": rna, "meth": meth, "cnv": cnv, "mut": mut})
    mdata.obs = obs.loc[mdata.obs_names]
    mdata.obsm["truth_pathway"] = pathway.astype(np.float32)
    mdata.obsm["truth_meth_state"] = meth_state.astype(np.float32)
    mdata.obsm["truth_regional"] = regional.astype(np.float32)
    mdata.obsm["truth_cnv"] = cnv_factors.astype(np.float32)
    mdata.obsm["truth_ctx"] = ctx.astype(np.float32)
    mdata.obsm["truth_residual"] = residual.astype(np.float32)
    if unpredictable_noise:
        mdata.obs["truth_unpredictable"] = unpredictable
        mdata.obsm["truth_meth_observed"] = meth_observed.astype(np.float32)
    mdata.uns["synthetic"] = {
        "seed": int(seed),
        "n_patients": n_patients,
        "n_genes": n_genes,
        "n_cancer_types": n_cancer_types,
        "frac_rna_only": frac_rna_only,
        "pathways": np.array(pathway_names, dtype=object),
        "chromosomes": np.array(CHROMOSOMES, dtype=object),
        "cnv_segments": np.array(segment_names, dtype=object),
        "signal": strengths,
        "survival_pathways": dict(SURVIVAL_PATHWAYS),
    }
    return mdata


def _choose_genes(n_genes: int, rng: np.random.Generator) -> pd.DataFrame:
    """Genes from the annotation that Geneformer V1 can tokenise, Hallmark-enriched, in genomic order."""
    ann = gene_annotation()
    tokens = geneformer_token_dictionary()
    medians = geneformer_gene_medians()
    ok = ann["chromosome"].isin(CHROMOSOMES) & ann["ensembl_id"].isin(tokens) & ann["ensembl_id"].isin(medians)
    ann = ann[ok].reset_index(drop=True)
    sets = hallmark_gene_sets()
    prolif = set(proliferation_signature())
    hallmark = set().union(*sets.values())
    is_hallmark = ann["symbol"].isin(hallmark).to_numpy()
    n_available = len(ann)
    if n_genes > n_available:
        raise InvalidInputError(
            f"`n_genes` must be at most {n_available} (annotated, tokenisable genes); got {n_genes}."
        )

    chosen = set(np.flatnonzero(ann["symbol"].isin(prolif).to_numpy()))
    symbol_row = pd.Series(np.arange(n_available), index=ann["symbol"])
    for genes in sets.values():  # at least 3 genes per pathway
        rows = symbol_row.reindex(genes).dropna().astype(int).to_numpy()
        chosen.update(rng.choice(rows, size=min(3, rows.size), replace=False).tolist())
    n_hallmark_target = max(min(int(is_hallmark.sum()), int(0.7 * n_genes)), len(chosen))
    pool = np.setdiff1d(np.flatnonzero(is_hallmark), list(chosen))
    extra = n_hallmark_target - len(chosen)
    chosen.update(rng.choice(pool, size=max(extra, 0), replace=False).tolist())
    rest_pool = np.setdiff1d(np.arange(n_available), list(chosen))
    n_rest = n_genes - len(chosen)
    if n_rest < 0:
        raise InvalidInputError(f"`n_genes` must be at least {len(chosen)} to cover every pathway; got {n_genes}.")
    rest_pool_non_hallmark = rest_pool[~is_hallmark[rest_pool]]
    take = rest_pool_non_hallmark if rest_pool_non_hallmark.size >= n_rest else rest_pool
    chosen.update(rng.choice(take, size=n_rest, replace=False).tolist())

    genes = ann.iloc[sorted(chosen)].copy()
    order = np.lexsort((genes["start"].to_numpy(), pd.Index(CHROMOSOMES).get_indexer(genes["chromosome"])))
    genes = genes.iloc[order].reset_index(drop=True)
    genes["is_hallmark"] = genes["symbol"].isin(hallmark).to_numpy()
    genes["in_proliferation_signature"] = genes["symbol"].isin(prolif).to_numpy()
    return genes[["symbol", "ensembl_id", "chromosome", "start", "is_hallmark", "in_proliferation_signature"]]


def _segments(genes: pd.DataFrame) -> tuple[np.ndarray, list[str]]:
    """Assign each gene to a chromosome-arm-like segment (two per chromosome, split at the median gene)."""
    segment = np.zeros(len(genes), dtype=np.int64)
    names = []
    for c, chrom in enumerate(CHROMOSOMES):
        rows = np.flatnonzero(genes["chromosome"].to_numpy() == chrom)
        starts = genes["start"].to_numpy()[rows]
        split = np.median(starts) if rows.size else 0
        segment[rows] = 2 * c + (starts > split)
        names += [f"{chrom}p", f"{chrom}q"]
    return segment, names


def _sample_counts(
    patient_design: np.ndarray,
    gene_design: np.ndarray,
    log_base: np.ndarray,
    log_library: np.ndarray,
    dispersion: np.ndarray,
    seed_sequence: np.random.SeedSequence,
    chunk_size: int = 256,
) -> sparse.csr_matrix:
    """Negative-binomial counts, generated in patient chunks straight into CSR (never a dense full matrix)."""
    n_patients = patient_design.shape[0]
    starts = list(range(0, n_patients, chunk_size))
    chunk_seeds = seed_sequence.spawn(len(starts))
    theta = dispersion.astype(np.float64)

    def chunk(i: int) -> sparse.csr_matrix:
        lo, hi = starts[i], min(starts[i] + chunk_size, n_patients)
        rng = np.random.default_rng(chunk_seeds[i])
        log_mu = patient_design[lo:hi] @ gene_design
        log_mu += log_base.astype(np.float32)
        log_mu += log_library[lo:hi, None].astype(np.float32)
        # renormalise so programs redistribute reads rather than change the library size
        log_mu -= np.log(np.exp(log_mu - log_library[lo:hi, None]).sum(axis=1, keepdims=True))
        mu = np.exp(log_mu, dtype=np.float64)
        counts = rng.poisson(rng.gamma(theta, mu / theta)).astype(np.float32)
        return sparse.csr_matrix(counts)

    with ThreadPoolExecutor(max_workers=2) as pool:
        blocks = list(pool.map(chunk, range(len(starts))))
    X = sparse.vstack(blocks, format="csr")
    X.sort_indices()
    return X


def _feature_modality(values: np.ndarray, genes: pd.DataFrame, mod: str, patients: pd.Index, obs: pd.DataFrame):
    var = pd.DataFrame(
        {
            "gene_symbol": genes["symbol"].to_numpy(),
            "ensembl_id": genes["ensembl_id"].to_numpy(),
            "chromosome": genes["chromosome"].to_numpy(),
            "start": genes["start"].to_numpy(),
        },
        index=pd.Index([f"{mod}:{s}" for s in genes["symbol"]]),
    )
    return ad.AnnData(X=np.asarray(values, dtype=np.float32), obs=obs.loc[patients].copy(), var=var)


def _protein_sequences(n_genes: int, rng: np.random.Generator) -> np.ndarray:
    """Random canonical-isoform-like sequences (start with M; lengths log-normal, about 5% above 1,022)."""
    lengths = np.clip(np.exp(rng.normal(np.log(420.0), 0.55, size=n_genes)), 50, 3000).astype(int)
    residues = rng.choice(_AMINO_ACIDS, size=int(lengths.sum()))
    bounds = np.concatenate([[0], np.cumsum(lengths)])
    return np.array(["M" + "".join(residues[a + 1 : b]) for a, b in zip(bounds[:-1], bounds[1:])], dtype=object)
