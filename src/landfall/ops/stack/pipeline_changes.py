"""What `landfall up` applies to a running stack when the pipelines in config changed.

The stack records a fingerprint of each pipeline's resolved settings after every start. When `up` finds
the stack healthy but the fingerprints differ (a pipeline added, changed or removed), it creates the new
pipelines' pools and restarts what reads the pipelines only when it starts: the dag-processor (so the
DAGs are rebuilt now, not at its next periodic parse), the triggerer (its deadline callbacks keep the
settings they first read; the watchers resume from their ledgers) and the scoring service (one
follower per pipeline). Tasks read the config afresh in each task process.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from pathlib import Path
from typing import NamedTuple

from landfall.core.settings import ProjectSettings

RESTARTED_FOR_PIPELINES = ("dag-processor", "triggerer", "serving")


def restarted_for_pipelines(components: Iterable[str]) -> list[str]:
    """Of the stack's components, those a pipeline change restarts (their replicas included)."""
    return [name for name in components if name.startswith(RESTARTED_FOR_PIPELINES)]


def restart_waves(running: list[str]) -> tuple[list[str], list[str]]:
    """Airflow's stopped together (the triggerer alone can take 10 s to stop), then the scoring service
    on its own, so that it is down only for its own restart."""
    alone = [name for name in running if name.startswith("serving")]
    return [name for name in running if name not in alone], alone


class PipelineChanges(NamedTuple):
    added: list[str]
    changed: list[str]
    removed: list[str]

    def __bool__(self) -> bool:
        return bool(self.added or self.changed or self.removed)

    def describe(self) -> str:
        parts = [
            f"{what} {', '.join(names)}"
            for what, names in (("added", self.added), ("changed", self.changed), ("removed", self.removed))
            if names
        ]
        return "; ".join(parts)


def fingerprints(project: ProjectSettings) -> dict[str, str]:
    """Each valid pipeline's resolved settings, hashed. The state folder counts as the folder it names:
    `landfall env` exports it absolute, and `.landfall` from the shell that ran `eval "$(landfall env)"`
    is no change (it restarted the triggerer on every second `up`)."""
    fingerprints = {}
    for settings in project.all_settings():
        resolved = settings.model_dump(mode="json")
        resolved["stack"]["state_dir"] = str(settings.stack.state_path)
        body = json.dumps(resolved, sort_keys=True).encode()
        fingerprints[settings.pipeline] = hashlib.sha256(body).hexdigest()[:16]
    return fingerprints


def changes(before: dict[str, str], now: dict[str, str]) -> PipelineChanges:
    return PipelineChanges(
        added=sorted(now.keys() - before.keys()),
        changed=sorted(name for name in now.keys() & before.keys() if now[name] != before[name]),
        removed=sorted(before.keys() - now.keys()),
    )


def recorded(path: Path) -> dict[str, str] | None:
    """The fingerprints the running stack was started or last updated with; None if never recorded."""
    try:
        return json.loads(path.read_text())
    except (FileNotFoundError, ValueError):
        return None


def record(path: Path, now: dict[str, str]) -> None:
    path.write_text(json.dumps(now, indent=2, sort_keys=True))
