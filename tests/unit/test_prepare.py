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
