"""Fixtures of the viz tests: tiny debug runs trained once per test session, and headless
Chromium driven over the DevTools protocol (CDP) for the real-browser tests of the report and
of play-dream (pages loaded and closed, or tabs kept open to press keys and read the page)."""

from __future__ import annotations

import base64
import json
import shutil
import subprocess
import time
from contextlib import ExitStack
from pathlib import Path

import pytest

from worldmodels.cli import main

INSTALL = (
    "chromium is not installed, so the browser tests are skipped; install it with "
    "`apt-get install -y chromium` (`make test` does this when run as root)"
)


def train_run(root: Path, name: str, agent: str, env: str, steps: int = 300) -> Path:
    run = root / name
    args = ["train", agent, "--env", env, "--steps", str(steps), "--run-dir", str(run)]
    assert main([*args, "--preset", "debug", "--no-progress"]) == 0
    return run


@pytest.fixture(scope="session")
def runs_root(tmp_path_factory):
    return tmp_path_factory.mktemp("runs")


@pytest.fixture(scope="session")
def pixel_run(runs_root):
    """The Dreamer debug run on images (toy:image_target); tests that need only this run do
    not train the others."""
    return train_run(runs_root, "pixels", "dreamerv3", "toy:image_target")


@pytest.fixture(scope="session")
def runs(runs_root, pixel_run):
    """Debug runs on the toy envs: Dreamer on images and on vectors, TD-MPC2, MuZero, PlaNet
    (100 steps, its random prefill: one update, then the final eval of CEM plans; a checkpoint
    and five 20-step episodes in the replay)."""
    root = runs_root
    return {
        "pixels": pixel_run,
        "vector": train_run(root, "vector", "dreamerv3", "toy:target"),
        "tdmpc2": train_run(root, "tdmpc2", "tdmpc2", "toy:reach", 200),
        "muzero": train_run(root, "muzero", "muzero", "toy:target", 200),
        "planet": train_run(root, "planet", "planet", "toy:reach", 100),
    }


