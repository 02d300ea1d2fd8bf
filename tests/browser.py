"""Real-browser support shared by the browser tests and benchmarks/bench_ui.py.

`serve_app` starts `streamlit run app.py` on a free port of 127.0.0.1 with its own cache
directory and stops it by its process group; `chromium` launches Debian's Chromium through
Playwright. Without Chromium or Playwright the test is skipped, unless BNAPP_REQUIRE_BROWSER=1
(CI), where it fails instead. The page helpers wait on Streamlit's own "script finished" flag
rather than on fixed sleeps.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.parse
import urllib.request
import weakref
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]
REQUIRE_ENV = "BNAPP_REQUIRE_BROWSER"
ARTIFACTS = REPO / "artifacts"
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
MAX_SHOT_HEIGHT = 8000  # pixels
# The app's pages by file name, which st.navigation also makes their URL path (except for the
# default page, served at the root).
PAGES = ["data", "train", "stages", "parameters", "sensitivity", "importance", "grid",
         "baselines", "agreement", "predict", "export"]
DEFAULT_PAGE = "data"


def require_browser() -> None:
    """Skip (or, with BNAPP_REQUIRE_BROWSER=1, fail) when the browser stack is missing."""
    missing = []
    if not CHROMIUM.is_file():
        missing.append(f"{CHROMIUM} (apt-get install chromium, or `make chromium`)")
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        missing.append("the playwright package (requirements-dev.txt)")
    if not missing:
        return
    message = "browser test needs " + " and ".join(missing)
    if os.environ.get(REQUIRE_ENV) == "1":
        pytest.fail(f"{message}; {REQUIRE_ENV}=1 makes this a failure")
    pytest.skip(message)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


# ------------------------------------------------------------------------------- the server

@dataclass
class AppServer:
    """A running `streamlit run app.py`, in its own process group."""

    port: int
    cache_dir: Path
    process: subprocess.Popen
    log_path: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def is_local(self, url: str) -> bool:
        """True for this server's own URLs and for in-page data:/blob: URLs."""
        return (url.startswith((f"{self.url}/", "data:", "blob:"))
                or url in (self.url, f"ws://127.0.0.1:{self.port}/_stcore/stream"))

    def listening_addresses(self) -> set[str]:
        """Local addresses of the sockets listening on this server's port, from /proc/net."""
        found = set()
        for table in ("tcp", "tcp6"):
            path = Path("/proc/net") / table
            for line in path.read_text().splitlines()[1:] if path.exists() else []:
                local, state = line.split()[1], line.split()[3]
                address, port = local.split(":")
                if state == "0A" and int(port, 16) == self.port:  # 0A: LISTEN
                    found.add(_address(address))
        return found

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def rss_bytes(self) -> int:
        """Resident memory of the server and its worker processes (loky) together."""
        return sum(_rss(pid) for pid in [self.process.pid, *_children(self.process.pid)])


def _address(hex_address: str) -> str:
    """/proc/net/tcp{,6}'s little-endian hex address as text."""
    raw = bytes.fromhex(hex_address)
    if len(raw) == 4:
        return socket.inet_ntop(socket.AF_INET, raw[::-1])
    words = b"".join(raw[i:i + 4][::-1] for i in range(0, 16, 4))
    return socket.inet_ntop(socket.AF_INET6, words)


