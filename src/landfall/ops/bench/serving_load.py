"""The benchmark's serving phase: a second champion through the real chain (canary and activation timed),
then a bounded load test of the scoring service with the champion alias moved in the middle of it.

The second champion is a drifted day landed a whole training window after every earlier day, so that it
trains and is evaluated on its own (drifted) data, where it beats the first champion (trained on ordinary
data) clearly: about +0.02 accuracy, the gate's bootstrap lower bound above +0.01. Landed beside the first
day, its window would mix both days and the gate would rightly say skip. Should the gate or the canary
still stop it, its candidate is promoted for the benchmark (the deploy figures are then not measured and
the results say why), so the load test always has two champions to switch between.

The move in the middle is a plain alias move (what `landfall rollback` does), with no nudge from deploy:
it measures how long the service takes to follow the registry by itself (serving.poll_interval_s).
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from typing import Any

import requests

from landfall.core import catalog
from landfall.core.catalog import chain_of
from landfall.ops.airflow_api import AirflowApi
from landfall.ops.bench.landing_records import BENCH_PIPELINE
from landfall.ops.bench.report import percentiles
from landfall.pipeline import registry
from landfall.pipeline.canary import as_rows
from landfall.pipeline.datagen import make_batch
from landfall.pipeline.training.models import run_model_uri
from landfall.serving.client import ServingClient


@dataclass(frozen=True)
class LoadOptions:
    requests: int = 20_000
    clients: int = 8
    rows_per_request: int = 10


DRIFTED_ROWS = 5000  # at least: the margin in the docstring above was measured on days of this size


def serving_phase(bench: Any, options: LoadOptions) -> dict[str, Any]:
    """A second champion (a drifted day, in a training window of its own, beats the first on its own
    data) through the real chain, then the load test with a switch back to the first."""
    names = bench.stack.settings.names
    from landfall.ops.follow import follow_chain, follow_landing
    from landfall.pipeline.datagen import to_parquet

    stack = bench.stack
    name = stack.settings.mlflow.model_name
    if registry.champion_version(name, registry.client()) is None:
        raise RuntimeError(
            "there is no first champion to switch back to (the 'one day, landing to champion' phase made "
            "none)"
        )
    key = bench._new_key(fresh_window=True)
    day = key.split("/")[-2]
    rows = max(bench.options.day_rows, DRIFTED_ROWS)
    bench.echo(f"  a second champion: a drifted day ({rows} rows) landed as {key}")
    bench._put(key, to_parquet(make_batch(rows, seed=907, drift=2.0)))
    ingest = follow_landing(bench.api, key, timeout_s=600, echo=lambda _line: None)
    chain = follow_chain(bench.api, day, ingest.queued_at, timeout_s=900, echo=lambda _line: None)
    token = stack.state.secrets().serving_token
    if chain[-1].dag_id == names.deploy_dag and chain[-1].tasks.get("activate") == "success":
        figures = {
            "second_champion": "promoted and served by its deploy run",
            **deploy_figures(bench.api, bench.s3, day),
        }
        bench.echo(
            f"  canary {figures['canary_s']} s ({figures['canary_rows']} rows), alias -> served "
            f"{figures['deploy_alias_to_serving_s']} s"
        )
    else:
        figures = promote_for_benchmark(
            bench, chain, ServingClient(stack.ctx.serving_url, token, pipeline=stack.settings.pipeline)
        )
        bench.echo(f"  {figures['second_champion']}")
    bench.echo(f"  {options.requests:,} requests from {options.clients} clients ...")
    figures["load"] = load_test(stack.ctx.serving_url, token, name, options)
    return {"serving": figures}


def promote_for_benchmark(bench: Any, chain: list[Any], served: ServingClient) -> dict[str, Any]:
    """The drifted day's deploy run did not promote it (the gate said skip, or the canary failed): promote
    its evaluated candidate for the benchmark and wait until the service serves it. The deploy figures
    are not measured then; `second_champion` says why."""
    names = bench.stack.settings.names
    evaluated = next((r for r in chain if r.dag_id == names.evaluate_dag and r.state == "success"), None)
    if evaluated is None:
        raise RuntimeError(
            f"the drifted day was not evaluated, so there is no second champion: "
            f"{[(r.dag_id, r.state, r.tasks) for r in chain]}"
        )
    evaluation = bench.api.xcom_value(bench.s3, names.evaluate_dag, evaluated.run_id, catalog.COMPARE_TASK)
    name, client = bench.stack.settings.mlflow.model_name, registry.client()
    run_id = str(evaluation["run_id"])
    current = registry.champion_version(name, client)
    promoted = registry.promote(name, run_id, run_model_uri(run_id), current, "landfall bench", client)
    if not (promoted.moved or promoted.result == "already_champion"):  # promoted, then not served in time
        raise RuntimeError(
            f"the drifted day's candidate could not be promoted for the benchmark: {promoted.reason}"
        )
    served.activate()
    served.wait_for_version(str(promoted.version), bench.stack.settings.serving.activate_timeout_s)
    deploy = chain[-1]
    return {
        "second_champion": (
            f"v{promoted.version} promoted for the benchmark: its deploy run did not "
            f"promote it ({deploy.dag_id} {deploy.state}, tasks {deploy.tasks}; the gate said: "
            f"{evaluation.get('reason')})"
        ),
        "canary_rows": None,
        "canary_s": None,
        "canary_load_s": None,
        "canary_p95_ms": None,
        "deploy_alias_to_serving_s": None,
    }


def deploy_figures(api: AirflowApi, s3: Any, day: str) -> dict[str, Any]:
    """Canary and activation figures of the deploy run of `day`'s partition."""
    names = chain_of(BENCH_PIPELINE)
    [run] = [r for r in api.dag_runs(names.deploy_dag) if r.get("partition_key") == day][:1]
    canary = api.xcom_value(s3, names.deploy_dag, run["dag_run_id"], "canary")
    activation = api.xcom_value(s3, names.deploy_dag, run["dag_run_id"], "activate")
    return {
        "canary_rows": canary["rows"],
        "canary_s": canary["canary_s"],
        "canary_load_s": canary["load_s"],
        "canary_p95_ms": round(canary["latency_p95_ms"], 1),
        "deploy_alias_to_serving_s": activation["alias_to_serving_s"],
    }


