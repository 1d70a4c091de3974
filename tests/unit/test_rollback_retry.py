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


def _three_champions(settings, client, seeds=(21, 22, 23)) -> list[str]:
    """v1, then v2 promoted over it, then v3 over v2 (and so on, one per seed); returns the run ids."""
    runs = [logged_trial(settings, EXPERIMENT, seed) for seed in seeds]
    for index, run_id in enumerate(runs):
        promoted = registry.promote(
            NAME, run_id, f"runs:/{run_id}/model", str(index) if index else None, f"deploy-{index}", client
        )
        assert promoted.moved
    return runs


class _FailsOnce:
    """The real client, except that one registry write fails once the way an unavailable MLflow does:
    the alias move (`tag` None) or the write with an argument that contains `tag` (a tag's key, or a
    piece of its value). `after`: the write is made, then its answer is lost (it still raises)."""

    def __init__(self, client, method: str, tag: str | None = None, after: bool = False, times: int = 1):
        self.client, self.method, self.tag, self.after, self.left = client, method, tag, after, times

    def __getattr__(self, name):
        real = getattr(self.client, name)
        if name != self.method:
            return real

        def write(*args):
            if self.left and (self.tag is None or any(self.tag in str(arg) for arg in args)):
                self.left -= 1
                if self.after:
                    real(*args)
                raise MlflowException("503 Service Unavailable", error_code="TEMPORARILY_UNAVAILABLE")
            return real(*args)

        return write


def _four_champions(settings, client) -> None:
    """v1..v4 promoted in turn: champion v4, each recording the one before as its previous champion."""
    _three_champions(settings, client, seeds=(31, 32, 33, 34))
    assert registry.champion_version(NAME, client) == "4"


def _abandoned(client, by: str) -> None:
    """A request (the default one step back) whose alias move fails on every try of its task."""
    always = _FailsOnce(client, "set_registered_model_alias", times=3)
    for _ in range(3):
        with pytest.raises(MlflowException, match="503"):
            registry.rollback(NAME, None, "bad v4", by, always)


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
        ("set_registered_model_tag", '"state": "recorded"'),  # the request's record, before the move
        ("set_registered_model_alias", None),
        ("set_model_version_tag", registry.ROLLED_BACK_AT_TAG),  # the first tag on the version left
        ("set_model_version_tag", "landfall.rolled_back_to"),  # among the tags on the version left
        ("set_model_version_tag", registry.RESTORED_BY_TAG),  # among the tags on the version restored
        ("set_registered_model_tag", '"state": "moved"'),  # the record says the request is done
    ],
)
def test_a_retry_completes_a_rollback_that_failed_at_any_write(local_mlflow, settings, method, tag):
    _three_champions(settings, local_mlflow)
    with pytest.raises(MlflowException, match="503"):
        registry.rollback(NAME, "1", "back to the first", BY, _FailsOnce(local_mlflow, method, tag))

    # The retry runs with the same request (`to_version` and all) and goes where the request said.
    retried = registry.rollback(NAME, "1", "back to the first", BY, local_mlflow)

    assert registry.champion_version(NAME, local_mlflow) == "1"
    assert (retried.version, retried.rolled_back_from, retried.moved) == ("1", "3", True)
    again = registry.rollback(NAME, "1", "back to the first", BY, local_mlflow)
    assert (again.version, again.rolled_back_from, again.result) == ("1", "3", "already_done")
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


def test_a_rollback_whose_alias_move_landed_but_whose_answer_was_lost_is_recorded_by_its_retry(
    local_mlflow, settings
):
    runs = _three_champions(settings, local_mlflow)
    lost = _FailsOnce(local_mlflow, "set_registered_model_alias", after=True)
    with pytest.raises(MlflowException, match="503"):
        registry.rollback(NAME, None, "bad v3", BY, lost)
    assert registry.champion_version(NAME, local_mlflow) == "2"  # moved; no tag says so yet
    assert registry.ROLLED_BACK_AT_TAG not in local_mlflow.get_model_version(NAME, "3").tags

    retried = registry.rollback(NAME, None, "bad v3", BY, local_mlflow)

    # The DAG run's move: reported as its rollback, recorded on both versions, and not a second step.
    assert (retried.version, retried.run_id, retried.rolled_back_from, retried.moved) == (
        "2",
        runs[1],
        "3",
        True,
    )
    assert registry.champion_version(NAME, local_mlflow) == "2"
    assert local_mlflow.get_model_version(NAME, "3").tags[registry.ROLLED_BACK_BY_TAG] == BY
    assert local_mlflow.get_model_version(NAME, "2").tags[registry.RESTORED_FROM_TAG] == "3"


def test_a_request_whose_move_landed_is_recorded_as_done_by_the_next_request_before_its_own_move(
    local_mlflow, settings
):
    _three_champions(settings, local_mlflow)
    with pytest.raises(MlflowException, match="503"):  # moved v3 -> v2, then failed at the tags
        registry.rollback(
            NAME,
            None,
            "bad v3",
            BY,
            _FailsOnce(local_mlflow, "set_model_version_tag", registry.ROLLED_BACK_AT_TAG),
        )

    further = registry.rollback(NAME, None, "v2 too", "ben (run r2)", local_mlflow)  # before BY's retry

    assert (further.version, further.rolled_back_from, further.moved) == ("1", "2", True)
    assert local_mlflow.get_model_version(NAME, "3").tags[registry.ROLLED_BACK_BY_TAG] == BY  # v3: guarded
    late = registry.rollback(NAME, None, "bad v3", BY, local_mlflow)
    assert (late.version, late.rolled_back_from, late.result) == ("1", "3", "already_done")
    assert registry.champion_version(NAME, local_mlflow) == "1"


