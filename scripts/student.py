"""Simulated students against a real running server: one websocket each, speaking what the browser speaks.

    students = await run_class("http://127.0.0.1:8501", n=20, period=20, spread=10, rounds=1)

A `Student` opens the app as a browser does — a GET of the page (whose cookies it keeps: a proxy's affinity
cookie among them), then the websocket `/_stcore/stream` (subprotocol "streamlit") — and sends the same
`BackMsg.rerun_script` messages Streamlit's frontend sends (captured from Chromium for this app): the query
string, the page's script hash, and widget states by widget id (text as `string_value`, a select slider's
choice as `string_array_value`, a click as `trigger_value`). It times each interaction from the send to
`script_finished`, and reads everything the server sends back:

- widget ids by their key (the id ends in "-KEY"), so it can type into the prompt box or click "Next token";
- exceptions (a traceback element) and error alerts: counted, with their text;
- the app's "busy" notice (`app_shared.BUSY_TITLE`) and its "overloaded" one;
- every `StudentNNN` in any message: each student's prompts carry its own number, so a number that is not its
  own in its own messages is another student's computation in its view (`leaks`).

What it does not do: render anything (no browser: no JavaScript, no Plotly drawing — the server's work and the
bytes it sends are real, the browser's drawing time is not in the latency), fetch static files, or use the
frontend's message cache (it reports none cached, so every element is sent in full: slightly pessimistic).

The lesson (`LESSON`) is what a lecturer walks a class through; `run_class` paces it as a lecture does: step k
is announced at k × `period` seconds and each student does it after their own reaction time, uniform in
[0, `spread`) — so a class of N sends N requests within `spread` seconds, step after step.
"""

from __future__ import annotations

import asyncio
import random
import re
import time
import urllib.request
from dataclasses import dataclass, field
from typing import Awaitable, Callable, Optional

from streamlit.proto.BackMsg_pb2 import BackMsg
from streamlit.proto.ForwardMsg_pb2 import ForwardMsg
from streamlit.proto.WidgetStates_pb2 import WidgetState

BUSY_TITLE = "The server is busy"  # app_shared.BUSY_TITLE / OVERLOADED_TITLE (not imported: no app code here)
OVERLOADED_TITLE = "The server is overloaded"
MARKER = re.compile(rb"Student(\d{3})")
FINISHED = ForwardMsg.ScriptFinishedStatus
RUN_TIMEOUT_S = 180.0


def student_prompt(i: int, round_: int = 0) -> str:
    """Student i's own prompt: its number in it, so its text in anyone else's view is caught."""
    lines = ["But soft, what light through yonder window breaks?", "Now is the winter of our discontent",
             "If music be the food of love, play on;", "All the world's a stage,"]
    return f"Student{i:03d}.\n{lines[(i + round_) % len(lines)]} (round {round_})"


@dataclass
class Interaction:
    student: int
    kind: str
    t_sent: float  # perf_counter
    t_first: Optional[float] = None  # the first message of the reply
    t_done: Optional[float] = None  # script_finished (not "early for rerun")
    status: str = ""
    n_messages: int = 0
    n_bytes: int = 0
    exceptions: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    busy: bool = False
    overloaded: bool = False
    own_marker: bool = False
    foreign: set[int] = field(default_factory=set)
    replica: str = ""  # the proxy's X-Replica on the handshake (open only)

    @property
    def latency(self) -> Optional[float]:
        return None if self.t_done is None else self.t_done - self.t_sent

    @property
    def first_feedback(self) -> Optional[float]:
        return None if self.t_first is None else self.t_first - self.t_sent

    @property
    def ok(self) -> bool:
        return self.status == "FINISHED_SUCCESSFULLY" and not self.exceptions and not self.overloaded


