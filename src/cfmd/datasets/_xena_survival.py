"""The survival side of :func:`~cfmd.datasets.read_xena`: reading the table, joining it to the patients, cancer types."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from .._logging import logger
from .._validation import (
    InvalidInputError,
    describe_examples,
)
from ._barcodes import harmonise_tcga_barcodes, is_tcga_barcode
from ._reference import tcga_cdr_survival
from ._xena_files import _NA_VALUES, _existing_file, _is_gzip, _open_text

_ID_COLUMNS = (
    "bcr_patient_barcode", "_PATIENT", "patient", "patient_id", "patientID", "submitter_id", "case_submitter_id",
    "sample", "sampleID", "sample_id",
)  # fmt: skip


_CANCER_TYPE_COLUMNS = ("acronym", "cancer type abbreviation", "cancer_type")


_DEAD = {"1", "1.0", "dead", "deceased"}


_ALIVE = {"0", "0.0", "alive", "living"}


def _read_survival(survival, endpoint: str, mode: str) -> tuple[pd.DataFrame, str, str, str]:
    """The survival table (one row per patient: time, event, cancer_type), its source, layout and ID column."""
    if isinstance(survival, str) and survival == "tcga_cdr":
        raw, source = tcga_cdr_survival(), "tcga_cdr"
    elif isinstance(survival, pd.DataFrame):
        raw, source = survival.copy(), "DataFrame"
        if not isinstance(raw.index, pd.RangeIndex) and not any(c in raw.columns for c in _ID_COLUMNS):
            raw = raw.rename_axis("_index").reset_index()
    else:
        path = _existing_file(survival, "survival")
        source = str(path)
        try:
            with _open_text(path) as fh:
                first = fh.readline()
            raw = pd.read_csv(
                path, sep="\t" if "\t" in first else ",", dtype=str, compression="gzip" if _is_gzip(path) else None
            )
        except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError, OSError, EOFError) as err:
            raise InvalidInputError(f"`survival` ({path.name}): cannot read the table ({err}).") from None
    where = "`survival` (shipped TCGA-CDR table)" if source == "tcga_cdr" else f"`survival` ({Path(source).name})"
    if raw.shape[0] == 0:
        raise InvalidInputError(f"{where} is empty: expected one row per patient.")
    columns = list(raw.columns)
    followup = next((c for c in ("days_to_last_followup", "days_to_last_follow_up") if c in columns), None)
    if endpoint in columns and f"{endpoint}.time" in columns:
        layout = "tcga_cdr" if "bcr_patient_barcode" in columns else "xena" if "_PATIENT" in columns else "endpoint"
        time = _numbers(raw[f"{endpoint}.time"], f"{where}[{endpoint + '.time'!r}]")
        event = _numbers(raw[endpoint], f"{where}[{endpoint!r}]")
    elif {"vital_status", "days_to_death"} <= set(columns) and followup is not None:
        if endpoint != "OS":
            raise InvalidInputError(
                f"{where} is a clinical table (vital_status, days_to_death, {followup}), from which only "
                f"`endpoint='OS'` can be derived; got {endpoint!r}. Pass a TCGA-CDR-like table for {endpoint}."
            )
        layout = "clinical"
        status = raw["vital_status"].astype(object).map(lambda v: str(v).strip().lower() if pd.notna(v) else v)
        known = status.isna() | status.isin(_DEAD | _ALIVE)
        if not known.all():
            raise InvalidInputError(
                f"{where}['vital_status'] must be 1/0 or dead/alive; found "
                f"{describe_examples(raw['vital_status'][~known].unique())}."
            )
        dead = status.isin(_DEAD)
        event = pd.Series(np.where(status.isna(), np.nan, dead.astype(float)), index=raw.index)
        death = _numbers(raw["days_to_death"], f"{where}['days_to_death']")
        last = _numbers(raw[followup], f"{where}[{followup!r}]")
        time = death.where(dead, last)
    else:
        raise InvalidInputError(
            f"{where} must have columns {endpoint!r} and {endpoint + '.time'!r} (TCGA-CDR or Xena survival layout) "
            "or 'vital_status', 'days_to_death' and 'days_to_last_followup' (clinical layout); found "
            f"{describe_examples(columns, limit=12)}."
        )
    id_column = next((c for c in _ID_COLUMNS if c in columns), "_index" if "_index" in columns else columns[0])
    ids = raw[id_column].astype(str).str.strip()
    if mode == "tcga":
        tcga = is_tcga_barcode(ids)
        canonical = harmonise_tcga_barcodes(ids)
        ids = pd.Series([c[:12] if ok else i for c, i, ok in zip(canonical, ids, tcga)], index=raw.index)
    cancer_column = next((c for c in _CANCER_TYPE_COLUMNS if c in columns), None)
    cancer = raw[cancer_column].astype(object) if cancer_column else pd.Series(np.nan, index=raw.index, dtype=object)
    cancer = cancer.where(cancer.notna() & (cancer.astype(str).str.strip() != ""), np.nan)
    table = pd.DataFrame({"patient": ids.to_numpy(), "time": time.to_numpy(), "event": event.to_numpy()})
    table["cancer_type"] = cancer.to_numpy(dtype=object)
    table = table.drop_duplicates()
    repeated = table["patient"][table["patient"].duplicated()].unique()
    if len(repeated):
        raise InvalidInputError(
            f"{where} has conflicting rows for patient(s) {describe_examples(repeated)} (column {id_column!r}); "
            "expected one row per patient, or identical survival for all samples of a patient."
        )
    return table.set_index("patient"), source, layout, id_column


def _numbers(column: pd.Series, field: str) -> pd.Series:
    """Numeric survival column; TCGA placeholders like ``[Not Available]`` and NA are missing."""
    text = column.astype(object).map(lambda v: str(v).strip() if pd.notna(v) else np.nan)
    text = text.replace({"True": "1", "False": "0", "true": "1", "false": "0"})
    text = text.mask(text.isin(_NA_VALUES) | text.str.startswith("[", na=False))
    numbers = pd.to_numeric(text, errors="coerce")
    bad = numbers.isna() & text.notna()
    if bad.any():
        raise InvalidInputError(f"{field} must be numeric; found {describe_examples(text[bad].unique())}.")
    return numbers.astype(np.float64)


def _join_survival(
    obs: pd.DataFrame,
    table: pd.DataFrame,
    source: str,
    id_column: str,
    endpoint: str,
    on_missing: str,
    time_key: str,
    event_key: str,
) -> tuple[pd.DataFrame, dict]:
    where = "`survival` (shipped TCGA-CDR table)" if source == "tcga_cdr" else f"`survival` ({Path(source).name})"
    joined = table.reindex(obs.index)
    time = joined["time"].to_numpy(dtype=np.float64)
    event = joined["event"].to_numpy(dtype=np.float64)
    negative = np.flatnonzero(time < 0)
    if negative.size:
        raise InvalidInputError(
            f"{where}: {endpoint} times must be non-negative (days); patient(s) "
            f"{describe_examples(obs.index[negative])} have negative times."
        )
    bad_event = np.flatnonzero(~np.isnan(event) & ~np.isin(event, (0.0, 1.0)))
    if bad_event.size:
        raise InvalidInputError(
            f"{where}: {endpoint} events must be 0/1; patient(s) {describe_examples(obs.index[bad_event])} have "
            f"{describe_examples(np.unique(event[bad_event]))}."
        )
    absent = ~obs.index.isin(table.index)
    incomplete = ~absent & (np.isnan(time) | np.isnan(event))
    if (absent | incomplete).any() and on_missing == "raise":
        parts = []
        if absent.any():
            parts.append(f"{int(absent.sum())} patient(s) absent from it ({describe_examples(obs.index[absent])})")
        if incomplete.any():
            parts.append(
                f"{int(incomplete.sum())} with a missing {endpoint} time or event ({describe_examples(obs.index[incomplete])})"
            )
        hint = (
            f" No patient matched: check that column {id_column!r} holds the matrices' patient identifiers, or pass "
            "`survival=None` (no survival) or the cohort's own table."
            if absent.all()
            else ""
        )
        raise InvalidInputError(
            f"{where}: {' and '.join(parts)}; expected a time and an event for every patient of the matrices.{hint} "
            "Pass `on_missing_survival='keep_nan'` to keep patients with missing survival."
        )
    obs = obs.copy()
    obs[time_key] = time
    missing = np.isnan(time) | np.isnan(event)
    if np.isnan(event).any():
        obs[event_key] = pd.array([None if np.isnan(e) else int(e) for e in event], dtype="Int64")
    else:
        obs[event_key] = event.astype(np.int64)
    if missing.any():
        logger.warning(
            "read_xena: %d patient(s) without %s survival kept with missing values (e.g. %s).",
            int(missing.sum()),
            endpoint,
            describe_examples(obs.index[missing], limit=3),
        )
    obs["_cancer_type_table"] = joined["cancer_type"].to_numpy(dtype=object)
    info = {
        "time_key": time_key,
        "event_key": event_key,
        "n_patients_without_survival": int(missing.sum()),
        "patients_without_survival": np.asarray(obs.index[missing], dtype=object),
    }
    return obs, info


def _add_cancer_type(obs: pd.DataFrame, cancer_type: str | None) -> None:
    from_table = obs.pop("_cancer_type_table") if "_cancer_type_table" in obs else None
    if from_table is None or from_table.isna().all():
        if cancer_type is not None:
            obs.insert(0, "cancer_type", pd.Categorical([cancer_type] * len(obs)))
        return
    values = from_table.astype(object)
    if cancer_type is not None:
        disagree = values.notna() & (values != cancer_type)
        if disagree.any():
            logger.warning(
                "read_xena: the survival table gives another cancer type than `cancer_type=%r` for %d patient(s) "
                "(e.g. %s); keeping the table's.",
                cancer_type,
                int(disagree.sum()),
                describe_examples(values[disagree].index, limit=3),
            )
        values = values.fillna(cancer_type)
    obs.insert(0, "cancer_type", pd.Categorical(values))