def _rss(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass  # the process just ended
    return 0


def _children(pid: int) -> list[int]:
    """All descendants of pid, from /proc (psutil is not a requirement)."""
    found, todo = [], [pid]
    while todo:
        parent = todo.pop()
        for task in Path(f"/proc/{parent}/task").glob("*"):
            with contextlib.suppress(OSError):
                kids = [int(k) for k in (task / "children").read_text().split()]
                found += kids
                todo += kids
    return found


def _healthy(url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as response:
            return response.status == 200
    except OSError:
        return False


@contextlib.contextmanager
def serve_app(cache_dir: Path, *, startup_timeout: float = 60.0,
              env: dict[str, str] | None = None) -> Iterator[AppServer]:
    """Start the dashboard on a free 127.0.0.1 port with BNAPP_CACHE_DIR=cache_dir; stop it after."""
    port = free_port()
    log_path = cache_dir.parent / f"streamlit-{port}.log"
    # no --server.address: the shipped .streamlit/config.toml must bind to 127.0.0.1 by itself
    cmd = [sys.executable, "-m", "streamlit", "run", "app.py", "--server.port", str(port),
           "--server.headless", "true"]
    full_env = {**os.environ, "BNAPP_CACHE_DIR": str(cache_dir), **(env or {})}
    with open(log_path, "wb") as log:
        process = subprocess.Popen(cmd, cwd=REPO, env=full_env, stdout=log,
                                   stderr=subprocess.STDOUT, start_new_session=True)
    server = AppServer(port, cache_dir, process, log_path)
    try:
        deadline = time.monotonic() + startup_timeout
        while not _healthy(server.url):
            if process.poll() is not None:
                raise RuntimeError(f"streamlit exited with {process.returncode}:\n{server.log()}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"streamlit not healthy after {startup_timeout:.0f} s:\n"
                                   f"{server.log()}")
            time.sleep(0.2)
        yield server
    finally:
        _stop(process)


def _stop(process: subprocess.Popen) -> None:
    """SIGTERM to the server's own process group (itself and its workers), then SIGKILL."""
    if process.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=10)


@dataclass
class RssSampler:
    """Samples a server's RSS on a thread; `peak` is the largest seen."""

    server: AppServer
    every: float = 0.25
    peak: int = 0
    _done: threading.Event = field(default_factory=threading.Event)

    def __enter__(self) -> RssSampler:
        self._thread = threading.Thread(target=self._loop, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._done.set()
        self._thread.join()

    def _loop(self) -> None:
        while True:
            self.peak = max(self.peak, self.server.rss_bytes())
            if self._done.wait(self.every):
                return


# ------------------------------------------------------------------------------ the browser

@contextlib.contextmanager
def chromium(headless: bool = True):
    """One Playwright Chromium (Debian's binary; Playwright cannot download its own here)."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS,
                                     headless=headless)
        try:
            yield browser
        finally:
            browser.close()


IDLE = '[data-testid="stApp"][data-test-script-state="notRunning"]'
QUIET = 0.4  # seconds without a new script run after the last one: no rerun is chained


@dataclass
class RunWatch:
    """Script runs of one page, read from the server's messages on its websocket: a run starts
    with new_session and ends with script_finished. (The page's running/idle flag is not enough:
    a busy browser may render a whole run in one frame, so the flag never visibly changes.)"""

    finished: int = 0  # whole-script runs finished (fragment reruns are not counted)
    running: bool = False
    last: float = field(default_factory=time.monotonic)
    finish_times: list[float] = field(default_factory=list)  # when each of those finished

    def on_frame(self, payload) -> None:
        if not isinstance(payload, bytes):
            return
        from streamlit.proto.ForwardMsg_pb2 import ForwardMsg

        try:
            kind = ForwardMsg.FromString(payload).WhichOneof("type")
        except Exception:  # noqa: BLE001 - not a ForwardMsg: nothing to count
            return
        if kind == "new_session":
            self.running, self.last = True, time.monotonic()
        elif kind == "script_finished":
            status = ForwardMsg.FromString(payload).script_finished
            self.running, self.last = False, time.monotonic()
            if status != ForwardMsg.FINISHED_FRAGMENT_RUN_SUCCESSFULLY:
                self.finished += 1
                self.finish_times.append(self.last)


_watches: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def _watch(page) -> None:
    watch = _watches[page] = RunWatch()
    page.on("websocket", lambda ws: ws.on("framereceived", watch.on_frame))


def new_session(browser, **kwargs):
    """A browser context whose pages (one Streamlit session each) have their runs watched."""
    context = browser.new_context(accept_downloads=True,
                                  viewport={"width": 1400, "height": 1000}, **kwargs)
    context.on("page", _watch)
    return context


def wait_idle(page, timeout: float = 60.0) -> None:
    """Wait until Streamlit reports the script (and any fragment) as not running."""
    page.wait_for_selector(IDLE, timeout=timeout * 1000)


def runs_finished(page) -> int:
    return _watches[page].finished


def finish_time(page, run: int) -> float:
    """time.monotonic() when the page's whole-script run number `run` (from 0) finished."""
    return _watches[page].finish_times[run]


def last_event(page) -> float:
    """time.monotonic() of the page's last script start or finish seen on its websocket."""
    return _watches[page].last


def wait_rerun(page, before: int, timeout: float = 60.0) -> None:
    """Wait until a whole-script run finished after `before` was counted, none has started
    since for QUIET seconds, and the page shows itself idle."""
    watch, deadline = _watches[page], time.monotonic() + timeout
    while not (watch.finished > before and not watch.running
               and time.monotonic() - watch.last > QUIET):
        if time.monotonic() > deadline:
            shot = screenshot(page, f"stuck-{time.time():.0f}", full=False)
            pytest.fail(f"{page.url}: no script run finished within {timeout:.0f} s (runs "
                        f"{before} -> {watch.finished}, running {watch.running}); "
                        f"screenshot {shot}")
        page.wait_for_timeout(50)  # lets Playwright deliver the websocket events
    wait_idle(page, timeout)


def open_app(page, server: AppServer, timeout: float = 60.0) -> None:
    """Load the app's first page and wait until it has rendered."""
    page.goto(server.url)
    page.wait_for_selector('[data-testid="stSidebarNav"]', timeout=timeout * 1000)
    wait_rerun(page, 0, timeout)


def click_nav(page, name: str) -> int:
    """Click a page in the sidebar (a URL load would start a new session); returns the run count
    before the click, for wait_rerun."""
    before = runs_finished(page)
    page.locator(f'[data-testid="stSidebarNavLink"][href$="/{_path(name)}"]').click()
    return before


def _path(name: str) -> str:
    return "" if name == DEFAULT_PAGE else name


def _page_of(url: str) -> str:
    """The page part of an app URL, without the query (?jobs=… names the session's jobs)."""
    return urllib.parse.urlsplit(url).path.rstrip("/").rpartition("/")[2]


def go_to(page, name: str, timeout: float = 60.0) -> None:
    before = click_nav(page, name)
    page.wait_for_url(lambda url: _page_of(url) == _path(name), timeout=timeout * 1000)
    wait_rerun(page, before, timeout)


def upload(page, file, timeout: float = 60.0) -> None:
    """Give the Data page's file uploader a path or a {name, mimeType, buffer} payload."""
    before = runs_finished(page)
    page.locator('.st-key-upload input[type="file"]').set_input_files(
        file if isinstance(file, dict) else str(file))
    wait_rerun(page, before, timeout)


def set_number(page, key: str, value: int | float) -> None:
    """Type into a number_input (by its key) and commit it with Enter."""
    before = runs_finished(page)
    box = page.locator(f".st-key-{key} input")
    box.fill(str(value))
    box.press("Enter")
    wait_rerun(page, before)


def set_protocol(page, folds: int, epochs: int) -> None:
    """On the Train page: k-fold with this many folds and epochs."""
    set_number(page, "proto_folds", folds)
    set_number(page, "proto_epochs", epochs)
    page.locator('[data-testid="stMain"]').get_by_text(
        f"{folds} models × {epochs} epochs").wait_for(timeout=30_000)


def start_training(page) -> None:
    before = runs_finished(page)
    page.locator(".st-key-train button").first.click()
    wait_rerun(page, before)


def sidebar_text(page) -> str:
    return page.locator('[data-testid="stSidebar"]').inner_text()


def wait_for_sidebar(page, text: str, timeout: float, what: str) -> None:
    """Wait until the sidebar shows text; fail with what we were waiting for and what it shows."""
    try:
        page.locator('[data-testid="stSidebar"]').get_by_text(text, exact=False).first.wait_for(
            timeout=timeout * 1000)
    except Exception as exc:  # playwright's TimeoutError: say what the user would have seen
        pytest.fail(f"{what}: sidebar never showed {text!r} within {timeout:.0f} s; it shows:\n"
                    f"{sidebar_text(page)}\n({type(exc).__name__})")


def exceptions_on_page(page) -> list[str]:
    return page.locator('[data-testid="stException"]').all_inner_texts()


def screenshot(page, name: str, *, full: bool = True) -> Path:
    """Save artifacts/screenshots/<name>.png; full=True makes the window as tall as the page
    first (Streamlit scrolls inside its main pane, which full_page screenshots miss)."""
    out = ARTIFACTS / "screenshots" / f"{name}.png"
    out.parent.mkdir(parents=True, exist_ok=True)
    size = page.viewport_size
    if full:
        height = page.evaluate(
            "Math.max(...[...document.querySelectorAll('[data-testid=stMain], "
            "[data-testid=stAppViewContainer]')].map(e => e.scrollHeight))")
        page.set_viewport_size({"width": size["width"], "height": min(max(height, size["height"]),
                                                                      MAX_SHOT_HEIGHT)})
        page.wait_for_timeout(500)  # charts re-layout to the new size
    page.screenshot(path=str(out))
    page.set_viewport_size(size)
    return out


# ------------------------------------------------------------------------------ many sessions

@dataclass
class LoadSession:
    """One browser session of a load run: its file, what it should see, what it saw."""

    path: Path
    n_usable: int
    n_dropped: int
    page: object = None
    sidebar: str = ""
    data_page: str = ""

    @property
    def name(self) -> str:
        return self.path.name

    @property
    def counts(self) -> str:
        return f"{self.n_usable} rows usable · {self.n_dropped} dropped"


def run_sessions(browser, server: AppServer, sessions: list[LoadSession], *, folds: int,
                 epochs: int, timeout: float = 300.0) -> dict[str, float]:
    """Every session at once: open the app, upload its file, train (folds x epochs), wait for
    its run; each step is started in all sessions before any is waited for, so the server
    handles them concurrently. Fills each session's texts; returns the seconds each phase took
    (open, upload, protocol, train) and their total."""
    phases, start = {}, time.perf_counter()

    def lap(name: str) -> None:
        phases[name] = time.perf_counter() - start - sum(phases.values())

    contexts = [new_session(browser) for _ in sessions]
    try:
        for session, context in zip(sessions, contexts, strict=True):
            session.page = context.new_page()
            session.page.goto(server.url, wait_until="commit")
        for session in sessions:
            open_app(session.page, server, timeout)
        lap("open")
        marks = [runs_finished(s.page) for s in sessions]
        for session in sessions:
            session.page.locator('.st-key-upload input[type="file"]').set_input_files(
                str(session.path))
        for session, before in zip(sessions, marks, strict=True):
            wait_rerun(session.page, before, timeout)
            wait_for_sidebar(session.page, session.counts, timeout, f"uploading {session.name}")
        lap("upload")
        marks = [click_nav(s.page, "train") for s in sessions]
        for session, before in zip(sessions, marks, strict=True):
            wait_rerun(session.page, before, timeout)
            set_protocol(session.page, folds, epochs)
        lap("protocol")
        for session in sessions:
            session.page.locator(".st-key-train button").first.click()
        for session in sessions:
            wait_for_sidebar(session.page, f"{folds}-fold CV, {epochs} epochs · {session.name}",
                             timeout, f"training on {session.name}")
        lap("train")
        phases["total"] = time.perf_counter() - start
        for session in sessions:
            session.sidebar = sidebar_text(session.page)
            go_to(session.page, DEFAULT_PAGE, timeout)
            session.data_page = session.page.locator('[data-testid="stMain"]').inner_text()
        return phases
    finally:
        for context in contexts:
            context.close()