class Student:
    """One browser tab. `await s.open()`, then `type_prompt` / `goto` / `click` / `select_slider`, each a
    timed `Interaction` appended to `s.log`; `await s.close()`."""

    def __init__(self, base_url: str, i: int, cookies: Optional[dict] = None) -> None:
        self.base_url, self.i = base_url.rstrip("/"), i
        self.cookies: dict[str, str] = dict(cookies or {})
        self.ws = None
        self.session_id = ""
        self.query_string = ""
        self.page_hash = ""
        self.pages: dict[str, str] = {}  # url path ("" = the default page) -> script hash
        self.widgets: dict[str, str] = {}  # user key -> widget id, from the elements received
        self.replica = ""
        self.log: list[Interaction] = []
        self.texts: list[str] = []  # markdown / code / alert bodies of the last finished run
        self._current: Optional[Interaction] = None
        self._done: Optional[asyncio.Event] = None
        self._reader: Optional[asyncio.Task] = None
        self.closed_reason = ""

    # --- connection --------------------------------------------------------------------------------------

    def _get_page(self) -> None:
        """GET / as the browser does (keeps the cookies it sets, notes X-Replica)."""
        req = urllib.request.Request(self.base_url + "/", headers={"Cookie": self._cookie_header()} if self.cookies else {})
        with urllib.request.urlopen(req, timeout=60) as r:
            r.read()
            for h in r.headers.get_all("Set-Cookie") or []:
                name, _, rest = h.partition("=")
                self.cookies[name.strip()] = rest.split(";", 1)[0].strip()
            self.replica = r.headers.get("X-Replica", "") or self.replica

    def _cookie_header(self) -> str:
        return "; ".join(f"{k}={v}" for k, v in self.cookies.items())

    async def connect(self, resume: bool = False) -> None:
        """The page and the websocket. `resume`: reconnect to this student's session (its id rides in the
        subprotocol list, as the frontend does after a dropped connection)."""
        from websockets.asyncio.client import connect

        await asyncio.to_thread(self._get_page)
        ws_url = "ws" + self.base_url[len("http"):] + "/_stcore/stream"
        protocols = ["streamlit", "xsrf-unused"] + ([self.session_id] if resume and self.session_id else [])
        headers = {"Cookie": self._cookie_header()} if self.cookies else {}
        self.ws = await connect(ws_url, subprotocols=protocols, additional_headers=headers, max_size=None,
                                open_timeout=RUN_TIMEOUT_S, ping_interval=None, close_timeout=5)
        self.replica = self.ws.response.headers.get("X-Replica", self.replica)
        self._reader = asyncio.create_task(self._read())

    async def close(self) -> None:
        if self.ws is not None:
            await self.ws.close()
        if self._reader is not None:
            try:
                await asyncio.wait_for(self._reader, 10)
            except (asyncio.TimeoutError, Exception):
                self._reader.cancel()
        self.ws = self._reader = None

    async def drop(self) -> None:
        """Lose the connection without ending the session (a laptop's wifi): the server keeps the session for
        `server.disconnectedSessionTTL` seconds, and `connect(resume=True)` gets it back."""
        await self.close()

    # --- reading ---------------------------------------------------------------------------------------

    async def _read(self) -> None:
        try:
            async for raw in self.ws:
                if isinstance(raw, str):
                    continue
                self._on_message(raw)
        except Exception as e:  # a closed or broken socket: whoever waits is told below
            self.closed_reason = f"{type(e).__name__}: {e}"
        finally:
            if self._done is not None:
                self._done.set()

    def _on_message(self, raw: bytes) -> None:
        now = time.perf_counter()
        it = self._current
        msg = ForwardMsg()
        msg.ParseFromString(raw)
        kind = msg.WhichOneof("type")
        if it is not None:
            it.n_messages += 1
            it.n_bytes += len(raw)
            if it.t_first is None and kind in ("delta", "script_finished"):
                it.t_first = now
            for m in MARKER.finditer(raw):
                n = int(m.group(1))
                if n == self.i:
                    it.own_marker = True
                else:
                    it.foreign.add(n)
        if kind == "new_session":
            ns = msg.new_session
            self.session_id = ns.initialize.session_id or self.session_id
            self.page_hash = ns.page_script_hash or self.page_hash
        elif kind == "navigation":
            nav = msg.navigation
            pages = {}
            for p in nav.app_pages:
                pages["" if p.is_default else p.url_pathname] = p.page_script_hash
            if pages:
                self.pages = pages
            if nav.page_script_hash:
                self.page_hash = nav.page_script_hash
        elif kind == "page_info_changed":
            self.query_string = msg.page_info_changed.query_string
        elif kind == "delta" and msg.delta.WhichOneof("type") == "new_element":
            self._on_element(msg.delta.new_element, it)
        elif kind == "script_finished":
            status = FINISHED.Name(msg.script_finished)
            if status != "FINISHED_EARLY_FOR_RERUN" and it is not None and it.t_done is None:
                it.t_done, it.status = now, status
                if self._done is not None:
                    self._done.set()

    def _on_element(self, el, it: Optional[Interaction]) -> None:
        t = el.WhichOneof("type")
        if t is None:
            return
        body = getattr(el, t)
        wid = getattr(body, "id", "") if hasattr(body, "id") else ""
        if isinstance(wid, str) and wid.startswith("$$ID-"):
            self.widgets[wid.rsplit("-", 1)[1]] = wid
        if t in ("markdown", "code", "alert", "text"):
            self.texts.append(getattr(body, "body", "") or getattr(body, "code_text", ""))
        if it is None:
            return
        if t == "exception":
            it.exceptions.append(f"{body.type}: {body.message}"[:500])
        elif t == "alert":
            if body.format == 1:  # ERROR
                it.errors.append(body.body[:300])
            if BUSY_TITLE in body.body:
                it.busy = True
            if OVERLOADED_TITLE in body.body:
                it.overloaded = True

    # --- interactions ---------------------------------------------------------------------------------

    async def _rerun(self, kind: str, widgets: list[WidgetState] = (), page: Optional[str] = None) -> Interaction:
        if page is not None:
            if page not in self.pages:
                raise KeyError(f"no page {page!r}; the app lists {sorted(self.pages)}")
            self.page_hash = self.pages[page]
        msg = BackMsg()
        cs = msg.rerun_script
        cs.query_string = self.query_string
        cs.page_script_hash = self.page_hash
        cs.widget_states.widgets.extend(widgets)
        ci = cs.context_info
        ci.timezone, ci.locale, ci.url = "UTC", "en-US", f"{self.base_url}/{page or ''}"
        it = Interaction(self.i, kind, time.perf_counter(), replica=self.replica)
        self._current, self._done = it, asyncio.Event()
        self.texts = []
        self.log.append(it)
        if self.ws is None:
            it.status = "NOT_CONNECTED"
            return it
        try:
            await self.ws.send(msg.SerializeToString())
            await asyncio.wait_for(self._done.wait(), RUN_TIMEOUT_S)
        except asyncio.TimeoutError:
            it.status = "TIMEOUT"
        except Exception as e:
            it.status = f"SEND_FAILED {type(e).__name__}"
        if it.t_done is None and not it.status:
            it.status = "DISCONNECTED " + self.closed_reason
        self._current = None
        return it

    async def open(self, query: str = "") -> Interaction:
        """Open the link: the page, the websocket, the first run (the default page unless the link names one)."""
        t0 = time.perf_counter()
        try:
            await self.connect()
        except Exception as e:
            it = Interaction(self.i, "open the link", t0, status=f"CONNECT_FAILED {type(e).__name__}: {e}"[:200])
            self.log.append(it)
            return it
        self.query_string = query
        it = await self._rerun("open the link")
        it.t_sent = t0  # the page load and the handshake count too
        return it

    async def resume(self) -> Interaction:
        """Reconnect after `drop` and rerun the page shown: the same session if it reached the same server."""
        t0 = time.perf_counter()
        await self.connect(resume=True)
        it = await self._rerun("reconnect")
        it.t_sent = t0
        return it

    def _widget(self, key: str, **value) -> WidgetState:
        if key not in self.widgets:
            raise KeyError(f"no widget keyed {key!r} on this page yet")
        return WidgetState(id=self.widgets[key], **value)

    async def type_prompt(self, text: str) -> Interaction:
        return await self._rerun("type a prompt", [self._widget("prompt", string_value=text)])

    async def goto(self, page: str, kind: Optional[str] = None) -> Interaction:
        return await self._rerun(kind or f"open page {page or 'home'}", page=page)

    async def click(self, key: str, kind: Optional[str] = None) -> Interaction:
        return await self._rerun(kind or f"click {key}", [self._widget(key, trigger_value=True)])

    async def select_slider(self, key: str, shown: str, kind: Optional[str] = None) -> Interaction:
        st = self._widget(key)
        st.string_array_value.data.append(shown)
        return await self._rerun(kind or f"set {key}", [st])


