"""What `landfall up` sees changed in the pipelines of a running stack."""

from __future__ import annotations

from config_files import more_pipeline, pipeline_block, write_config
from landfall.core.settings import load_project
from landfall.ops.stack.pipeline_changes import changes, fingerprints, record, recorded


def test_an_added_a_changed_and_a_removed_pipeline_are_each_named(tmp_path, monkeypatch):
    write_config(tmp_path, monkeypatch, pipeline_block("churn") + more_pipeline("old"))
    before = fingerprints(load_project())
    write_config(
        tmp_path,
        monkeypatch,
        pipeline_block("churn", deploy="min_score: 0.8") + more_pipeline("meters"),
    )
    found = changes(before, fingerprints(load_project()))
    assert (found.added, found.changed, found.removed) == (["meters"], ["churn"], ["old"])
    assert found.describe() == "added meters; changed churn; removed old"


def test_the_same_config_again_changes_nothing_and_the_record_survives_a_restart(tmp_path, monkeypatch):
    write_config(tmp_path, monkeypatch, pipeline_block("churn"))
    now = fingerprints(load_project())
    assert recorded(tmp_path / "pipelines.json") is None
    record(tmp_path / "pipelines.json", now)
    assert not changes(recorded(tmp_path / "pipelines.json"), fingerprints(load_project()))


def test_the_state_folder_named_absolute_by_landfall_env_is_no_change(tmp_path, monkeypatch):
    """After `eval "$(landfall env)"` the shell holds the state folder as an absolute path; the next `up`
    from that shell once restarted the triggerer, the dag-processor and serving for nothing."""
    write_config(tmp_path, monkeypatch, pipeline_block("churn"))
    monkeypatch.delenv("LANDFALL_STACK__STATE_DIR", raising=False)
    before = fingerprints(load_project())
    state = load_project().settings_for("churn").stack.state_path
    monkeypatch.setenv("LANDFALL_STACK__STATE_DIR", str(state))
    assert not changes(before, fingerprints(load_project()))
    monkeypatch.setenv("LANDFALL_STACK__STATE_DIR", str(tmp_path / "elsewhere"))
    assert changes(before, fingerprints(load_project())).changed == ["churn"]


class _Supervisor:
    def __init__(self, calls: list) -> None:
        self.calls = calls

    def stop_together(self, names: list[str]) -> list[str]:
        self.calls.append(("stop", tuple(names)))
        return names

    def stop(self, name: str) -> bool:
        self.calls.append(("stop", (name,)))
        return True


def _settle(tmp_path, monkeypatch, running_before: list[str]) -> list:
    """`up`'s last step on a stack whose recorded pipelines differ from the config's; what it restarted."""
    from landfall.core.settings import load_project
    from landfall.ops.stack import launcher, provision

    write_config(tmp_path, monkeypatch, pipeline_block("churn") + more_pipeline("meters"))
    monkeypatch.setenv("LANDFALL_STACK__STATE_DIR", str(tmp_path / "state"))
    stack = launcher.Stack(load_project().settings_for("churn"), echo=lambda line: None)
    stack.state.root.mkdir(parents=True, exist_ok=True)
    record(stack.state.root / "pipelines.json", {"churn": "an older config"})
    calls: list = []
    stack.supervisor = _Supervisor(calls)
    monkeypatch.setattr(stack, "_start", lambda component: calls.append(("start", component.name)))
    monkeypatch.setattr(stack, "_wait_healthy", lambda names, deadline: None)
    monkeypatch.setattr(stack, "wait_for_dags", lambda deadline, project: None)
    monkeypatch.setattr(stack, "api", lambda: None)
    monkeypatch.setattr(provision, "create_pools", lambda api, names: None)
    stack._settle_pipelines(0.0, running_before)
    return calls


def test_a_changed_config_restarts_what_ran_before_up_airflow_together_serving_on_its_own(
    tmp_path, monkeypatch
):
    """Also on a partly-up stack: the dag-processor re-parses only every 5 minutes by itself, so one left
    running would not build the new pipeline's DAGs before `up` gave up waiting for them."""
    calls = _settle(tmp_path, monkeypatch, ["dag-processor", "triggerer", "serving"])
    assert calls == [
        ("stop", ("dag-processor", "triggerer")),
        ("start", "dag-processor"),
        ("start", "triggerer"),
        ("stop", ("serving",)),
        ("start", "serving"),
    ]


def test_components_started_by_this_up_are_not_restarted_for_the_change(tmp_path, monkeypatch):
    assert _settle(tmp_path, monkeypatch, ["dag-processor"]) == [
        ("stop", ("dag-processor",)),
        ("start", "dag-processor"),
    ]
    assert _settle(tmp_path, monkeypatch, []) == []


def test_down_stops_airflow_then_its_api_server_then_the_services_then_storage(monkeypatch):
    from landfall.core.settings import load_settings
    from landfall.ops.stack.components import components_of, stop_waves

    monkeypatch.setenv("LANDFALL_STACK__PROFILE", "scaleout")
    monkeypatch.setenv("LANDFALL_STACK__SCALEOUT__TRIGGERERS", "2")
    airflow, api_server, services, storage = stop_waves(components_of(load_settings()), ("s3",))
    assert {"scheduler", "dag-processor", "triggerer", "triggerer-2", "celery-worker"} <= set(airflow)
    assert "api-server" not in airflow and api_server == ["api-server"]
    assert "mlflow" in services and "serving" in services and "s3" not in services
    assert storage == ["s3"]
