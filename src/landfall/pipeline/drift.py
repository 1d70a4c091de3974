"""Drift: the statistics of a day (or of a training window) taken in one pass over its row batches with
bounded memory, compared with a reference (the champion's training window), and the retraining policy.

A numeric column keeps its row and missing counts, its sum and a uniform reservoir sample of at most
`SAMPLE` values (the quantile sketch: deciles for the PSI bins, and the two samples for a
Kolmogorov-Smirnov distance); a categorical column keeps a count per category. Summaries are plain JSON
(`as_dict`), so a trained run logs its window's and a day's report carries its own. Memory per column
is `SAMPLE` floats whatever the day holds. scipy does the KS and Jensen-Shannon figures; Evidently
(the maintained drift library) works on whole frames, which the bounded-memory rule rules out here.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

import numpy as np
import pandas as pd

from landfall.core.pipeline_settings import LandingSettings, MonitoringSettings

SAMPLE = 10_000
"""Values kept per numeric column: the deciles and a KS distance from 10,000 values are within about a
percent of the whole column's (the KS statistic's standard error at this size is about 0.01)."""
_SHARE_FLOOR = 1e-4
"""A bin or category with no rows on one side counts as this share: PSI stays finite (and large)."""

Verdict = Literal["drifted", "stable", "unknown", "no reference"]


@dataclass
class NumericSummary:
    rows: int = 0
    missing: int = 0
    total: float = 0.0
    sample: list[float] = field(default_factory=list)
    seen: int = 0  # non-missing values offered to the reservoir

    def add(self, values: np.ndarray, rng: np.random.Generator) -> None:
        values = values.astype("float64")
        present = values[~np.isnan(values)]
        self.rows += len(values)
        self.missing += len(values) - len(present)
        self.total += float(present.sum())
        room = max(0, SAMPLE - len(self.sample))
        self.sample.extend(present[:room].tolist())
        rest = present[room:]
        if len(rest):  # reservoir sampling (Algorithm R), one draw per value
            positions = self.seen + room + np.arange(len(rest))
            slots = rng.integers(0, positions + 1)
            kept = slots < SAMPLE
            sample = np.asarray(self.sample)
            sample[slots[kept]] = rest[kept]
            self.sample = sample.tolist()
        self.seen += len(present)

    @property
    def mean(self) -> float | None:
        return self.total / self.seen if self.seen else None

    def as_dict(self) -> dict[str, Any]:
        return {
            "kind": "numeric",
            "rows": self.rows,
            "missing": self.missing,
            "mean": self.mean,
            "total": self.total,
            "seen": self.seen,
            "sample": self.sample,
        }

    @classmethod
    def from_dict(cls, body: dict[str, Any]) -> NumericSummary:
        return cls(body["rows"], body["missing"], body["total"], list(body["sample"]), body["seen"])


@dataclass
class CategoricalSummary:
    rows: int = 0
    missing: int = 0
    counts: dict[str, int] = field(default_factory=dict)

    def add(self, values: pd.Series) -> None:
        self.rows += len(values)
        self.missing += int(values.isna().sum())
        for category, count in values.dropna().astype(str).value_counts().items():
            self.counts[category] = self.counts.get(category, 0) + int(count)

    def shares(self) -> dict[str, float]:
        total = sum(self.counts.values())
        return {category: count / total for category, count in self.counts.items()} if total else {}

    def as_dict(self) -> dict[str, Any]:
        return {"kind": "categorical", "rows": self.rows, "missing": self.missing, "counts": self.counts}

    @classmethod
    def from_dict(cls, body: dict[str, Any]) -> CategoricalSummary:
        return cls(body["rows"], body["missing"], dict(body["counts"]))


Summary = NumericSummary | CategoricalSummary


class Summariser:
    """Takes a day's (or a window's) row batches one at a time: the statistics of every input column
    (not the id: new ids every day are no drift) and of the label."""

    def __init__(self, landing: LandingSettings, task: str, seed: int = 0) -> None:
        kinds = {column.name: column.dtype for column in landing.columns}
        self.label = landing.label
        wanted = [*(name for name in landing.feature_columns if name != landing.id_column), landing.label]
        self.summaries: dict[str, Summary] = {}
        for name in wanted:
            categorical = kinds[name] in ("string", "bool") or (
                name == landing.label and task != "regression"
            )
            self.summaries[name] = CategoricalSummary() if categorical else NumericSummary()
        self.rng = np.random.default_rng(seed)

    def add(self, batch: pd.DataFrame) -> None:
        for name, summary in self.summaries.items():
            if isinstance(summary, NumericSummary):
                summary.add(pd.to_numeric(batch[name], errors="coerce").to_numpy(dtype="float64"), self.rng)
            else:
                summary.add(batch[name])

    def result(self) -> dict[str, Any]:
        features = {name: s.as_dict() for name, s in self.summaries.items() if name != self.label}
        return {"features": features, "label": self.summaries[self.label].as_dict()}


def summarise(batches: Iterable[pd.DataFrame], landing: LandingSettings, task: str, seed: int = 0) -> dict:
    """The statistics of row batches read one at a time (`Summariser`)."""
    summariser = Summariser(landing, task, seed)
    for batch in batches:
        summariser.add(batch)
    return summariser.result()


def merged(summaries: list[dict[str, Any]], seed: int = 0) -> dict[str, Any]:
    """Several days' statistics as one window's: counts and sums add up; each numeric reservoir gives the
    merged one values in proportion to the values it stood for, so the merged sample is still a uniform
    sample of every value seen (at most SAMPLE of them)."""
    rng = np.random.default_rng(seed)

    def merge(bodies: list[dict[str, Any]]) -> dict[str, Any]:
        parts = [summary_of(body) for body in bodies]
        if all(isinstance(p, CategoricalSummary) for p in parts):
            total = CategoricalSummary()
            for part in parts:
                total.rows, total.missing = total.rows + part.rows, total.missing + part.missing
                for category, count in part.counts.items():
                    total.counts[category] = total.counts.get(category, 0) + count
            return total.as_dict()
        numeric = [p for p in parts if isinstance(p, NumericSummary)]
        if len(numeric) != len(parts):
            raise ValueError("a column is numeric in one summary and categorical in another")
        seen = sum(p.seen for p in numeric)
        sample: list[float] = []
        for part in numeric:
            if not part.sample:
                continue
            take = min(len(part.sample), round(SAMPLE * part.seen / seen)) if seen else 0
            sample.extend(rng.choice(np.asarray(part.sample), size=take, replace=False).tolist())
        return NumericSummary(
            rows=sum(p.rows for p in numeric),
            missing=sum(p.missing for p in numeric),
            total=sum(p.total for p in numeric),
            sample=sample[:SAMPLE],
            seen=seen,
        ).as_dict()

    first = summaries[0]
    return {
        "features": {name: merge([s["features"][name] for s in summaries]) for name in first["features"]},
        "label": merge([s["label"] for s in summaries]),
    }


def reference_of(days: list[dict[str, Any] | None]) -> dict[str, Any] | None:
    """A training window's reference from its days' statistics; days without any (prepared before days
    had statistics, or whose statistics could not be taken) are left out and counted."""
    usable = [day for day in days if day and "features" in day]
    if not usable:
        return None
    return {**merged(usable), "days": len(usable), "days_left_out": len(days) - len(usable)}


def summary_of(body: dict[str, Any]) -> Summary:
    return NumericSummary.from_dict(body) if body["kind"] == "numeric" else CategoricalSummary.from_dict(body)


def psi(expected: np.ndarray, actual: np.ndarray) -> float:
    """Population stability index of two share vectors over the same bins: sum (a - e) * ln(a / e)."""
    expected = np.clip(np.asarray(expected, dtype="float64"), _SHARE_FLOOR, None)
    actual = np.clip(np.asarray(actual, dtype="float64"), _SHARE_FLOOR, None)
    expected, actual = expected / expected.sum(), actual / actual.sum()
    return float(np.sum((actual - expected) * np.log(actual / expected)))


def _bin_shares(values: np.ndarray, edges: np.ndarray) -> np.ndarray:
    counts = np.bincount(np.searchsorted(edges, values, side="right"), minlength=len(edges) + 1)
    return counts / max(1, len(values))


def numeric_drift(reference: NumericSummary, day: NumericSummary) -> dict[str, Any]:
    from scipy.stats import ks_2samp

    if not day.seen or not reference.seen:
        side = "the day" if not day.seen else "the reference"
        return {"kind": "numeric", "problem": f"every value is missing in {side}", "drifted": None}
    ref, now = np.asarray(reference.sample), np.asarray(day.sample)
    edges = np.unique(np.quantile(ref, np.linspace(0.1, 0.9, 9)))
    ks = ks_2samp(ref, now)
    return {
        "kind": "numeric",
        "psi": round(psi(_bin_shares(ref, edges), _bin_shares(now, edges)), 4),
        "ks": round(float(ks.statistic), 4),
        "ks_p_value": float(ks.pvalue),
        "mean": [reference.mean, day.mean],
        "missing_share": [reference.missing / max(1, reference.rows), day.missing / max(1, day.rows)],
    }


def categorical_drift(
    reference: CategoricalSummary, day: CategoricalSummary, allowed: list[str] | None = None
) -> dict[str, Any]:
    from scipy.spatial.distance import jensenshannon

    if not day.counts or not reference.counts:
        side = "the day" if not day.counts else "the reference"
        return {"kind": "categorical", "problem": f"every value is missing in {side}", "drifted": None}
    unknown = sorted(set(day.counts) - set(allowed)) if allowed else []
    categories = sorted(set(reference.counts) | set(day.counts))
    ref_shares, day_shares = reference.shares(), day.shares()
    expected = np.array([ref_shares.get(c, 0.0) for c in categories])
    actual = np.array([day_shares.get(c, 0.0) for c in categories])
    figures: dict[str, Any] = {
        "kind": "categorical",
        "psi": round(psi(expected, actual), 4),
        "jensen_shannon": round(float(jensenshannon(expected, actual, base=2)), 4),
        "shares": [ref_shares, day_shares],
    }
    if unknown:
        figures.update(problem=f"categories not in `allowed`: {', '.join(unknown)}", drifted=None)
    return figures


@dataclass
class DriftReport:
    verdict: Verdict
    features: dict[str, dict[str, Any]]
    drifted: list[str]
    problems: dict[str, str]
    label: dict[str, Any] | None
    reason: str

    def as_dict(self) -> dict[str, Any]:
        return {
            "verdict": self.verdict,
            "drifted": self.drifted,
            "problems": self.problems,
            "features": self.features,
            "label": self.label,
            "reason": self.reason,
        }


def compare(
    reference: dict[str, Any] | None,
    day: dict[str, Any],
    landing: LandingSettings,
    monitoring: MonitoringSettings,
) -> DriftReport:
    """The day against the reference, feature by feature: a feature drifted when its PSI reaches
    `psi_threshold`; the day drifted when at least `share_of_features` of them did. A feature whose
    figures cannot be computed is named under `problems` and makes the verdict `unknown` unless the others
    already say drifted: never `stable`."""
    if reference is None:
        return DriftReport(
            "no reference", {}, [], {}, None, "no champion yet: nothing to compare the day with"
        )
    allowed = {column.name: column.allowed for column in landing.columns}
    features: dict[str, dict[str, Any]] = {}
    for name, body in day["features"].items():
        ref, now = summary_of(reference["features"][name]), summary_of(body)
        if isinstance(ref, NumericSummary) and isinstance(now, NumericSummary):
            figures = numeric_drift(ref, now)
        else:
            figures = categorical_drift(ref, now, allowed.get(name))  # type: ignore[arg-type]
        if "problem" not in figures:
            figures["drifted"] = figures["psi"] >= monitoring.psi_threshold
        features[name] = figures
    drifted = sorted(name for name, f in features.items() if f.get("drifted"))
    problems = {name: f["problem"] for name, f in features.items() if "problem" in f}
    label = _label_drift(reference.get("label"), day.get("label"))
    share = len(drifted) / max(1, len(features))
    if share >= monitoring.share_of_features:
        verdict: Verdict = "drifted"
        reason = (
            f"{len(drifted)} of {len(features)} features drifted (PSI >= {monitoring.psi_threshold}): "
            + ", ".join(f"{name} {features[name]['psi']}" for name in drifted)
        )
    elif problems:
        verdict = "unknown"
        reason = "figures could not be computed: " + "; ".join(f"{n}: {p}" for n, p in problems.items())
    else:
        verdict = "stable"
        worst = max(features, key=lambda n: features[n]["psi"]) if features else None
        reason = f"{len(drifted)} of {len(features)} features drifted" + (
            f"; the largest PSI is {worst} {features[worst]['psi']}" if worst else ""
        )
    return DriftReport(verdict, features, drifted, problems, label, reason)


def _label_drift(reference: dict[str, Any] | None, day: dict[str, Any] | None) -> dict[str, Any] | None:
    if reference is None or day is None:
        return None
    ref, now = summary_of(reference), summary_of(day)
    if isinstance(ref, CategoricalSummary) and isinstance(now, CategoricalSummary):
        return categorical_drift(ref, now)
    if isinstance(ref, NumericSummary) and isinstance(now, NumericSummary):
        return numeric_drift(ref, now)
    return None


@dataclass(frozen=True)
class TrainingDecision:
    train: bool
    reason: str
    alert: bool = False  # fail open: training anyway, and someone should know why


def training_decision(
    retrain: str,
    report: dict[str, Any] | None,
    last_trained_at: datetime | None,
    now: datetime,
    max_age_days: int,
) -> TrainingDecision:
    """Whether a day's train run searches: always with `every_landing`; with `on_drift` when the day
    drifted, its drift is unknown or missing (fail open to training), there is no champion
    (`last_trained_at` None), or the pipeline last trained more than `max_age_days` ago."""
    if retrain == "every_landing":
        return TrainingDecision(True, "training.retrain is every_landing")
    if last_trained_at is None:
        return TrainingDecision(True, "no champion yet")
    if report is None:
        return TrainingDecision(True, "no drift report for this day: training, as if it drifted", alert=True)
    verdict = report.get("verdict")
    if verdict in ("drifted", "unknown", "no reference"):
        return TrainingDecision(True, f"drift {verdict}: {report.get('reason', '')}".rstrip(": "))
    age_days = (now - last_trained_at).total_seconds() / 86400
    if age_days > max_age_days:
        return TrainingDecision(
            True, f"last trained {age_days:.1f} days ago (training.max_age_days {max_age_days})"
        )
    return TrainingDecision(
        False, f"no drift ({report.get('reason', '')}); last trained {age_days:.1f} days ago"
    )
