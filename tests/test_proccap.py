"""The process cap's supervisor, driven without a run (the fork bombs of test_hostile drive it with one)."""

from __future__ import annotations

import os

from unlearning_challenge.runner import proccap
from unlearning_challenge.runner.proccap import ForkSupervisor


def test_the_supervisor_counts_again_only_when_its_bound_reaches_the_limit(monkeypatch):
    """The last count plus the processes let through since bounds the live ones from above: below the
    limit a request needs no walk of /proc; at the limit a new count decides, and a full count is reused."""
    monkeypatch.setattr(proccap, "_FULL_RECOUNT_SECONDS", 60.0)  # however slow this machine is
    live = [3]
    read, write = os.pipe()  # a listener that never has a request: only the decisions are driven here
    supervisor = ForkSupervisor(read, count=lambda: live[0], limit=8)
    try:
        assert [supervisor._decide() for _ in range(5)] == [True] * 5  # 3 alive + 5 let through = 8
        assert supervisor.counts == 1
        live[0] = 6  # two of them have exited: a new count lets two more through
        assert [supervisor._decide() for _ in range(2)] == [True, True]
        assert supervisor.counts == 2
        live[0] = 8  # and they are alive: the next request counts again and is refused
        assert not supervisor._decide()
        assert supervisor.counts == 3
        live[0] = 0
        assert not supervisor._decide()  # a full count holds for a moment: no walk per refused request
        assert supervisor.counts == 3
    finally:
        supervisor.stop()
        os.close(write)
