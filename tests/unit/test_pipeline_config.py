"""Pipelines as config entries: the `pipelines:` mapping, its defaults, its environment overrides, the
errors that stop one pipeline (and only it), and the old single-pipeline form refused with its
conversion."""

from __future__ import annotations

import pytest
import yaml
from click.testing import CliRunner

from config_files import more_pipeline, pipeline_block, write_config
from landfall.cli import main
from landfall.core.paths import DEFAULT_CONFIG_FILE
from landfall.core.settings import ConfigError, load_project, load_settings


def test_the_shipped_config_is_the_churn_pipeline_where_its_data_always_was():
    settings = load_settings()
    assert settings.pipeline == "churn"
    storage = settings.storage
    assert (
        storage.landing_prefix,
        storage.raw_prefix,
        storage.processed_prefix,
        storage.quarantine_prefix,
    ) == (
        "daily",
        "raw",
        "processed",
        "quarantine",
    )
    assert storage.ledger_prefix == "_landfall/landing-ledger"  # the watcher's records did not move
    assert (settings.mlflow.model_name, settings.mlflow.experiment) == ("landfall-churn", "landfall")
    assert settings.landing.id_column == "customer_id"


def test_an_unset_prefix_or_name_defaults_under_the_pipelines_own_name(tmp_path, monkeypatch):
    write_config(tmp_path, monkeypatch, pipeline_block("meters"))
    settings = load_settings("meters")
    assert [
        settings.storage.landing_prefix,
        settings.storage.raw_prefix,
        settings.storage.quarantine_prefix,
    ] == [
        "meters/landing",
        "meters/raw",
        "meters/quarantine",
    ]
    assert settings.storage.ledger_prefix == "_landfall/ledgers/meters"
    assert settings.mlflow.model_name == settings.mlflow.experiment == "landfall-meters"


def test_task_metric_and_trainer_defaults_follow_the_task(tmp_path, monkeypatch):
    write_config(
        tmp_path,
        monkeypatch,
        pipeline_block("churn")
        + more_pipeline("prices", training="task: regression\ntrainer: sklearn:sklearn.linear_model.Ridge")
        + more_pipeline("tiers", training="task: multiclass\nmetric: f1_macro\ngrid: {hidden_units: [4]}"),
    )
    prices, tiers = load_settings("prices"), load_settings("tiers")
    assert (prices.training.metric, prices.deploy.min_score, prices.training.grid) == ("rmse", None, {})
    assert prices.training.builtin is False
    assert (tiers.training.trainer, tiers.training.metric, tiers.deploy.min_score) == (
        "mlp",
        "f1_macro",
        0.90,
    )
    assert tiers.training.grid["hidden_units"] == [4] and tiers.training.grid["batch_size"] == [64, 256]
    assert load_settings("churn").training.trainer == "mlp"


def test_environment_variables_reach_a_pipelines_keys(monkeypatch):
    monkeypatch.setenv("LANDFALL_PIPELINES__CHURN__DEPLOY__MIN_SCORE", "0.75")
    monkeypatch.setenv("LANDFALL_PIPELINES__CHURN__TRAINING__GRID__HIDDEN_UNITS", "[8, 16]")
    settings = load_settings("churn")
    assert settings.deploy.min_score == 0.75
    assert settings.training.grid["hidden_units"] == [8, 16]
    assert settings.landing.label == "churned"  # the rest of the block still comes from the file


def test_a_pipeline_named_only_by_environment_variables_is_called_a_misspelling(tmp_path, monkeypatch):
    write_config(tmp_path, monkeypatch, pipeline_block("churn"))
    monkeypatch.setenv("LANDFALL_PIPELINES__CHRUN__DEPLOY__MIN_SCORE", "0.8")
    with pytest.raises(ConfigError, match=r"pipelines.chrun: no such pipeline .*CHRUN__DEPLOY__MIN_SCORE"):
        load_project()


