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
