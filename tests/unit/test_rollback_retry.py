"""A rollback is done only when the champion alias has moved: MLflow failing between the rollback's tag
writes and its alias move (a 503, a restart, a killed worker) leaves a request that its retry completes,
and a retry of a completed request never rolls back a second step. Against a real MLflow store (SQLite)."""

from __future__ import annotations

import pytest
from mlflow.exceptions import MlflowException

from journeys import logged_trial
from landfall.pipeline import registry

NAME = "landfall-churn-rollback-test"
EXPERIMENT = "landfall-rollback-test"
BY = "ana (run manual__2026-05-09T10:00:00+00:00)"


def _three_champions(settings, client) -> list[str]:
    """v1, then v2 promoted over it, then v3 over v2; returns the three run ids."""
    runs = [logged_trial(settings, EXPERIMENT, seed) for seed in (21, 22, 23)]
    for index, run_id in enumerate(runs):
        promoted = registry.promote(
            NAME, run_id, f"runs:/{run_id}/model", str(index) if index else None, f"deploy-{index}", client
        )
        assert promoted.moved
    return runs


class _FailsOnce:
    """The real client, except that one registry write fails once the way an unavailable MLflow does:
    the alias move (`tag` None) or the version tag `tag`."""

    def __init__(self, client, method: str, tag: str | None = None):
        self.client, self.method, self.tag, self.failed = client, method, tag, False

    def __getattr__(self, name):
        real = getattr(self.client, name)
        if name != self.method:
            return real

        def write(*args):
            if not self.failed and (self.tag is None or self.tag in args):
                self.failed = True
                raise MlflowException("503 Service Unavailable", error_code="TEMPORARILY_UNAVAILABLE")
            return real(*args)

        return write


def test_a_rollback_whose_alias_move_failed_is_completed_by_its_retry(local_mlflow, settings):
    runs = _three_champions(settings, local_mlflow)
    flaky = _FailsOnce(local_mlflow, "set_registered_model_alias")
    with pytest.raises(MlflowException, match="503"):
        registry.rollback(NAME, None, "v3 mislabels annual contracts", BY, flaky)
    assert registry.champion_version(NAME, local_mlflow) == "3"  # every tag written, the alias not moved

    retried = registry.rollback(NAME, None, "v3 mislabels annual contracts", BY, local_mlflow)

    assert registry.champion_version(NAME, local_mlflow) == "2"
    assert (retried.version, retried.run_id, retried.rolled_back_from) == ("2", runs[1], "3")


@pytest.mark.parametrize(
    ("method", "tag"),
    [
        ("set_model_version_tag", "landfall.rolled_back_to"),  # among the tags on the version left
        ("set_model_version_tag", registry.RESTORED_BY_TAG),  # among the tags on the version restored
        ("set_registered_model_alias", None),
    ],
)
def test_a_retry_completes_a_rollback_that_failed_at_any_write(local_mlflow, settings, method, tag):
    _three_champions(settings, local_mlflow)
    with pytest.raises(MlflowException, match="503"):
        registry.rollback(NAME, "1", "back to the first", BY, _FailsOnce(local_mlflow, method, tag))

    # The retry runs with the same request (`to_version` and all) and goes where the request said.
    retried = registry.rollback(NAME, "1", "back to the first", BY, local_mlflow)

    assert registry.champion_version(NAME, local_mlflow) == "1"
    assert (retried.version, retried.rolled_back_from) == ("1", "3")
    assert local_mlflow.get_model_version(NAME, "1").tags[registry.RESTORED_FROM_TAG] == "3"
    left = local_mlflow.get_model_version(NAME, "3").tags
    assert (left[registry.ROLLED_BACK_BY_TAG], left[registry.ROLLED_BACK_TO_TAG]) == (BY, "1")


def test_a_retry_after_the_rollback_completed_and_a_promotion_followed_rolls_back_nothing(
    local_mlflow, settings
):
    _three_champions(settings, local_mlflow)
    with pytest.raises(MlflowException, match="503"):
        registry.rollback(NAME, None, "bad v3", BY, _FailsOnce(local_mlflow, "set_registered_model_alias"))
    assert registry.rollback(NAME, None, "bad v3", BY, local_mlflow).version == "2"  # completed

    again = registry.rollback(NAME, None, "bad v3", BY, local_mlflow)  # a late retry of the same request
    assert (again.version, again.rolled_back_from) == ("2", "3")
    assert registry.champion_version(NAME, local_mlflow) == "2"

    fourth = logged_trial(settings, EXPERIMENT, 24)
    assert (
        registry.promote(NAME, fourth, f"runs:/{fourth}/model", "2", "deploy-3", local_mlflow).version == "4"
    )
    after_promotion = registry.rollback(NAME, None, "bad v3", BY, local_mlflow)
    assert (after_promotion.version, after_promotion.rolled_back_from) == ("4", "3")
    assert registry.champion_version(NAME, local_mlflow) == "4"


def test_a_late_retry_after_the_left_version_was_restored_on_purpose_rolls_back_nothing(
    local_mlflow, settings
):
    _three_champions(settings, local_mlflow)
    assert registry.rollback(NAME, None, "bad v3", BY, local_mlflow).version == "2"
    # An operator decides v3 was fine after all and restores it with `landfall rollback --to 3`.
    assert registry.rollback(NAME, "3", "v3 was fine", "ben (run r2)", local_mlflow).version == "3"

    late = registry.rollback(NAME, None, "bad v3", BY, local_mlflow)  # the first request's late retry

    assert registry.champion_version(NAME, local_mlflow) == "3"
    assert (late.version, late.rolled_back_from) == ("3", "3")
