"""A saturated server, for real: one app process allowed one page run at a time (APP_MAX_CONCURRENT_RUNS=1) and
six simulated students (scripts/student.py, real websockets) doing the same steps at the same moment.

Checked: the queued students are told the server is busy (the app's notice arrives in their view), every
interaction still completes, no one gets a traceback, and each student sees only its own prompt. The
"overloaded, try again" end of a long wait is tests/test_bounds.py::test_a_saturated_server_says_so_and_recovers.
About 15 s on 2 cores.
"""

from __future__ import annotations

import asyncio
import concurrent.futures

import pytest

from scripts.replicas import app_server
from scripts.student import Student, student_prompt, summarize

N = 6


def in_own_loop(make_coro) -> None:
    """asyncio.run in a thread of its own: a browser test earlier in the same pytest process leaves
    Playwright's event loop running on the main thread, where asyncio.run refuses to start."""
    with concurrent.futures.ThreadPoolExecutor(1) as ex:
        ex.submit(lambda: asyncio.run(make_coro())).result()


pytestmark = pytest.mark.slow


def test_a_saturated_server_queues_students_with_a_busy_notice(tmp_path):
    with app_server(tmp_path / "server.log", env={"APP_MAX_CONCURRENT_RUNS": "1", "APP_BUSY_TIMEOUT_S": "120"}) as srv:
        students = [Student(srv.url, i) for i in range(N)]

        async def together(step) -> None:
            await asyncio.gather(*(step(s) for s in students))

        async def scenario() -> None:
            await together(lambda s: s.open())
            await together(lambda s: s.type_prompt(student_prompt(s.i)))
            await together(lambda s: s.goto("logit_lens", "Layer by layer page"))
            await together(lambda s: s.goto("generation", "Generation page"))
            await asyncio.gather(*(s.close() for s in students))

        in_own_loop(scenario)
    s = summarize(students)
    assert s["ok"] == s["interactions"] == 4 * N, s["failures"]
    assert s["tracebacks"] == 0 and s["error_alerts"] == 0
    assert s["leaks"] == [], f"a student saw another's prompt: {s['leaks']}"
    assert s["busy_notices"] >= 1, "six pages at once through one slot, and no one was told to wait"
    assert s["overloaded_notices"] == 0
    gen = [it for st in students for it in st.log if it.kind == "Generation page"]
    assert all(it.own_marker for it in gen)
