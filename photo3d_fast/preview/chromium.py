"""Drive a headless Chromium over the DevTools protocol (for the preview's browser test
and benchmark): launch, evaluate JavaScript, simulate a mouse drag, take a screenshot.

Python only: the protocol's WebSocket is spoken with aiohttp (the preview extra), so no
Node.js or Playwright is needed. Chromium is looked up as ``$PHOTO3D_CHROMIUM``,
``chromium``, ``chromium-browser``, ``google-chrome``. Without a GPU, WebGL2 runs on
SwiftShader (software GL), which current Chromium enables only with
``--enable-unsafe-swiftshader``; fine for a local test page.
"""

from __future__ import annotations

import asyncio
import base64
import itertools
import json
import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

CANDIDATES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")


def find_chromium() -> str | None:
    """The Chromium executable, or None."""
    env = os.environ.get("PHOTO3D_CHROMIUM")
    if env:
        return env if Path(env).exists() else None
    for name in CANDIDATES:
        path = shutil.which(name)
        if path:
            return path
    return None


class ChromiumError(RuntimeError):
    pass


class Chromium:
    """One headless Chromium with one page. Use ``async with Chromium(url) as page``."""

    def __init__(self, url: str, size: tuple[int, int] = (1280, 800), executable: str | None = None,
                 timeout: float = 60.0) -> None:
        self.url = url
        self.size = size
        self.executable = executable or find_chromium()
        if self.executable is None:
            raise ChromiumError("no Chromium found (install Debian's chromium or set PHOTO3D_CHROMIUM)")
        self.timeout = timeout
        self._ids = itertools.count(1)
        self.console: list[str] = []

    async def __aenter__(self) -> "Chromium":
        import aiohttp

        self._dir = tempfile.mkdtemp(prefix="photo3d-chromium-")
        self._log = open(Path(self._dir) / "chromium.log", "wb")
        args = [
            self.executable, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
            "--disable-component-update", "--disable-sync", "--no-first-run", "--no-default-browser-check",
            "--use-angle=swiftshader", "--enable-unsafe-swiftshader", "--mute-audio",
            f"--user-data-dir={self._dir}/profile", "--remote-debugging-port=0",
            f"--window-size={self.size[0]},{self.size[1]}", "about:blank",
        ]
        self._proc = subprocess.Popen(args, stdout=self._log, stderr=self._log, stdin=subprocess.DEVNULL)
        port_file = Path(self._dir) / "profile" / "DevToolsActivePort"
        deadline = time.monotonic() + self.timeout
        while not port_file.exists() or not port_file.read_text().strip():
            if self._proc.poll() is not None:
                raise ChromiumError(f"chromium exited with {self._proc.returncode}: {self.log_tail()}")
            if time.monotonic() > deadline:
                raise ChromiumError("chromium did not open its DevTools port in time")
            await asyncio.sleep(0.1)
        port = int(port_file.read_text().split()[0])
        self._session = aiohttp.ClientSession()
        async with self._session.get(f"http://127.0.0.1:{port}/json/list") as r:
            targets = await r.json()
        page = next(t for t in targets if t.get("type") == "page")
        self._ws = await self._session.ws_connect(page["webSocketDebuggerUrl"], max_msg_size=0)
        await self.send("Runtime.enable")
        await self.send("Page.enable")
        await self.send("Page.navigate", {"url": self.url})
        return self

    async def __aexit__(self, *exc) -> None:
        try:
            await self._ws.close()
            await self._session.close()
        finally:
            self._proc.terminate()
            try:
                self._proc.wait(10)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait()
            self._log.close()
            shutil.rmtree(self._dir, ignore_errors=True)

    def log_tail(self, n: int = 2000) -> str:
        try:
            return (Path(self._dir) / "chromium.log").read_text(errors="replace")[-n:]
        except OSError:
            return ""

    async def send(self, method: str, params: dict | None = None) -> dict:
        """One DevTools command; returns its result (events in between are kept as console lines)."""
        mid = next(self._ids)
        await self._ws.send_str(json.dumps({"id": mid, "method": method, "params": params or {}}))
        while True:
            msg = await asyncio.wait_for(self._ws.receive(), self.timeout)
            if msg.type.name != "TEXT":
                raise ChromiumError(f"DevTools connection closed ({msg.type.name}); {self.log_tail()}")
            data = json.loads(msg.data)
            if data.get("method") == "Runtime.consoleAPICalled":
                args = data["params"].get("args", [])
                self.console.append(" ".join(str(a.get("value", a.get("description", ""))) for a in args))
            elif data.get("method") == "Runtime.exceptionThrown":
                self.console.append("exception: " + json.dumps(data["params"].get("exceptionDetails", {}))[:500])
            if data.get("id") == mid:
                if "error" in data:
                    raise ChromiumError(f"{method}: {data['error']}")
                return data.get("result", {})

    async def evaluate(self, expression: str):
        """The value of a JavaScript expression (promises awaited)."""
        result = await self.send("Runtime.evaluate", {"expression": expression, "returnByValue": True, "awaitPromise": True})
        if "exceptionDetails" in result:
            raise ChromiumError(f"{expression!r} threw: {json.dumps(result['exceptionDetails'])[:500]}")
        return result["result"].get("value")

    async def wait_for(self, expression: str, timeout: float = 60.0, interval: float = 0.2):
        """Poll until ``expression`` is truthy; returns its value."""
        deadline = time.monotonic() + timeout
        while True:
            value = await self.evaluate(expression)
            if value:
                return value
            if time.monotonic() > deadline:
                raise ChromiumError(f"timed out waiting for {expression!r}; console: {self.console[-5:]}")
            await asyncio.sleep(interval)

    async def drag(self, start: tuple[float, float], end: tuple[float, float], steps: int = 10, pause: float = 0.03) -> None:
        """A left-button mouse drag from ``start`` to ``end`` (CSS pixels of the viewport)."""
        x0, y0 = start
        x1, y1 = end
        await self.send("Input.dispatchMouseEvent", {"type": "mouseMoved", "x": x0, "y": y0})
        await self.send("Input.dispatchMouseEvent", {"type": "mousePressed", "x": x0, "y": y0, "button": "left", "buttons": 1, "clickCount": 1})
        for i in range(1, steps + 1):
            x, y = x0 + (x1 - x0) * i / steps, y0 + (y1 - y0) * i / steps
            await self.send("Input.dispatchMouseEvent", {"type": "mouseMoved", "x": x, "y": y, "button": "left", "buttons": 1})
            await asyncio.sleep(pause)
        await self.send("Input.dispatchMouseEvent", {"type": "mouseReleased", "x": x1, "y": y1, "button": "left", "buttons": 0, "clickCount": 1})

    async def screenshot(self, path: str | Path) -> Path:
        data = await self.send("Page.captureScreenshot", {"format": "png"})
        path = Path(path)
        path.write_bytes(base64.b64decode(data["data"]))
        return path
