"""Headless Chromium (Debian's `chromium`) driven over the DevTools protocol, for page tests.

`--screenshot` alone cannot say how a page lays out at 360 px (headless windows are at least
500 px wide, and a phone's viewport is emulated, not a window size), so the browser is
driven through --remote-debugging-pipe: JSON messages separated by NUL bytes on file
descriptors 3 (to it) and 4 (from it), put in place by a few lines of Python run before it.
Only what the tests use is here: open a page at a device size, evaluate an expression in it,
take a screenshot.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import select
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

NAMES = ("chromium", "chromium-browser", "google-chrome")
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--disable-extensions", "--hide-scrollbars", "--mute-audio"]


def find_chromium() -> str | None:
    return next((found for name in NAMES if (found := shutil.which(name))), None)


class BrowserError(RuntimeError):
    pass


# Run in the child before Chromium: our two pipe ends become its descriptors 3 and 4.
_ON_FDS_3_AND_4 = ("import os, sys; r, w = int(sys.argv[1]), int(sys.argv[2]); "
                   "w = os.dup(w) if w == 3 else w; os.dup2(r, 3); os.dup2(w, 4); "
                   "os.execv(sys.argv[3], sys.argv[3:])")


class Browser:
    """One headless Chromium with one tab; use as a context manager."""

    def __init__(self, executable: str, timeout_s: float = 30.0):
        self.executable = executable
        self.timeout_s = timeout_s
        self._next_id = 0
        self._pending = b""

    def __enter__(self) -> Browser:
        self.profile = tempfile.mkdtemp(prefix="chromium-profile-")
        to_browser, self._to = os.pipe()
        self._from, from_browser = os.pipe()
        self.process = subprocess.Popen(
            [sys.executable, "-c", _ON_FDS_3_AND_4, str(to_browser), str(from_browser),
             self.executable, *FLAGS, f"--user-data-dir={self.profile}",
             "--remote-debugging-pipe", "about:blank"],
            pass_fds=(to_browser, from_browser), stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        os.close(to_browser)
        os.close(from_browser)
        target = self.call("Target.createTarget", url="about:blank")["targetId"]
        self.session = self.call("Target.attachToTarget", targetId=target, flatten=True)["sessionId"]
        self.call("Page.enable", session=True)
        return self

    def __exit__(self, *exc: Any) -> None:
        with contextlib.suppress(BrowserError, OSError):
            self.call("Browser.close")
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        os.close(self._to)
        os.close(self._from)
        shutil.rmtree(self.profile, ignore_errors=True)

    def _message(self) -> dict[str, Any]:
        while b"\0" not in self._pending:
            ready, _, _ = select.select([self._from], [], [], self.timeout_s)
            chunk = os.read(self._from, 1 << 16) if ready else b""
            if not chunk:
                raise BrowserError("chromium did not answer" if not ready else "chromium exited")
            self._pending += chunk
        message, _, self._pending = self._pending.partition(b"\0")
        return json.loads(message)

    def call(self, method: str, session: bool = False, **params: Any) -> dict[str, Any]:
        self._next_id += 1
        message: dict[str, Any] = {"id": self._next_id, "method": method, "params": params}
        if session:
            message["sessionId"] = self.session
        os.write(self._to, json.dumps(message).encode() + b"\0")
        while True:
            reply = self._message()
            if reply.get("id") == self._next_id:
                if "error" in reply:
                    raise BrowserError(f"{method}: {reply['error']}")
                return reply.get("result", {})

    def open(self, url: str, width: int, height: int = 800) -> None:
        """Load `url` in a viewport of `width` x `height` CSS pixels (below 600: a phone)."""
        self.call("Emulation.setDeviceMetricsOverride", session=True, width=width,
                  height=height, deviceScaleFactor=1, mobile=width < 600)
        self.call("Page.navigate", session=True, url=url)
        while self._message().get("method") != "Page.loadEventFired":
            pass

    def evaluate(self, expression: str) -> Any:
        result = self.call("Runtime.evaluate", session=True, expression=expression,
                           returnByValue=True)
        if "exceptionDetails" in result:
            raise BrowserError(f"the page's script failed: {result['exceptionDetails']}")
        return result["result"].get("value")

    def screenshot(self, path: Path) -> None:
        data = self.call("Page.captureScreenshot", session=True, format="png")["data"]
        path.write_bytes(base64.b64decode(data))