def test_with_several_pipelines_a_caller_must_name_one(tmp_path, monkeypatch):
    write_config(tmp_path, monkeypatch, pipeline_block("churn") + more_pipeline("meters"))
    assert load_project().names() == ["churn", "meters"]
    with pytest.raises(ConfigError, match=r"2 pipelines are configured \(churn, meters\): name one"):
        load_settings()
    assert load_settings("meters").pipeline == "meters"
    with pytest.raises(ConfigError, match=r"no pipeline 'nope'.*the pipelines are"):
        load_settings("nope")


def landing(id_column: str, label: str, *columns: str) -> str:
    listed = ", ".join(f"{{name: {name}, dtype: int64}}" for name in columns)
    return f"id_column: {id_column}\nlabel: {label}\ncolumns: [{listed}]"


@pytest.mark.parametrize(
    ("block", "expected"),
    [
        ({"training": "epochs: 3"}, r"pipelines\.bad\.training\.epochs: unknown key"),
        (
            {"training": "task: regression\nmetric: accuracy"},
            r"pipelines\.bad\.training: .*metric 'accuracy' does not score a regression task; use one of "
            r"\['rmse', 'mae', 'r2'\]",
        ),
        ({"training": "task: multiclass\ntrainer: torch"}, r"torch trains binary tasks only"),
        (
            {"training": "trainer: sklearn:sklearn.linear_model.Ridge\ngrid: {alpha: []}"},
            r"grid \['alpha'\]: each",
        ),
        ({"training": "trainer: sklearn:Forest"}, r"pipelines\.bad\.training\.trainer: String should match"),
        (
            {"training": "trainer: python:module.fit"},
            r"pipelines\.bad\.training\.trainer: String should match",
        ),
        (
            {"training": "model: mlp\ntrainer: torch"},
            r"pipelines\.bad\.training: .*`model` \('mlp'\) is the old name",
        ),
        (
            {
                "landing": "id_column: i\nlabel: y\n"
                "columns: [{name: i, dtype: int64}, {name: y, dtype: string}]",
                "training": "task: regression",
            },
            r"pipelines\.bad\.landing\.label: .*a regression label's dtype is one of \['int64', 'float64'\]",
        ),
        (
            {"landing": landing("id", "y", "x", "y")},
            r"pipelines\.bad\.landing: Value error, id_column 'id' is not one of the columns \['x', 'y'\]",
        ),
        (
            {"landing": landing("x", "z", "x", "y")},
            r"pipelines\.bad\.landing: Value error, label 'z' is not one of the columns",
        ),
        (
            {"landing": landing("x", "x", "x", "y")},
            "a row's id cannot be its label",
        ),
        (
            {"deploy": "min_score: 2"},
            r"pipelines\.bad\.deploy\.min_score: deploy\.min_score 2 is outside what accuracy can score",
        ),
        ({"storage": "raw_prefix: ../x"}, r"pipelines\.bad\.storage\.raw_prefix: .*not a safe S3 prefix"),
    ],
)
def test_an_invalid_pipeline_is_named_with_its_key_and_where_to_fix_it(
    tmp_path, monkeypatch, block, expected
):
    write_config(tmp_path, monkeypatch, pipeline_block("churn") + more_pipeline("bad", **block))
    with pytest.raises(ConfigError, match=expected) as refused:
        load_project()
    assert "LANDFALL_PIPELINES__BAD__" in str(refused.value)  # where to set it, besides the file
    assert "pipelines.churn" not in str(refused.value)


def test_one_invalid_pipeline_leaves_the_others_usable_where_errors_are_tolerated(tmp_path, monkeypatch):
    write_config(tmp_path, monkeypatch, pipeline_block("churn") + more_pipeline("bad", training="epochs: 3"))
    project = load_project(strict=False)
    assert project.names() == ["churn"]
    assert list(project.broken) == ["bad"]
    assert project.settings_for("churn").pipeline == "churn"
    with pytest.raises(ConfigError, match="pipeline 'bad' is invalid"):
        project.settings_for("bad")


