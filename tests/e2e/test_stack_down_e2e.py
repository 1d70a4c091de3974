"""Runs last (file order): `landfall down` leaves no process of the stack behind, supervisor included."""

from __future__ import annotations

import psutil
import pytest

pytestmark = pytest.mark.stack


def test_down_leaves_no_process_behind(stack):
    """Stops the stack and looks for any survivor of every component's process tree."""
    tree = stack.process_tree()
    names = {status.name for status in stack.status() if status.running}
    assert names == set(stack.components), f"not running before down: {set(stack.components) - names}"
    assert len(tree) > len(stack.components)  # LocalExecutor workers, uvicorn children ...
    supervisord = int(stack.supervisor.pidfile.read_text())
    stack.down()
    survivors = [p for p in tree if p.is_running() and p.status() != psutil.STATUS_ZOMBIE]
    assert survivors == [], [(p.pid, p.name()) for p in survivors]
    assert not psutil.pid_exists(supervisord) or psutil.Process(supervisord).status() == psutil.STATUS_ZOMBIE
    assert not stack.supervisor.running()
