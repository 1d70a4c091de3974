"""Live accuracy: the served model's answers joined with the true outcomes that land later, scored per
model version, and the rule that says when the champion must be taken back.

Pure functions over frames (no S3, no MLflow, no Airflow): the `live_performance` DAG reads the kept
predictions (`serving/prediction_log.py`) and the landed labels, and acts on what these return.

Joining follows what a late label can and cannot say:
* a label is for a row id; the newest landing of an id wins (a correction lands after the mistake);
* a label for an id no kept prediction has is counted (`unknown_ids`), never matched to a guess;
* a label judges only answers given before it landed; one that landed before any answer for its id
  (a leak or a clock problem) is counted (`early_labels`) and not used;
* an id answered more than once by the same version before its label (a client's retry) counts once,
  its newest answer.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import pandas as pd

from landfall.core.pipeline_settings import DeploySettings
from landfall.pipeline.evaluation import lower_bound
from landfall.pipeline.metrics import METRICS, Answers, Task, truth_of

LABEL_COLUMNS = ("id", "label", "landed_at")
"""A labels frame: the row id, its true outcome, and when the landing that carried it arrived."""


@dataclass(frozen=True)
class Labelled:
    """Kept predictions that have a usable label, one row per (row id, model version), and the counts of
    what was set aside."""

    rows: pd.DataFrame  # the prediction log's columns, plus `label`
    unknown_ids: int  # labels whose id has no kept prediction
    superseded_labels: int  # older labels of an id that landed again
    early_labels: int  # labels that landed before any answer for their id (nothing for them to judge)
    unlabelled: int  # (row id, version) answers without a label yet

    def counts(self) -> dict[str, int]:
        return {
            "labelled_rows": len(self.rows),
            "unknown_ids": self.unknown_ids,
            "superseded_labels": self.superseded_labels,
            "early_labels": self.early_labels,
            "unlabelled": self.unlabelled,
        }


def join_labels(predictions: pd.DataFrame, labels: pd.DataFrame) -> Labelled:
    """`predictions`: the prediction log's records (`read_log`); `labels`: LABEL_COLUMNS. Times are
    ISO-8601 text or timestamps, in UTC.

    A label judges the answers given before it landed: an id answered again later (routine re-scoring)
    keeps its earlier answer judged, and the later one waits for a later label."""
    missing = [column for column in LABEL_COLUMNS if column not in labels.columns]
    if missing:
        raise ValueError(f"the labels have no column(s) {missing}; a labels file holds {list(LABEL_COLUMNS)}")
    labels = labels.assign(
        id=labels["id"].astype(str), landed_at=pd.to_datetime(labels["landed_at"], utc=True)
    )
    newest = labels.sort_values("landed_at", kind="stable").drop_duplicates("id", keep="last")
    kept = predictions[predictions["row_id"].notna()]
    kept = kept.assign(answered=pd.to_datetime(kept["answered_at"], utc=True))
    joined = kept.merge(newest[["id", "label", "landed_at"]], left_on="row_id", right_on="id", how="inner")
    judged = joined[joined["answered"] <= joined["landed_at"]]
    usable = (
        judged.sort_values("answered", kind="stable")
        .drop_duplicates(["row_id", "model_version"], keep="last")
        .drop(columns=["id", "answered", "landed_at"])
        .reset_index(drop=True)
    )
    pairs = kept.drop_duplicates(["row_id", "model_version"])
    return Labelled(
        rows=usable,
        unknown_ids=int((~newest["id"].isin(kept["row_id"])).sum()),
        superseded_labels=len(labels) - len(newest),
        early_labels=len(set(joined["row_id"]) - set(judged["row_id"])),
        unlabelled=int((~pairs["row_id"].isin(newest["id"])).sum()),
    )


def logged_answers(rows: pd.DataFrame, task: Task) -> Answers:
    """The answers as the service gave them (the log's records as `read_log` parses them). A class named
    by a probability key (JSON keys are text) is matched back to the value the predictions carry."""
    predicted = list(rows["prediction"])
    if task == "regression":
        return Answers(np.asarray(predicted, dtype="float64"))
    shares = list(rows["probabilities"])
    names = list(shares[0]) if shares else []
    by_name = {str(value): value for value in [*predicted, *rows["label"]]}
    classes = tuple(by_name.get(name, name) for name in names)
    probabilities = np.asarray([[share[name] for name in names] for share in shares], dtype="float64")
    return Answers(np.asarray(predicted, dtype=object), probabilities.reshape(len(rows), len(names)), classes)


@dataclass(frozen=True)
class VersionScore:
    version: str
    rows: int
    score: float


def scores_by_version(labelled: Labelled, task: Task, metric: str) -> list[VersionScore]:
    """The metric of each served version on its own labelled rows, newest version first."""
    out = []
    for version, rows in labelled.rows.groupby("model_version", sort=False):
        truth = truth_of(rows["label"].tolist(), task)
        score = METRICS[metric].compute(truth, logged_answers(rows, task))
        out.append(VersionScore(str(version), len(rows), round(float(score), 6)))
    return sorted(out, key=lambda s: int(s.version) if s.version.isdigit() else -1, reverse=True)


NEEDS_TWO_OUTCOMES = frozenset({"roc_auc", "r2", "f1", "f1_macro"})
"""Metrics a window of one outcome cannot judge (roc_auc reads 0.5, r2 0 or less, f1 0 on it)."""


@dataclass(frozen=True)
class Verdict:
    """Whether the champion is taken back: `rollback` or `keep`; `too_few` rows or `undecided` (one
    outcome only, a figure that is not finite) give no verdict either way."""

    verdict: str
    reason: str
    rows: int
    champion_score: float | None = None
    previous_score: float | None = None
    lower_bound: float | None = None  # of (previous - champion), one-sided at the gate's confidence

    @property
    def rollback(self) -> bool:
        return self.verdict == "rollback"

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def judge_champion(
    metric: str,
    truth: np.ndarray,
    champion: Answers,
    previous: Answers | None,
    gate: DeploySettings,
    min_labelled_rows: int,
) -> Verdict:
    """Roll back when, on at least `min_labelled_rows` labelled rows, the champion's live metric is worse
    than `deploy.min_score`, or the previous champion, re-scored on the same logged rows, beats it by more
    than `deploy.min_improvement` with the gate's paired bootstrap lower bound above zero: the same bar
    a candidate must clear to be crowned, now asked of the way back. Too few rows, or a window of one
    outcome for a metric that needs two, give no verdict: a quiet week is not a bad model."""
    measure, rows = METRICS[metric], len(truth)
    if rows < min_labelled_rows:
        return Verdict(
            "too_few", f"{rows} labelled rows; monitoring.min_labelled_rows is {min_labelled_rows}", rows
        )
    if metric in NEEDS_TWO_OUTCOMES and len(set(truth.tolist())) < 2:
        return Verdict(
            "undecided",
            f"the {rows} labelled rows hold one outcome only ({truth[0]!r}): {metric} cannot judge on them",
            rows,
        )
    score = round(float(measure.compute(truth, champion)), 6)
    if not np.isfinite(score):
        return Verdict("undecided", f"live {metric} on {rows} labelled rows is {score}", rows)
    direction = "below" if measure.higher_is_better else "above"
    if gate.min_score is not None and measure.better(score, gate.min_score) < 0:
        return Verdict(
            "rollback",
            f"live {metric} {score:.4f} on {rows} labelled rows is {direction} deploy.min_score "
            f"{gate.min_score:.4f}",
            rows,
            score,
        )
    if previous is None:
        return Verdict(
            "keep", f"live {metric} {score:.4f} on {rows} labelled rows; no previous champion", rows, score
        )
    previous_score = round(float(measure.compute(truth, previous)), 6)
    margin = measure.better(previous_score, score)
    bound = lower_bound(truth, previous, champion, metric, gate)
    if margin > gate.min_improvement and bound > 0:
        return Verdict(
            "rollback",
            f"the previous champion scores live {metric} {previous_score:.4f} on the same {rows} rows, "
            f"the champion {score:.4f} ({margin:+.4f}, more than deploy.min_improvement "
            f"{gate.min_improvement:.4f}; {gate.confidence:.0%} lower bound {bound:+.4f})",
            rows,
            score,
            previous_score,
            bound,
        )
    return Verdict(
        "keep",
        f"live {metric} {score:.4f} on {rows} labelled rows; the previous champion's {previous_score:.4f} is "
        f"not better by more than deploy.min_improvement with confidence (lower bound {bound:+.4f})",
        rows,
        score,
        previous_score,
        bound,
    )