def load_test(url: str, token: str, model_name: str, options: LoadOptions) -> dict[str, Any]:
    """`options.requests` POST /predict from `options.clients` threads; half-way through, the champion
    alias moves back to the previous version. Every answer must name one of the two versions."""
    client = registry.client()
    before = registry.champion(model_name, client)
    if before is None or not before.tags.get(registry.PREVIOUS_TAG):
        raise RuntimeError("the serving phase needs a champion with a previous version to switch to")
    target = before.tags[registry.PREVIOUS_TAG]
    feature_columns = list(make_batch(1, seed=0).columns.drop(["churned"]))
    body = {"rows": as_rows(make_batch(options.rows_per_request, seed=11)[feature_columns])}
    per_client = options.requests // options.clients
    latencies: list[float] = []
    versions: dict[str, int] = {}
    errors: list[str] = []
    first_new: list[float] = []
    lock, halfway = threading.Lock(), threading.Event()
    done_count = [0]

    def worker() -> None:
        session = requests.Session()
        session.trust_env = False
        session.headers["Authorization"] = f"Bearer {token}"
        for _ in range(per_client):
            started = time.perf_counter()
            try:
                response = session.post(f"{url}/predict", json=body, timeout=30)
                answer = response.json() if response.ok else None
            except requests.RequestException as error:
                response, answer = None, None
                problem = type(error).__name__
            else:
                problem = f"HTTP {response.status_code}" if answer is None else ""
            elapsed = time.perf_counter() - started
            with lock:
                done_count[0] += 1
                if problem:
                    errors.append(problem)
                    continue
                latencies.append(elapsed * 1000)
                versions[answer["version"]] = versions.get(answer["version"], 0) + 1
                if answer["version"] == target and not first_new:
                    first_new.append(time.time())
                if done_count[0] >= options.requests // 2:
                    halfway.set()

    threads = [threading.Thread(target=worker) for _ in range(options.clients)]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    halfway.wait(timeout=600)
    moved_at = time.time()  # the alias moves at the end of this call (after its tags are written)
    by = f"landfall bench (switch at {moved_at:.0f})"  # its own request: never taken for an earlier one
    moved = registry.rollback(model_name, target, "benchmark: switch under load", by, client)
    for thread in threads:
        thread.join()
    wall = time.perf_counter() - started
    stats = percentiles(latencies)
    unexpected = {v: n for v, n in versions.items() if v not in (str(before.version), moved.version)}
    return {
        "requests": len(latencies) + len(errors),
        "clients": options.clients,
        "rows_per_request": options.rows_per_request,
        "errors": len(errors),
        "error_kinds": sorted(set(errors)),
        "requests_per_s": round((len(latencies) + len(errors)) / wall, 1),
        "latency_ms": {"p50": stats.get("p50"), "p99": _p99(latencies), "max": stats.get("max")},
        "versions": versions,
        "unexpected_versions": unexpected,
        "switch": {"from": str(before.version), "to": moved.version},
        "alias_to_serving_s": round(first_new[0] - moved_at, 3)
        if first_new and first_new[0] >= moved_at
        else None,
    }


def _p99(values: list[float]) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return round(ordered[min(len(ordered) - 1, int(0.99 * len(ordered)))], 2)