def test_a_pipeline_overlapping_an_earlier_one_is_set_aside_and_the_earlier_keeps_running(
    tmp_path, monkeypatch
):
    text = (
        pipeline_block("churn", storage="landing_prefix: shared")
        + more_pipeline("meters", storage="landing_prefix: shared/meters")
        + more_pipeline("fine")
    )
    write_config(tmp_path, monkeypatch, text)
    project = load_project(strict=False)
    assert project.names() == ["churn", "fine"]
    [meters] = project.broken["meters"]
    assert (
        "pipelines.meters.storage.landing_prefix: 'shared/meters' overlaps "
        "pipelines.churn.storage.landing_prefix ('shared')" in meters
    )
    assert "LANDFALL_PIPELINES__METERS__STORAGE__LANDING_PREFIX" in meters


def test_a_pipelines_prefixes_may_not_overlap_each_other_or_the_shared_ones(tmp_path, monkeypatch):
    write_config(
        tmp_path, monkeypatch, pipeline_block("churn", storage="landing_prefix: data\nraw_prefix: data/raw")
    )
    with pytest.raises(
        ConfigError, match=r"raw_prefix: 'data/raw' overlaps pipelines\.churn\.storage\.landing_prefix"
    ):
        load_project()
    write_config(tmp_path, monkeypatch, pipeline_block("churn", storage="quarantine_prefix: xcom/q"))
    with pytest.raises(ConfigError, match=r"'xcom/q' overlaps storage\.xcom_prefix"):
        load_project()


def test_two_pipelines_cannot_share_a_registered_model(tmp_path, monkeypatch):
    text = pipeline_block("churn", mlflow="model_name: shared") + more_pipeline(
        "meters", mlflow="model_name: shared"
    )
    write_config(tmp_path, monkeypatch, text)
    with pytest.raises(
        ConfigError, match=r"pipelines\.meters\.mlflow\.model_name: 'shared' is also pipelines\.churn"
    ):
        load_project()


@pytest.mark.parametrize("name", ["Churn", "churn-eu", "9lives", "x" * 41, "a__b", "churn_"])
def test_a_pipeline_name_must_fit_in_dag_ids_and_variable_names(tmp_path, monkeypatch, name):
    write_config(tmp_path, monkeypatch, pipeline_block(name))
    with pytest.raises(ConfigError, match="is not a pipeline name"):
        load_project()


def test_queue_mode_serves_several_pipelines_through_one_queue(tmp_path, monkeypatch):
    """One shared stream reads the queue for every pipeline (`landing_stream`), so queue mode is no
    longer limited to one pipeline."""
    from landfall.airflow.triggers.landing_watch import LandingWatch

    write_config(tmp_path, monkeypatch, pipeline_block("churn") + more_pipeline("meters"))
    monkeypatch.setenv("LANDFALL_WATCHER__MODE", "queue")
    project = load_project()
    watch = LandingWatch.of_pipelines(project.all_settings())
    assert watch.pipelines() == ["churn", "meters"] and watch.queue_url == project.watcher.queue_url


def test_a_config_without_pipelines_says_how_to_add_one(tmp_path, monkeypatch):
    write_config(tmp_path, monkeypatch, "storage:\n  datasets_bucket: acme-data\n")
    with pytest.raises(ConfigError, match=r"no pipeline is configured .* add a `pipelines:` block"):
        load_project()


OLD_FORM = """\
storage:
  datasets_bucket: acme-data
  landing_prefix: incoming
landing:
  label: churned
  columns:
    - {name: customer_id, dtype: int64}
    - {name: spend, dtype: float64}
    - {name: churned, dtype: int64}
training:
  window_days: 3
mlflow:
  model_name: acme-churn
watcher:
  open_days: 5
"""


def test_the_single_pipeline_form_is_refused_with_the_block_it_becomes(tmp_path, monkeypatch):
    config = write_config(tmp_path, monkeypatch, OLD_FORM)
    with pytest.raises(ConfigError) as refused:
        load_project()
    message = str(refused.value)
    assert "landing, training, mlflow, storage.landing_prefix now belong to a pipeline" in message
    block = yaml.safe_load(message.split("nothing moves in S3 or MLflow):\n", 1)[1])
    # The block is a working config with the same settings, and the data stays where it was.
    config.write_text(yaml.safe_dump(block))
    [name] = load_project().names()
    assert name == "acme_churn"
    settings = load_settings(name)
    assert settings.storage.datasets_bucket == "acme-data"
    assert settings.storage.landing_prefix == "incoming"
    assert settings.storage.raw_prefix == "raw"
    assert settings.storage.ledger_prefix == "_landfall/landing-ledger"
    assert (settings.mlflow.model_name, settings.mlflow.experiment) == ("acme-churn", "landfall")
    assert settings.training.window_days == 3
    assert settings.landing.id_column == "customer_id"
    assert settings.watcher.open_days == 5