class Browser:
    """Headless Chromium with one DevTools websocket; :meth:`load` opens a page in a new tab."""

    def __init__(self, exe: str, profile: Path):
        from websockets.sync.client import connect

        self._stack = ExitStack()
        self.proc = subprocess.Popen(
            [
                exe,
                "--headless=new",
                "--no-sandbox",  # root in a container
                "--disable-gpu",
                "--no-first-run",
                "--no-default-browser-check",
                "--disable-extensions",
                "--mute-audio",
                "--autoplay-policy=no-user-gesture-required",
                "--remote-debugging-port=0",
                f"--user-data-dir={profile}",
                "about:blank",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        port_file = profile / "DevToolsActivePort"  # "PORT\n/devtools/browser/ID"
        deadline = time.monotonic() + 60
        while True:
            lines = port_file.read_text().split() if port_file.exists() else []
            if len(lines) == 2:
                break
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.close()
                pytest.fail(f"chromium did not open its DevTools port (exit {self.proc.poll()})")
            time.sleep(0.1)
        url = f"ws://127.0.0.1:{lines[0]}{lines[1]}"
        self.ws = self._stack.enter_context(connect(url, max_size=None, open_timeout=30))
        self._id = 0
        self.events: list[dict] = []

    def call(
        self,
        method: str,
        params: dict | None = None,
        session: str | None = None,
        timeout: float = 60.0,
    ) -> dict:
        self._id += 1
        msg = {"id": self._id, "method": method, "params": params or {}}
        if session:
            msg["sessionId"] = session
        self.ws.send(json.dumps(msg))
        deadline = time.monotonic() + timeout
        while True:
            reply = json.loads(self.ws.recv(timeout=max(0.1, deadline - time.monotonic())))
            if reply.get("id") == self._id:
                if "error" in reply:
                    raise RuntimeError(f"{method}: {reply['error']}")
                return reply.get("result", {})
            self.events.append(reply)

    def wait_event(self, method: str, session: str, timeout: float = 60.0) -> dict:
        for i, e in enumerate(self.events):
            if e.get("method") == method and e.get("sessionId") == session:
                return self.events.pop(i)
        deadline = time.monotonic() + timeout
        while True:
            e = json.loads(self.ws.recv(timeout=max(0.1, deadline - time.monotonic())))
            if e.get("method") == method and e.get("sessionId") == session:
                return e
            self.events.append(e)

    def load(self, path: Path, width: int = 1280, height: int = 2400) -> dict:
        """Open ``path``; returns ``{"errors": [...], "requests": [...], "videos": [durations],
        "images": [naturalWidth], "screenshot": PNG bytes}``: console errors, uncaught
        exceptions and error log entries; every URL requested other than ``data:`` and the page
        itself; each <video>'s duration after loadedmetadata (-1 on a media error)."""
        target = self.call("Target.createTarget", {"url": "about:blank"})["targetId"]
        s = self.call("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]
        self.events.clear()
        for domain in ("Runtime", "Log", "Network", "Page"):
            self.call(f"{domain}.enable", session=s)
        metrics = {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": False}
        self.call("Emulation.setDeviceMetricsOverride", metrics, session=s)
        url = path.resolve().as_uri()
        self.call("Page.navigate", {"url": url}, session=s)
        self.wait_event("Page.loadEventFired", s)
        probe = """Promise.race([
          Promise.all([...document.querySelectorAll('video')].map(v => new Promise(ok => {
            if (v.readyState >= 1) ok(v.duration);
            v.addEventListener('loadedmetadata', () => ok(v.duration));
            v.addEventListener('error', () => ok(-1));
          }))),
          new Promise(ok => setTimeout(() => ok('timeout'), 30000))
        ]).then(d => JSON.stringify({videos: d,
          images: [...document.images].map(i => i.complete ? i.naturalWidth : 0)}))"""
        result = self.call(
            "Runtime.evaluate",
            {"expression": probe, "awaitPromise": True, "returnByValue": True},
            session=s,
        )
        page = json.loads(result["result"]["value"])
        shot = self.call("Page.captureScreenshot", {"format": "png"}, session=s)
        self.call("Target.closeTarget", {"targetId": target})
        errors, requests = console_errors(self.events, s), []
        for e in self.events:
            if e.get("sessionId") != s:
                continue
            method, p = e.get("method"), e.get("params", {})
            if method == "Network.requestWillBeSent":
                req = p["request"]["url"]
                if not req.startswith("data:") and req != url:
                    requests.append(req)
        return {
            "errors": errors,
            "requests": requests,
            "videos": page["videos"],
            "images": page["images"],
            "screenshot": base64.b64decode(shot["data"]),
        }

    def open(self, url: str, width: int = 1280, height: int = 1000) -> Tab:
        """Open ``url`` in a new tab and wait for its load event; the tab stays open."""
        target = self.call("Target.createTarget", {"url": "about:blank"})["targetId"]
        s = self.call("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]
        for domain in ("Runtime", "Log", "Network", "Page"):
            self.call(f"{domain}.enable", session=s)
        metrics = {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": False}
        self.call("Emulation.setDeviceMetricsOverride", metrics, session=s)
        self.call("Page.navigate", {"url": url}, session=s)
        self.wait_event("Page.loadEventFired", s)
        self.call("Page.bringToFront", session=s)
        return Tab(self, target, s, url)

    def close(self) -> None:
        self._stack.close()  # the websocket
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


KEYS = {  # DevTools key events: code -> (key, Windows virtual key code, text)
    "ArrowLeft": ("ArrowLeft", 37, ""),
    "ArrowUp": ("ArrowUp", 38, ""),
    "ArrowRight": ("ArrowRight", 39, ""),
    "ArrowDown": ("ArrowDown", 40, ""),
    "Space": (" ", 32, " "),
    "Period": (".", 190, "."),
    **{f"Digit{d}": (str(d), 48 + d, str(d)) for d in range(10)},
    **{f"Key{c}": (c.lower(), ord(c), c.lower()) for c in "ABCDEFGHIJKLMNOPQRSTUVWXYZ"},
}


class Tab:
    """An open page of :class:`Browser`: evaluate script, press keys, read console errors."""

    def __init__(self, browser: Browser, target: str, session: str, url: str):
        self.browser, self.target, self.session, self.url = browser, target, session, url

    def eval(self, expression: str, timeout: float = 60.0):
        """The value of ``expression`` (JSON-able; a promise is awaited)."""
        params = {"expression": expression, "awaitPromise": True, "returnByValue": True}
        result = self.browser.call("Runtime.evaluate", params, self.session, timeout)
        if "exceptionDetails" in result:
            raise RuntimeError(f"{expression}: {result['exceptionDetails'].get('text')}")
        return result["result"].get("value")

    def wait(self, expression: str, timeout: float = 30.0):
        """Poll ``expression`` until it is truthy; its value (fails after ``timeout`` s)."""
        deadline = time.monotonic() + timeout
        while True:
            value = self.eval(expression)
            if value:
                return value
            if time.monotonic() > deadline:
                pytest.fail(f"timed out after {timeout:.0f} s waiting for {expression}")
            time.sleep(0.05)

    def key(self, code: str, down: bool = True, up: bool = True) -> None:
        """Press (``down``) and release (``up``) the key of ``code`` (``KEYS``)."""
        key, vk, text = KEYS[code]
        event = {"key": key, "code": code, "windowsVirtualKeyCode": vk}
        if down:
            kind = "keyDown" if text else "rawKeyDown"
            params = {"type": kind, **event, **({"text": text} if text else {})}
            self.browser.call("Input.dispatchKeyEvent", params, self.session)
        if up:
            self.browser.call("Input.dispatchKeyEvent", {"type": "keyUp", **event}, self.session)

    def errors(self) -> list[str]:
        """Console errors, uncaught exceptions and error log entries of this tab so far."""
        return console_errors(self.browser.events, self.session)

    def requests(self) -> list[str]:
        """Every URL this tab requested other than ``data:`` and the page itself."""
        out = []
        for e in self.browser.events:
            if e.get("sessionId") != self.session:
                continue
            if e.get("method") == "Network.requestWillBeSent":
                req = e["params"]["request"]["url"]
                if not req.startswith("data:") and req != self.url:
                    out.append(req)
        return out

    def close(self) -> None:
        self.browser.call("Target.closeTarget", {"targetId": self.target})


def console_errors(events: list[dict], session: str) -> list[str]:
    """Console errors, uncaught exceptions and error log entries among a tab's events."""
    errors = []
    for e in events:
        if e.get("sessionId") != session:
            continue
        method, p = e.get("method"), e.get("params", {})
        if method == "Runtime.consoleAPICalled" and p.get("type") in ("error", "assert"):
            errors.append(" ".join(str(a.get("value", a.get("description"))) for a in p["args"]))
        elif method == "Runtime.exceptionThrown":
            errors.append(p["exceptionDetails"].get("text", "exception"))
        elif method == "Log.entryAdded" and p["entry"].get("level") == "error":
            errors.append(p["entry"].get("text", ""))
    return errors


@pytest.fixture(scope="session")
def browser(tmp_path_factory):
    """A headless Chromium (Debian's ``chromium``); the tests that use it are skipped, with the
    line to install it, when it is not installed."""
    exe = shutil.which("chromium") or shutil.which("chromium-browser")
    if exe is None:
        pytest.skip(INSTALL)
    pytest.importorskip("websockets.sync.client", reason="pip install -e '.[dev]' (websockets)")
    b = Browser(exe, tmp_path_factory.mktemp("chromium-profile"))
    yield b
    b.close()