def test_a_request_abandoned_before_its_alias_move_marks_no_version_rolled_back(local_mlflow, settings):
    _four_champions(settings, local_mlflow)
    _abandoned(local_mlflow, "ana (run r1)")

    assert registry.champion_version(NAME, local_mlflow) == "4"
    left, restored = (local_mlflow.get_model_version(NAME, v).tags for v in ("4", "3"))
    # promote() never crowns again a version that carries `landfall.rolled_back_at`: v4 was never left.
    assert not [key for key in left if key.startswith("landfall.rolled_back")]
    assert not [key for key in restored if key.startswith("landfall.restored")]


def test_a_request_abandoned_before_its_move_then_overtaken_by_another_moves_nothing_when_cleared(
    local_mlflow, settings
):
    """R1 fails at its alias move on every try; R2 rolls back v4 -> v3; R1 is cleared afterwards."""
    _four_champions(settings, local_mlflow)
    _abandoned(local_mlflow, "ana (run r1)")
    assert registry.rollback(NAME, None, "bad v4", "ben (run r2)", local_mlflow).version == "3"

    cleared = registry.rollback(NAME, None, "bad v4", "ana (run r1)", local_mlflow)

    assert registry.champion_version(NAME, local_mlflow) == "3"  # not v2: R1 does not go a second step
    assert (cleared.version, cleared.rolled_back_from, cleared.result) == ("3", "4", "overtaken")
    assert not cleared.moved
    # Who rolled v4 back is still R2, not the request that never moved anything.
    assert local_mlflow.get_model_version(NAME, "4").tags[registry.ROLLED_BACK_BY_TAG] == "ben (run r2)"


def test_a_late_retry_after_a_restore_and_another_rollback_from_the_same_version_moves_nothing(
    local_mlflow, settings
):
    """R1 moves v4 -> v3; R2 restores v4 on purpose; R3 moves v4 -> v3 again; R1 is cleared late."""
    _four_champions(settings, local_mlflow)
    assert registry.rollback(NAME, None, "bad v4", "ana (run r1)", local_mlflow).version == "3"
    assert registry.rollback(NAME, "4", "v4 was fine", "ben (run r2)", local_mlflow).version == "4"
    assert registry.rollback(NAME, None, "bad v4 after all", "cy (run r3)", local_mlflow).version == "3"

    late = registry.rollback(NAME, None, "bad v4", "ana (run r1)", local_mlflow)

    assert registry.champion_version(NAME, local_mlflow) == "3"  # not v2
    assert (late.version, late.rolled_back_from, late.result, late.moved) == ("3", "4", "already_done", False)


def test_an_abandoned_request_does_not_undo_a_restore_made_after_the_rollback_that_overtook_it(
    local_mlflow, settings
):
    """R1 fails at its alias move; R2 moves v4 -> v3; R3 restores v4 on purpose: the champion is R1's
    `from` again, yet R1, cleared now, was overtaken and moves nothing."""
    _four_champions(settings, local_mlflow)
    _abandoned(local_mlflow, "ana (run r1)")
    assert registry.rollback(NAME, None, "bad v4", "ben (run r2)", local_mlflow).version == "3"
    assert registry.rollback(NAME, "4", "v4 was fine", "cy (run r3)", local_mlflow).version == "4"

    cleared = registry.rollback(NAME, None, "bad v4", "ana (run r1)", local_mlflow)

    assert registry.champion_version(NAME, local_mlflow) == "4"
    assert (cleared.version, cleared.rolled_back_from, cleared.result) == ("4", "4", "overtaken")


def test_the_rollback_report_of_a_call_that_moved_nothing_says_so(local_mlflow, settings, monkeypatch):
    from landfall.airflow.tasks import deploy
    from landfall.pipeline.alerts import Alerts

    sent = []
    monkeypatch.setattr(Alerts, "send", lambda self, kind, text, details=None: sent.append((kind, text)))
    _four_champions(settings, local_mlflow)

    def report(by: str) -> dict:
        rolled = registry.rollback(NAME, None, "bad v4", by, local_mlflow)
        return deploy.report_rollback("churn", {**rolled.as_dict(), "model_name": NAME}, None)

    assert report("ana (run r1)")["outcome"] == "rolled_back"
    assert sent[-1][0] == "rolled_back" and "to v3 (from v4)" in sent[-1][1]
    again = report("ana (run r1)")
    assert again["outcome"] == "nothing_moved"
    assert sent[-1] == (
        "rollback_nothing_moved",
        "nothing moved: request ana (run r1) was already done (champion v3)",
    )
    assert "Rolled back" not in again["message"]
    overtaken = registry.Rollback("3", "run", "4", "bad v4", "ben (run r2)", "overtaken").as_dict()
    assert (
        deploy.report_rollback("churn", {**overtaken, "model_name": NAME}, None)["outcome"] == "nothing_moved"
    )
    assert sent[-1][1].startswith("nothing moved: request ben (run r2) was overtaken")
    assert "does not roll back v4 (champion v3)" in sent[-1][1]
