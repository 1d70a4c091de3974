"""Follow the `champion` alias: load a new champion beside the old one, then swap (never unload first)."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any

from landfall.pipeline import registry
from landfall.pipeline.training.models import load_trial_model
from landfall.serving.slots import Served, Slots

log = logging.getLogger(__name__)


class ChampionFollower:
    def __init__(
        self,
        slots: Slots,
        model_name: str,
        client_factory: Callable[[], Any],
        poll_s: float,
        experiment: str | None = None,
        load: Callable[[Any, str, str | None], Any] = load_trial_model,
    ) -> None:
        self.slots, self.model_name, self.client_factory, self.poll_s = (
            slots,
            model_name,
            client_factory,
            poll_s,
        )
        self.experiment = experiment  # a staged candidate must be a trial of this experiment
        self.load = load
        self.last_error: str | None = None
        self.synced = threading.Event()  # set once the alias was read and its model (if any) is served
        self._halt = threading.Event()
        self._lock = threading.Lock()  # one champion load at a time (the poll and an explicit /activate)
        self._stage_lock = threading.Lock()  # one candidate load at a time (concurrent canary batches)
        self._thread = threading.Thread(target=self._run, name="champion-follower", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._halt.set()

    def sync(self) -> Served | None:
        """Serve whatever holds the alias now; return the active model. A poll that finds the alias where
        it was costs one registry call."""
        with self._lock:
            client = self.client_factory()
            version = registry.champion_version(self.model_name, client)
            active = self.slots.active
            if version is None or (active is not None and active.version == version):
                return active
            current = client.get_model_version(self.model_name, version)
            staged = self.slots.staging
            model = staged.model if staged is not None and staged.run_id == current.run_id else None
            if model is None:
                # The registry's champion: promoted by deploy after its own checks (any experiment).
                model = self.load(client, current.run_id, None)
            served = Slots.served(model, version, current.run_id)
            previous = self.slots.activate(served)
            log.info(
                "Serving %s version %s (was %s)",
                self.model_name,
                version,
                previous.version if previous else None,
            )
            return served

    def stage(self, run_id: str) -> Served:
        """The candidate of training run `run_id` in the staging slot (loaded unless it is there)."""
        with self._stage_lock:
            staged = self.slots.staging
            if staged is None or staged.run_id != run_id:
                model = self.load(self.client_factory(), run_id, self.experiment)
                staged = Slots.served(model, None, run_id)
                self.slots.stage(staged)
            return staged

    def _run(self) -> None:
        while not self._halt.is_set():
            try:
                self.sync()
                self.last_error = None
                self.synced.set()
            except Exception as error:  # MLflow or S3 away: keep serving what is loaded, try again
                self.last_error = f"{type(error).__name__}: {error}"
                log.warning("Could not follow the champion alias: %s", self.last_error)
            self._halt.wait(self.poll_s)
