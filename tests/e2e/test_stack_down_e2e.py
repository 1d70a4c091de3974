"""Runs last (file order): `landfall down` leaves no process of the stack behind."""

from __future__ import annotations

import psutil
import pytest

pytestmark = pytest.mark.stack


def test_down_leaves_no_process_behind(stack):
    """Stops the stack and looks for any survivor of every component's process tree."""
    from landfall.ops.stack import process
    from landfall.ops.stack.launcher import COMPONENTS

    tree = []
    for name in COMPONENTS:
        record = process.read_record(stack.state.pids, name)
        root = record.process() if record else None
        assert root is not None, f"{name} is not running before down"
        tree += [root, *root.children(recursive=True)]
    assert len(tree) > len(COMPONENTS)  # LocalExecutor workers, gunicorn/uvicorn children ...
    stack.down()
    survivors = [p for p in tree if p.is_running() and p.status() != psutil.STATUS_ZOMBIE]
    assert survivors == [], [(p.pid, p.name()) for p in survivors]
    assert not any(process.group_members(p.pid) for p in tree)
    assert not list(stack.state.pids.glob("*.json"))
