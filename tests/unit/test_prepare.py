"""Streaming preprocessing (`landfall.pipeline.prepare`): the same splits as the whole-frame path, whatever
the batch size or the number of files, and a canary equal to the head of the test split."""

from __future__ import annotations

import pandas as pd
import pytest

from landfall.pipeline.canary import sample
from landfall.pipeline.datagen import make_batch
from landfall.pipeline.features import split
from landfall.pipeline.prepare import prepare


@pytest.mark.parametrize(("files", "batch_rows"), [(1, 1_000_000), (3, 257)])
def test_streamed_splits_equal_the_whole_frame_split(settings, tmp_path, files, batch_rows):
    frames = [make_batch(900, seed=10 + index) for index in range(files)]
    paths = []
    for index, frame in enumerate(frames):
        paths.append(tmp_path / f"raw-{index}.parquet")
        frame.to_parquet(paths[-1], index=False, row_group_size=300)
    out = tmp_path / "out"
    out.mkdir()
    training = settings.training
    prepared = prepare(
        paths, settings.landing, training.validation_fraction, training.test_fraction, 50, out, batch_rows
    )

    whole = pd.concat(frames, ignore_index=True)
    expected = split(whole, settings.landing, training.validation_fraction, training.test_fraction)
    for name, frame in expected.items():
        written = pd.read_parquet(prepared.files[name])
        pd.testing.assert_frame_equal(written, frame, check_dtype=False)
        assert prepared.rows[name] == len(frame) > 0
    canary = pd.read_parquet(prepared.files["canary"])
    expected_canary = sample(
        whole, settings.landing, training.validation_fraction, training.test_fraction, 50
    )
    pd.testing.assert_frame_equal(canary, expected_canary, check_dtype=False)
    assert prepared.features == [c for c in expected["train"].columns if c != settings.landing.label]


def test_preparing_a_day_takes_its_drift_statistics_and_a_failure_there_prepares_it_all_the_same(
    settings, tmp_path, monkeypatch
):
    from landfall.pipeline import drift

    frame = make_batch(1200, seed=3)
    path = tmp_path / "raw.parquet"
    frame.to_parquet(path, index=False)
    training = settings.training

    def prepared_into(name):
        out = tmp_path / name
        out.mkdir()
        return prepare(
            [path], settings.landing, training.validation_fraction, training.test_fraction, 10, out, 500
        )

    taken = prepared_into("ok").statistics
    whole = drift.summarise([frame], settings.landing, "binary")  # the same whatever the batches
    for name, body in whole["features"].items():
        got = taken["features"][name]
        if body["kind"] == "numeric":
            assert sorted(got["sample"]) == sorted(body["sample"]) and got["mean"] == pytest.approx(
                body["mean"]
            )
        else:
            assert got["counts"] == body["counts"]
    assert taken["label"] == whole["label"]
    assert "customer_id" not in taken["features"] and taken["features"]["usage_hours"]["rows"] == 1200

    def broken(self, batch):
        raise KeyError("usage_hours")

    monkeypatch.setattr(drift.Summariser, "add", broken)
    prepared = prepared_into("broken")
    assert prepared.statistics == {"error": "KeyError: 'usage_hours'"}
    assert sum(prepared.rows.values()) == 1200