# --------------------------------------------------------------------------------------------------------
# The lesson, and a class following it
# --------------------------------------------------------------------------------------------------------

Step = tuple[str, Callable[[Student, int], Awaitable[Interaction]]]

LESSON: list[Step] = [
    ("open the link", lambda s, r: s.open()),  # everyone opens the same link: the default prompt
    ("type a prompt", lambda s, r: s.type_prompt(student_prompt(s.i, r))),
    ("Attention page", lambda s, r: s.goto("attention", "Attention page")),
    ("Generation page", lambda s, r: s.goto("generation", "Generation page")),
    ("Next token", lambda s, r: s.click("gen_next", "Next token")),
    ("Next token", lambda s, r: s.click("gen_next", "Next token")),
    ("temperature 1.2", lambda s, r: s.select_slider("temperature", "1.2" if r % 2 == 0 else "0.8", "temperature")),
    ("Run 10", lambda s, r: s.click("gen_run", "Run 10")),
    ("Layer by layer page", lambda s, r: s.goto("logit_lens", "Layer by layer page")),
    ("The whole path page", lambda s, r: s.goto("", "The whole path page")),
]
# Later rounds start again at "type a prompt" (a new prompt each round) on the connection already open.
REPEAT_FROM = 1


def lesson_steps(rounds: int) -> list[tuple[str, int, Callable]]:
    """(name, round, action) for `rounds` passes through the lesson."""
    out = [(name, 0, fn) for name, fn in LESSON]
    for r in range(1, rounds):
        out += [(name, r, fn) for name, fn in LESSON[REPEAT_FROM:]]
    return out