def test_the_shipped_config_converted_back_and_forth_is_the_same(tmp_path, monkeypatch):
    """Flattening the churn pipeline into the old form and converting it back gives the same settings."""
    new = yaml.safe_load(DEFAULT_CONFIG_FILE.read_text())
    churn = new.pop("pipelines")["churn"]
    churn["landing"].pop("id_column")
    churn.pop("monitoring")  # newer than the single-pipeline form (its values are the defaults)
    old = {**new, **{k: v for k, v in churn.items() if k != "storage"}}
    old["storage"] = {**new["storage"], **churn["storage"]}
    config = write_config(tmp_path, monkeypatch, yaml.safe_dump(old))
    monkeypatch.setenv("LANDFALL_CONFIG", str(DEFAULT_CONFIG_FILE))
    expected = load_settings("churn")
    monkeypatch.setenv("LANDFALL_CONFIG", str(config))
    with pytest.raises(ConfigError) as refused:
        load_project()
    config.write_text(str(refused.value).split("nothing moves in S3 or MLflow):\n", 1)[1])
    # Every prefix, the watcher's records and the MLflow names stay where they were.
    assert load_settings("churn").model_dump() == expected.model_dump()


def test_an_old_environment_variable_is_refused_naming_the_new_one(monkeypatch):
    monkeypatch.setenv("LANDFALL_DEPLOY__MIN_SCORE", "0.8")
    with pytest.raises(
        ConfigError, match=r"\$LANDFALL_DEPLOY__MIN_SCORE is now \$LANDFALL_PIPELINES__CHURN__DEPLOY"
    ):
        load_project()


def test_landfall_check_prints_the_verdict_pipeline_by_pipeline(tmp_path, monkeypatch):
    good = CliRunner().invoke(main, ["check"])
    assert good.exit_code == 0, good.output
    assert (
        "churn: ok (lands in s3://landfall-datasets/daily/, registered model landfall-churn)" in good.output
    )
    write_config(tmp_path, monkeypatch, pipeline_block("churn") + more_pipeline("bad", training="epochs: 3"))
    bad = CliRunner().invoke(main, ["check"])
    assert bad.exit_code == 1
    assert "churn: ok" in bad.output
    assert "bad: invalid" in bad.output and "pipelines.bad.training.epochs: unknown key" in bad.output


def test_with_several_pipelines_rollback_must_be_told_which_and_a_wrong_name_is_refused(
    tmp_path, monkeypatch
):
    write_config(tmp_path, monkeypatch, pipeline_block("churn") + more_pipeline("meters"))
    refused = CliRunner().invoke(main, ["rollback", "--reason", "bad model"])
    assert refused.exit_code == 2
    assert "name the pipeline with --pipeline NAME: the pipelines are churn, meters" in refused.output
    wrong = CliRunner().invoke(main, ["land", "--date", "2026-11-20", "--pipeline", "meter"])
    assert wrong.exit_code == 2 and "no pipeline 'meter'; the pipelines are churn, meters" in wrong.output


def test_a_command_that_may_choose_says_which_pipeline_it_chose(tmp_path, monkeypatch):
    from landfall.cli import _settings

    write_config(tmp_path, monkeypatch, pipeline_block("churn") + more_pipeline("meters"))
    runner = CliRunner()
    with runner.isolation() as (_out, err, *_):
        assert _settings().pipeline == "churn"
        assert _settings("meters").pipeline == "meters"
    assert "pipeline churn (of churn, meters; --pipeline NAME for another)" in err.getvalue().decode()
