from __future__ import annotations

from datetime import date

import pytest

from landfall.pipeline.keys import (
    RejectedKey,
    folder_manifest,
    key_digest,
    outcome_record,
    parse_landing_key,
    quarantine_folder,
    raw_key,
)


@pytest.fixture
def storage(settings):
    return settings.storage


def test_a_daily_key_gives_its_partition_date(storage):
    landed = parse_landing_key("daily/2024-02-29/features.parquet", storage)
    assert landed.partition_date == date(2024, 2, 29)
    assert landed.partition == "2024-02-29"


@pytest.mark.parametrize(
    ("key", "reason"),
    [
        ("daily/../2024-01-01/features.parquet", "bad_key"),
        ("daily/2024-01-01/../features.parquet", "bad_key"),
        ("daily//features.parquet", "bad_key"),
        ("daily/2024-01-01/extra/features.parquet", "bad_key"),
        ("elsewhere/2024-01-01/features.parquet", "bad_key"),
        ("daily/2024-01-01/features.csv", "bad_suffix"),
        ("daily/2024-01-01/features.parquet.exe", "bad_suffix"),
        ("daily/yesterday/features.parquet", "bad_partition"),
        ("daily/2024-13-01/features.parquet", "bad_partition"),
        ("daily/2023-02-29/features.parquet", "bad_partition"),
        ("daily/２０２４-01-01/features.parquet", "bad_partition"),  # noqa: RUF001 - full-width digits
        ("daily/2024-01-01 /features.parquet", "bad_partition"),
    ],
)
def test_hostile_and_malformed_keys_are_rejected_with_a_reason(storage, key, reason):
    with pytest.raises(RejectedKey) as error:
        parse_landing_key(key, storage)
    assert error.value.reason == reason


def test_derived_keys_never_contain_the_hostile_key(storage):
    hostile = "daily/../../etc/pass wd/ünïcode"
    folder = quarantine_folder(storage, hostile, "abc", None)
    assert folder.startswith(f"{storage.quarantine_prefix}/unknown/")
    assert ".." not in folder and " " not in folder
    assert folder_manifest(storage.ledger_prefix, "../pass wd").endswith(
        f"/x-{key_digest('../pass wd')}.json"
    )
    assert folder_manifest(storage.ledger_prefix, "2026-11-20").endswith("/folders/2026-11-20.json")
    assert folder_manifest(storage.ledger_prefix, "").endswith("/folders/_root.json")
    assert outcome_record(storage.ledger_prefix, hostile, "1-abc").endswith(
        f"/{key_digest(hostile)}/1-abc.json"
    )
    assert quarantine_folder(storage, hostile, "abc", "../x").startswith(
        f"{storage.quarantine_prefix}/unknown/"
    )


def test_each_landing_version_has_its_own_raw_folder_so_two_runs_never_mix_bytes(storage):
    first = raw_key(storage, "2026-11-20", "1764000000-" + "a" * 32)
    second = raw_key(storage, "2026-11-20", "1764000060-" + "b" * 32)
    assert first != second
    assert first.startswith(f"{storage.raw_prefix}/date=2026-11-20/") and first.endswith("/data.parquet")


@pytest.mark.parametrize(
    ("name", "kind"),
    [
        ("features.parquet", "file"),
        ("_SUCCESS", "marker"),
        ("part-00000.parquet", "part"),
        ("part-x.parquet", "part"),
    ],
)
def test_the_three_landing_shapes_are_told_apart_by_name(storage, name, kind):
    landed = parse_landing_key(f"daily/2024-02-29/{name}", storage)
    assert (landed.kind, landed.partition, landed.folder) == (kind, "2024-02-29", "daily/2024-02-29/")


@pytest.mark.parametrize("name", ["_SUCCESS.txt", "part-1.csv", "_success", "data.parquet"])
def test_other_names_in_a_date_folder_are_refused_naming_both_shapes(storage, name):
    with pytest.raises(RejectedKey) as error:
        parse_landing_key(f"daily/2024-01-01/{name}", storage)
    assert error.value.reason == "bad_suffix" and "_SUCCESS" in error.value.detail


def test_an_hour_folder_gives_an_hourly_partition(storage):
    landed = parse_landing_key("daily/2024-02-29/07/_SUCCESS", storage)
    assert (landed.partition, landed.kind, landed.folder) == (
        "2024-02-29T07",
        "marker",
        "daily/2024-02-29/07/",
    )
    assert parse_landing_key("daily/2024-02-29/23/features.parquet", storage).partition == "2024-02-29T23"


@pytest.mark.parametrize("hour", ["24", "7", "aa", "007"])
def test_an_hour_folder_must_be_00_to_23(storage, hour):
    with pytest.raises(RejectedKey) as error:
        parse_landing_key(f"daily/2024-01-01/{hour}/features.parquet", storage)
    assert error.value.reason == "bad_key"


@pytest.mark.parametrize(
    "key",
    [
        "daily/2026-01-01/07\n/features.parquet",
        "daily/2026-01-01\n/features.parquet",
        "daily/2026-01-01/07\n/_SUCCESS",
    ],
)
def test_a_trailing_newline_is_no_date_or_hour(storage, key):
    with pytest.raises(RejectedKey):
        parse_landing_key(key, storage)
