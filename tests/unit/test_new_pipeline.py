"""`landfall new-pipeline` and `landfall land --file`: a pipeline from a sample of the user's own table,
with a schema a normal next day passes, a module that trains, and the user's file landed in its schema."""

from __future__ import annotations

import importlib.util
import io

import numpy as np
import pandas as pd
import pytest
import yaml
from click.testing import CliRunner

from config_files import listings_table, pipeline_block, write_config
from landfall.cli import main
from landfall.core.settings import load_settings
from landfall.ops.new_pipeline import CannotInfer, infer
from landfall.pipeline.features import split
from landfall.pipeline.user_files import UnreadableFile, conform, read_table
from landfall.pipeline.validation import validate_parquet


def _sample(rows: int = 400, seed: int = 0) -> pd.DataFrame:
    return listings_table(rows, seed)


def test_the_inferred_schema_fits_the_sample_and_a_normal_next_day():
    new = infer("listings", _sample(), "price")
    landing = new.block["landing"]
    columns = {spec["name"]: spec for spec in landing["columns"]}
    assert (new.task, landing["id_column"], landing["label"]) == ("regression", "listing_id", "price")
    assert columns["area_m2"] == {"name": "area_m2", "dtype": "float64", "min": 0}  # no upper bound
    assert columns["balance"] == {"name": "balance", "dtype": "float64", "nullable": True}  # has negatives
    assert columns["floor"]["dtype"] == "int64"  # whole numbers stored as floats
    assert columns["district"]["allowed"] == ["centre", "north", "south"]
    assert "min" not in columns["price"] and "min" not in columns["listing_id"]
    assert new.block["training"]["trainer"] == "python:listings:fit"
    from landfall.core.pipeline_settings import LandingSettings

    settings = LandingSettings.model_validate(landing)
    for seed in (0, 1):  # the sample itself, and another day of the same table with larger values
        day = _sample(seed=seed)
        day["area_m2"] *= 1 + seed
        body = io.BytesIO()
        conform(day, settings).to_parquet(body, index=False)
        report = validate_parquet(io.BytesIO(body.getvalue()), len(body.getvalue()), settings)
        assert report.ok, report.problems


@pytest.mark.parametrize(
    ("label", "values", "task"),
    [
        ("kind", ["a", "b"], "binary"),
        ("kind", ["a", "b", "c"], "multiclass"),
        ("kind", [0, 1, 2, 3], "multiclass"),
    ],
)
def test_the_task_follows_the_labels_values(label, values, task):
    frame = _sample().assign(kind=lambda f: np.resize(values, len(f)))
    assert infer("p", frame.drop(columns=["price"]), label).task == task


@pytest.mark.parametrize(
    ("change", "why"),
    [
        (lambda f: f, "--label 'nope' is not a column"),
        (lambda f: f.assign(listing_id=1), "no column of the sample is unique"),
        (lambda f: f.assign(note=[f"text {i}" for i in range(len(f))]), r"'note' has 400 distinct texts"),
        (lambda f: f.head(5), "the sample has 5 rows"),
    ],
)
def test_a_sample_that_says_too_little_is_refused_naming_the_fix(change, why):
    frame = change(_sample())
    label = "nope" if "nope" in why else "price"
    if "unique" in why:
        frame = frame.assign(area_m2=1.0, balance=1.0, floor=1.0, price=1.0)
    with pytest.raises(CannotInfer, match=why):
        infer("p", frame, label)


def test_new_pipeline_adds_a_loadable_pipeline_and_a_module_whose_fit_trains(tmp_path, monkeypatch):
    config = write_config(tmp_path, monkeypatch, "# my project\n" + pipeline_block("churn"))
    sample = tmp_path / "listings.csv"
    _sample().to_csv(sample, index=False)
    result = CliRunner().invoke(
        main, ["new-pipeline", "listings", "--sample", str(sample), "--label", "price", "--code-path", "code"]
    )
    assert result.exit_code == 0, result.output
    assert "landfall land --pipeline listings --file" in result.output
    assert config.read_text().startswith("# my project\n")  # the file's own text is kept
    settings = load_settings("listings")
    assert (settings.training.task, settings.code_root) == ("regression", tmp_path / "code")

    spec = importlib.util.spec_from_file_location("listings_module", tmp_path / "code" / "listings.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    frame = conform(read_table(sample), settings.landing)
    parts = split(frame, settings.landing, 0.2, 0.2, task="regression")
    model = module.fit(parts["train"], parts["validation"], {"learning_rate": 0.1})
    test = parts["test"]
    r2 = model.score(test.drop(columns=["price"]), test["price"])
    assert r2 > 0.8, r2

    again = CliRunner().invoke(
        main, ["new-pipeline", "listings", "--sample", str(sample), "--label", "price"]
    )
    assert again.exit_code != 0 and "already has a pipeline 'listings'" in again.output


def test_a_name_that_is_already_a_module_is_refused(tmp_path, monkeypatch):
    write_config(tmp_path, monkeypatch, pipeline_block("churn"))
    sample = tmp_path / "calendar.csv"
    _sample().to_csv(sample, index=False)
    result = CliRunner().invoke(
        main, ["new-pipeline", "calendar", "--sample", str(sample), "--label", "price"]
    )
    assert result.exit_code != 0 and "already an importable module" in result.output


def test_a_pipeline_that_would_not_load_changes_nothing(tmp_path, monkeypatch):
    original = pipeline_block("churn", storage="landing_prefix: listings/landing")  # the prefix it would get
    config = write_config(tmp_path, monkeypatch, original)
    sample = tmp_path / "listings.parquet"
    _sample().to_parquet(sample)
    result = CliRunner().invoke(
        main, ["new-pipeline", "listings", "--sample", str(sample), "--label", "price", "--code-path", "code"]
    )
    assert result.exit_code != 0 and "nothing was changed" in result.output and "overlaps" in result.output
    assert config.read_text() == original and not (tmp_path / "code" / "listings.py").exists()


def test_a_users_file_is_typed_by_the_schema_and_a_missing_column_is_named(tmp_path):
    from landfall.core.pipeline_settings import LandingSettings

    landing = LandingSettings.model_validate(yaml.safe_load(_schema_yaml()))
    path = tmp_path / "day.csv"
    pd.DataFrame(
        {"listing_id": [1, 2], "floor": [3.0, 4.0], "price": [10, 20.5], "extra": ["x", "y"]}
    ).to_csv(path, index=False)
    frame = conform(read_table(path), landing)
    assert list(frame.columns) == ["listing_id", "floor", "price"]
    assert [str(t) for t in frame.dtypes] == ["int64", "int64", "float64"]
    with pytest.raises(UnreadableFile, match=r"lacks the column\(s\) \['floor'\]"):
        conform(read_table(path).drop(columns=["floor"]), landing)
    with pytest.raises(UnreadableFile, match=r"a \.parquet or \.csv file"):
        read_table(tmp_path / "day.xlsx")


def _schema_yaml() -> str:
    return """
id_column: listing_id
label: price
columns:
  - {name: listing_id, dtype: int64}
  - {name: floor, dtype: int64}
  - {name: price, dtype: float64}
"""
