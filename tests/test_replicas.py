"""Past one machine: two app replicas behind a real nginx (scripts/replicas.py), on loopback.

Sessions are driven through the proxy by simulated students (scripts/student.py: the browser's websocket
messages). Checked: each student's every request — the page, the websocket upgrade, a reconnect — reaches the
replica its affinity cookie names (the proxy's access log and its X-Replica header agree); both replicas serve;
every session works and sees only its own prompt; a dropped connection resumes the same session with its
generation steps; and, as a control, the same session id sent to the *other* replica gets a fresh session — what
affinity is for.

Needs nginx (`apt-get install nginx`; scripts/run_tests.sh installs it): without it these tests fail, never
skip. About 20–30 s on 2 cores: two servers start side by side.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import os
import re
import subprocess
import time
import urllib.request
from pathlib import Path

import pytest

from scripts.replicas import NGINX, ROUTE_COOKIE, cluster, nginx_conf
from scripts.student import Student, student_prompt

REPO = Path(__file__).resolve().parent.parent


def in_own_loop(make_coro) -> None:
    """asyncio.run in a thread of its own: a browser test earlier in the same pytest process leaves
    Playwright's event loop running on the main thread, where asyncio.run refuses to start."""
    with concurrent.futures.ThreadPoolExecutor(1) as ex:
        ex.submit(lambda: asyncio.run(make_coro())).result()


def require_nginx() -> None:
    if not os.path.exists(NGINX):
        pytest.fail(f"{NGINX} is missing: `apt-get install nginx` (scripts/run_tests.sh does), "
                    "or deselect with -k 'not replicas'")


def test_shipped_proxy_config_is_the_generated_one():
    """deploy/nginx.conf is `nginx_conf` for the compose file's two services, byte for byte (regenerate it with
    the command in its header rather than editing it by hand)."""
    shipped = (REPO / "deploy" / "nginx.conf").read_text()
    assert shipped == nginx_conf(["app1:8501", "app2:8501"], "8080", deploy=True)


def test_kubernetes_proxy_config_is_the_generated_one():
    """The ConfigMap in deploy/kubernetes.yaml holds `nginx_conf` for its StatefulSet's pods (app-0.app, …)."""
    text = (REPO / "deploy" / "kubernetes.yaml").read_text()
    n = int(re.search(r"^  replicas: (\d+)$", text, re.M).group(1))
    conf = nginx_conf([f"app-{k}.app:8501" for k in range(n)], "8080", deploy=True)
    assert "\n".join(("    " + line) if line else "" for line in conf.splitlines()) in text


def test_generated_config_passes_nginx_t(tmp_path):
    require_nginx()
    for k in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"):
        (tmp_path / f"tmp_{k}").mkdir()
    conf = tmp_path / "nginx.conf"
    conf.write_text(nginx_conf(["127.0.0.1:1", "127.0.0.1:2", "127.0.0.1:3"], "127.0.0.1:9", workdir=tmp_path))
    r = subprocess.run([NGINX, "-t", "-c", str(conf), "-p", str(tmp_path)], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr


def _route_cookie(url: str) -> str:
    """A fresh visitor's GET /: the route nginx assigned, from Set-Cookie."""
    with urllib.request.urlopen(url + "/", timeout=60) as r:
        r.read()
        for h in r.headers.get_all("Set-Cookie") or []:
            if h.startswith(ROUTE_COOKIE + "="):
                return h.split("=", 1)[1].split(";", 1)[0]
    raise AssertionError("the proxy set no route cookie")


def _check(it, student: Student) -> None:
    assert it.ok, (student.i, it.kind, it.status, it.exceptions, it.errors)
    assert not it.foreign, f"student {student.i} was shown students {sorted(it.foreign)}'s text"


async def _lesson(s: Student) -> None:
    _check(await s.open(), s)
    _check(await s.type_prompt(student_prompt(s.i)), s)
    it = await s.goto("generation", "Generation page")
    _check(it, s)
    assert it.own_marker, f"student {s.i}'s generation page does not show its own prompt"
    for _ in range(2):
        _check(await s.click("gen_next", "Next token"), s)
    assert any("2 decode steps" in t for t in s.texts), s.texts[:5]


@pytest.mark.slow
def test_two_replicas_behind_nginx_keep_each_session_on_its_replica(tmp_path):
    require_nginx()
    with cluster(2, workdir=tmp_path) as c:
        # New visitors are spread at random; collect one assignment to each replica (a fresh visitor each time).
        routes: set[str] = set()
        for _ in range(60):
            routes.add(_route_cookie(c.url))
            if len(routes) == 2:
                break
        assert routes == {"r1", "r2"}, f"60 new visitors all went to {sorted(routes)}"
        students = [Student(c.url, i, cookies={ROUTE_COOKIE: "r1" if i < 2 else "r2"}) for i in range(4)]

        async def scenario() -> None:
            await asyncio.gather(*(_lesson(s) for s in students))
            for s in students:
                assert s.replica == s.cookies[ROUTE_COOKIE], (s.i, s.replica)  # X-Replica of the handshake
            # A dropped connection comes back to its session: same id, same generation steps.
            a, b = students[0], students[2]
            ids = {s.i: s.session_id for s in (a, b)}
            for s in (a, b):
                await s.drop()
                it = await s.resume()
                _check(it, s)
                assert s.session_id == ids[s.i], f"student {s.i} got a new session after reconnecting"
                assert any("2 decode steps" in t for t in s.texts), f"student {s.i} lost its steps"
            # Control: the same session id sent to the other replica is unknown there — a new session (the
            # page still works, from what the URL carries: the prompt, and the generation steps it replays).
            ctrl = students[1]
            old = ctrl.session_id
            await ctrl.drop()
            ctrl.cookies[ROUTE_COOKIE] = "r2"
            it = await ctrl.resume()
            _check(it, ctrl)
            assert ctrl.replica == "r2" and ctrl.session_id != old
            assert any(re.search(r"\b\d+ decode steps?\b", t) for t in ctrl.texts) and it.own_marker
            await asyncio.gather(*(s.close() for s in students))

        in_own_loop(scenario)
        deadline = time.monotonic() + 10  # nginx logs a websocket when it closes
        while len([r for r in c.access_log() if r["uri"] == "/_stcore/stream"]) < 7 and time.monotonic() < deadline:
            time.sleep(0.2)
        log = c.access_log()
    # Every request that carried a route cookie reached that replica; both replicas served websockets.
    assert log, "the proxy logged nothing"
    addr = {f"r{k + 1}": r.url.split("//", 1)[1] for k, r in enumerate(c.replicas)}
    routed = [row for row in log if row["cookie"] in addr]
    assert routed and all(row["upstream"] == addr[row["cookie"]] for row in routed), \
        [row for row in routed if row["upstream"] != addr[row["cookie"]]][:5]
    streams = [row for row in log if row["uri"] == "/_stcore/stream"]
    assert len(streams) == 4 + 3  # four sessions, two resumed, one sent to the other replica
    assert {row["upstream"] for row in streams} == set(addr.values())
    assert all(row["status"] == 101 for row in streams)