async def follow_lesson(student: Student, steps: list, t0: float, period: float, spread: float,
                        rng: random.Random, stop_at: Optional[float] = None) -> None:
    """Do step k at t0 + k·period + this student's reaction time. A failed step is logged and the student goes
    on (a missing widget after a failure is logged as that step's error, not raised)."""
    for k, (name, round_, fn) in enumerate(steps):
        at = t0 + k * period + rng.uniform(0, spread)
        if stop_at is not None and at > stop_at:
            break
        await asyncio.sleep(max(0.0, at - time.perf_counter()))
        try:
            await fn(student, round_)
        except KeyError as e:
            student.log.append(Interaction(student.i, name, time.perf_counter(), status=f"NO_WIDGET {e}"))
        if k == 0 and student.ws is None:
            return  # could not even connect


async def run_class(base_url: str, n: int, period: float = 20.0, spread: float = 10.0, rounds: int = 1,
                    seed: int = 0, first: int = 0, on_tick: Optional[Callable[[], None]] = None,
                    tick_s: float = 1.0) -> list[Student]:
    """N students (numbered first … first + n − 1) following the lesson `rounds` times, lecture-paced (see the
    module docstring). `on_tick` is called every `tick_s` seconds meanwhile (to sample the server). Returns the
    students, their `log`s filled in; their connections are closed."""
    steps = lesson_steps(rounds)
    students = [Student(base_url, first + k) for k in range(n)]
    t0 = time.perf_counter() + 0.5
    rngs = [random.Random(seed * 100_003 + s.i) for s in students]
    done = asyncio.Event()

    async def ticker():
        while not done.is_set():
            if on_tick:
                on_tick()
            try:
                await asyncio.wait_for(done.wait(), tick_s)
            except asyncio.TimeoutError:
                pass

    tick = asyncio.create_task(ticker())
    try:
        await asyncio.gather(*(follow_lesson(s, steps, t0, period, spread, r) for s, r in zip(students, rngs)))
    finally:
        done.set()
        await tick
        await asyncio.gather(*(s.close() for s in students), return_exceptions=True)
    return students


# --------------------------------------------------------------------------------------------------------
# Summaries
# --------------------------------------------------------------------------------------------------------


def percentile(xs: list[float], q: float) -> Optional[float]:
    """The q-th percentile (0–100), linear between order statistics; None for no data."""
    if not xs:
        return None
    s = sorted(xs)
    pos = (len(s) - 1) * q / 100
    lo = int(pos)
    hi = min(lo + 1, len(s) - 1)
    return s[lo] + (s[hi] - s[lo]) * (pos - lo)


def summarize(students: list[Student]) -> dict:
    """Latency p50/p95/max per interaction kind and overall (successful interactions), and every failure:
    errors, tracebacks, timeouts, busy and overloaded notices, leaks between students."""
    its = [it for s in students for it in s.log]
    good = [it for it in its if it.ok]
    by_kind: dict[str, list[Interaction]] = {}
    for it in its:
        by_kind.setdefault(it.kind, []).append(it)

    def stats(xs: list[Interaction]) -> dict:
        lat = [it.latency for it in xs if it.ok]
        ff = [it.first_feedback for it in xs if it.first_feedback is not None]
        return {"n": len(xs), "ok": len(lat), "p50_s": percentile(lat, 50), "p95_s": percentile(lat, 95),
                "max_s": max(lat) if lat else None, "first_feedback_p95_s": percentile(ff, 95),
                "mean_kib": (sum(it.n_bytes for it in xs) / len(xs) / 1024) if xs else None}

    failures = [{"student": it.student, "kind": it.kind, "status": it.status, "exceptions": it.exceptions[:2]}
                for it in its if not it.ok]
    return {
        "interactions": len(its), "ok": len(good),
        "p50_s": percentile([it.latency for it in good], 50), "p95_s": percentile([it.latency for it in good], 95),
        "max_s": max((it.latency for it in good), default=None),
        "by_kind": {k: stats(v) for k, v in by_kind.items()},
        "tracebacks": sum(len(it.exceptions) for it in its),
        "error_alerts": sum(len(it.errors) for it in its),
        "busy_notices": sum(it.busy for it in its), "overloaded_notices": sum(it.overloaded for it in its),
        "timeouts": sum(it.status == "TIMEOUT" for it in its),
        "leaks": sorted({(it.student, f) for it in its for f in it.foreign}),
        "failures": failures[:20], "n_failures": len(failures),
    }
