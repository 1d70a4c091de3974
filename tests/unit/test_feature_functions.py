"""A pipeline's own features function: called the same way by preprocessing and the scoring service,
checked on every call, fingerprinted by its source, and a window never mixes days it did not build."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import yaml

from config_files import TIERS_LANDING, user_module
from landfall.core.pipeline_settings import LandingSettings
from landfall.pipeline.features import build_features, feature_builder, fingerprint
from landfall.pipeline.rollup import features_by
from landfall.pipeline.schema_data import make_rows
from landfall.pipeline.user_code import UserCodeError
from landfall.pipeline.window import MixedFeatures, training_window

TIERS = LandingSettings.model_validate(yaml.safe_load(TIERS_LANDING))


def _module(tmp_path, source: str) -> str:
    return user_module(tmp_path, source, "tiers_features")


GOOD = """
import numpy as np
import pandas as pd


def features(rows):
    assert "tier" not in rows  # the label is never given to a features function
    out = pd.DataFrame({"log_usage": np.log1p(rows["monthly_usage"]), "seats": rows["seats"]})
    for region in ("emea", "amer", "apac"):
        out[f"in_{region}"] = rows["region"] == region
    return out.reset_index(drop=True)
"""


def test_the_pipelines_function_builds_numbers_one_row_per_row_without_the_label(tmp_path):
    frame = make_rows(TIERS, 50, seed=1, task="multiclass").iloc[10:]  # an index not starting at 0
    module = _module(tmp_path, GOOD)
    built = feature_builder(f"python:{module}:features", TIERS, tmp_path)(frame)
    assert list(built.columns) == ["log_usage", "seats", "in_emea", "in_amer", "in_apac"]
    assert (built.dtypes == "float64").all() and built.index.equals(frame.index)
    assert np.allclose(built["log_usage"], np.log1p(frame["monthly_usage"]))


def test_the_default_is_the_schemas_features():
    frame = make_rows(TIERS, 20, seed=2, task="multiclass")
    pd.testing.assert_frame_equal(feature_builder("schema", TIERS, None)(frame), build_features(frame, TIERS))
    assert fingerprint("schema", None) == "schema"


@pytest.mark.parametrize(
    ("body", "why"),
    [
        ("    return rows.head(3)\n", r"returned DataFrame of 3 rows for 20"),
        ("    return rows[['region']]\n", r"not numbers: \['region'\]"),
        ("    return rows['seats']\n", r"returned Series"),
        ("    raise ValueError('no seats today')\n", r"raised ValueError: no seats today"),
    ],
)
def test_a_function_that_answers_wrongly_is_named_with_what_it_should_return(tmp_path, body, why):
    module = _module(tmp_path, "def features(rows):\n" + body)
    build = feature_builder(f"python:{module}:features", TIERS, tmp_path)
    with pytest.raises(UserCodeError, match=why):
        build(make_rows(TIERS, 20, seed=3, task="multiclass"))


def test_rows_a_function_reorders_stay_with_their_own_labels(tmp_path):
    frame = make_rows(TIERS, 30, seed=4, task="multiclass")
    sorting = _module(tmp_path, "def features(rows):\n    return rows[['seats']].sort_values('seats')\n")
    built = feature_builder(f"python:{sorting}:features", TIERS, tmp_path)(frame)
    assert (
        built.index.equals(frame.index) and built["seats"].tolist() == frame["seats"].astype(float).tolist()
    )
    foreign = _module(
        tmp_path, "def features(rows):\n    return rows[['seats']].set_index(rows['account_id'])\n"
    )
    with pytest.raises(UserCodeError, match="an index of its own"):
        feature_builder(f"python:{foreign}:features", TIERS, tmp_path)(frame)


def test_the_fingerprint_follows_the_functions_source(tmp_path):
    first = _module(tmp_path, GOOD)
    changed = _module(tmp_path, GOOD.replace("np.log1p", "np.sqrt"))
    same = _module(tmp_path, GOOD)
    spec = "python:{}:features"
    assert fingerprint(spec.format(first), tmp_path) != fingerprint(spec.format(changed), tmp_path)
    assert (
        fingerprint(spec.format(first), tmp_path).split("@")[1]
        == fingerprint(spec.format(same), tmp_path).split("@")[1]
    )


def _head(day: str, by: str | None) -> dict:
    head = {
        "partition": day,
        "version": f"v-{day}",
        **{f"{s}_uri": f"s3://b/{day}/{s}" for s in ("train", "validation", "test")},
    }
    return head | ({"features_by": by} if by else {})


def test_a_window_refuses_days_prepared_by_another_function_naming_them():
    own = _head("2026-03-05", "python:m:f@aaaa")
    heads = {"2026-03-03": _head("2026-03-03", "python:m:f@aaaa"), "2026-03-04": _head("2026-03-04", None)}
    with pytest.raises(MixedFeatures, match=r"2026-03-04 \(schema\)") as refused:
        training_window(own, heads, 1000)
    assert "2026-03-03" not in str(refused.value) and "backfill" in str(refused.value)
    heads["2026-03-04"] = _head("2026-03-04", "python:m:f@aaaa")
    assert training_window(own, heads, 1000)["window_partitions"] == [
        "2026-03-03",
        "2026-03-04",
        "2026-03-05",
    ]


def test_a_day_rolled_up_from_hours_of_two_functions_is_mixed_and_never_trains():
    assert features_by({"schema"}) == "schema"
    mixed = features_by({"python:m:f@b", "schema"})
    assert mixed == "mixed: python:m:f@b, schema"
    with pytest.raises(MixedFeatures, match=r"2026-03-05 was rolled up from hours prepared by different"):
        training_window(_head("2026-03-05", mixed), {}, 1000)
