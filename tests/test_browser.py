"""The smoke-built book opened in headless Chromium, page by page, as a reader's browser opens it.

Fails on a JavaScript error or a console error, a resource of the book that does not load (an image, a script), a
missing image, a broken internal link, or a glue reference rendered as its raw key. External resources (CDNs) are
not checked: CI has no network beyond the package registries. Chromium is Debian's ``chromium`` package
(``.ci/run`` installs it when missing); the DevTools protocol is spoken over tornado's websocket client.
"""

from __future__ import annotations

import asyncio
import functools
import http.server
import json
import re
import shutil
import subprocess
import tempfile
import threading
import time
import urllib.request
from pathlib import Path
from urllib.parse import urlparse

import pytest

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="needs Debian's chromium (`.ci/run` installs it)")
RAW_GLUE = re.compile(r"\.ipynb::|\{glue:|glue:text")
UNREADABLE = re.compile(r"\b(nan|NaN)\b|\b\d{4,}\.0{3,}\b|\b\d\.\d{6}e[+-]\d\d\b")
"""A missing value written as NaN, an integer written as a float (65536.00000), a float in raw e-notation."""


@pytest.fixture(scope="module")
def served(smoke_book):
    """The built book over HTTP on a free local port (as a reader's browser would load it)."""
    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args) -> None:
            pass

    handler = functools.partial(Quiet, directory=str(smoke_book))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield smoke_book, f"http://127.0.0.1:{server.server_address[1]}/"
    server.shutdown()


class Browser:
    """Headless Chromium driven over the DevTools protocol: ``visit(url)`` gives what a reader's page did."""

    def __init__(self) -> None:
        self.profile = tempfile.mkdtemp()
        self.proc = subprocess.Popen([CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu",
                                      "--remote-debugging-port=0", f"--user-data-dir={self.profile}", "about:blank"],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        port_file = Path(self.profile) / "DevToolsActivePort"
        deadline = time.time() + 30
        while not (port_file.exists() and port_file.read_text().strip()):
            assert time.time() < deadline, "chromium did not start"
            time.sleep(0.1)
        port = port_file.read_text().split()[0]
        pages = json.loads(urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list").read())
        self.ws_url = next(p["webSocketDebuggerUrl"] for p in pages if p["type"] == "page")
        self.loop = asyncio.new_event_loop()
        asyncio.set_event_loop(self.loop)
        self.ws = self.loop.run_until_complete(self._connect())
        self.n = 0
        for method in ("Runtime.enable", "Log.enable", "Page.enable"):
            self.call(method)
        # a laptop's window: the narrowest page layout with the table of contents beside the text
        self.call("Emulation.setDeviceMetricsOverride", width=1280, height=900, deviceScaleFactor=1, mobile=False)

    async def _connect(self):
        from tornado.websocket import websocket_connect

        return await websocket_connect(self.ws_url, max_message_size=200_000_000)

    def _send(self, method: str, **params) -> int:
        self.n += 1
        self.loop.run_until_complete(self.ws.write_message(json.dumps({"id": self.n, "method": method,
                                                                       "params": params})))
        return self.n

    def _read(self, timeout: float = 30) -> dict:
        return json.loads(self.loop.run_until_complete(asyncio.wait_for(self.ws.read_message(), timeout)))

    def call(self, method: str, **params) -> dict:
        i = self._send(method, **params)
        while True:
            msg = self._read()
            if msg.get("id") == i:
                return msg.get("result", {})

    def visit(self, url: str, local: str) -> dict:
        """Load ``url``; the page's errors (from resources under ``local``), broken images, links and text."""
        self._send("Page.navigate", url=url)
        errors = []
        while True:
            msg = self._read()
            method, params = msg.get("method"), msg.get("params", {})
            if method == "Page.loadEventFired":
                break
            if method == "Runtime.exceptionThrown":
                d = params["exceptionDetails"]
                errors.append(d.get("exception", {}).get("description") or d.get("text"))
            elif method == "Runtime.consoleAPICalled" and params["type"] == "error":
                errors.append(" ".join(str(a.get("value", a.get("description"))) for a in params["args"]))
            elif method == "Log.entryAdded" and params["entry"]["level"] == "error":
                source = params["entry"].get("url", "")
                if not source or source.startswith(local):
                    errors.append(f"{params['entry']['text']} {source}")
        time.sleep(0.2)  # scripts that run just after the load event
        state = self.call("Runtime.evaluate", returnByValue=True, expression="""JSON.stringify({
            images: [...document.images].filter(i => !i.complete || i.naturalWidth === 0).map(i => i.src),
            links: [...document.querySelectorAll('a[href]')].map(a => a.href),
            wide_code: [...document.querySelectorAll('div.cell_input div.highlight pre')]
                .filter(p => p.scrollWidth > p.clientWidth + 2).map(p => p.innerText.split('\\n')[0]),
            text: (() => { const b = document.body.cloneNode(true);
                            b.querySelectorAll('code, pre, script, style').forEach(e => e.remove()); return b.innerText; })()})""")
        return {"errors": errors, **json.loads(state["result"]["value"])}

    def close(self) -> None:
        self.loop.run_until_complete(asyncio.sleep(0))
        self.ws.close()
        self.proc.kill()
        self.proc.wait()
        self.loop.close()
        asyncio.set_event_loop(None)
        shutil.rmtree(self.profile, ignore_errors=True)


def test_every_page_loads_cleanly_in_chromium(served):
    root, base = served
    pages = sorted(p.relative_to(root).as_posix() for p in root.rglob("*.html")
                   if not p.relative_to(root).as_posix().startswith(("_static/", "_sources/")))
    assert len(pages) >= 20
    browser = Browser()
    problems: dict[str, list[str]] = {}
    started = time.time()
    try:
        for page in pages:
            seen = browser.visit(base + page, base)
            found = [f"console: {e}" for e in seen["errors"]]
            found += [f"image does not load: {src}" for src in seen["images"]]
            for href in seen["links"]:
                target = urlparse(href)
                if not href.startswith(base) or target.path.endswith("/"):
                    continue
                path = root / target.path[len(urlparse(base).path):]
                if not path.is_file():
                    found.append(f"broken link: {href}")
            if RAW_GLUE.search(seen["text"]):
                found.append(f"raw glue: {RAW_GLUE.search(seen['text']).group(0)}")
            found += [f"unreadable number: {m.group(0)}" for m in UNREADABLE.finditer(seen["text"])][:3]
            found += [f"code wider than the page: {line}" for line in seen["wide_code"]]
            if found:
                problems[page] = found
    finally:
        browser.close()
    assert not problems, json.dumps(problems, indent=1)
    assert time.time() - started < 120, "the browser check must stay under 2 minutes"


def test_the_check_catches_what_it_claims(served, tmp_path):
    """Planted problems: a script error, a missing image, a broken internal link, a raw glue key."""
    root, base = served
    page = root / "planted.html"
    page.write_text('<html><body><img src="_static/nowhere.png"><a href="nowhere.html">x</a>'
                    "<p>../notebooks/x.ipynb::key 65536.00000</p><p><code>{glue:text} in code is fine</code></p><script>undefined_function()</script></body></html>")
    browser = Browser()
    try:
        seen = browser.visit(base + "planted.html", base)
    finally:
        browser.close()
        page.unlink()
    assert any("undefined_function" in e for e in seen["errors"])
    assert any("nowhere.png" in e for e in seen["errors"]) and seen["images"]
    assert any(h.endswith("nowhere.html") for h in seen["links"])
    assert RAW_GLUE.search(seen["text"]) and UNREADABLE.search(seen["text"])
