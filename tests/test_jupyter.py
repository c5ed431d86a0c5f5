"""A real Jupyter server from the installed environment runs 00_metrics through its REST and kernel APIs.

No papermill here: this is what JupyterLab does when a person runs the
notebook, so figures must come back as ``image/png`` display data, progress
bars must be widgets, and the files must land where the runner writes them.
"""

from __future__ import annotations

import asyncio
import json
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import nbformat
import pytest

from emotools import notebooks, paths, progress

TOKEN = uuid.uuid4().hex
CELL_TIMEOUT_S = 180.0


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Server:
    """A jupyter_server process on a free localhost port, with a token and a temporary root."""

    def __init__(self, root: Path, env: dict[str, str], log: Path) -> None:
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = log
        with log.open("wb") as sink:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "jupyter_server", f"--ServerApp.port={self.port}", "--ServerApp.ip=127.0.0.1",
                 f"--IdentityProvider.token={TOKEN}", f"--ServerApp.root_dir={root}", "--ServerApp.open_browser=False",
                 "--ServerApp.port_retries=0", "--ServerApp.allow_root=True"],
                env=env, stdout=subprocess.DEVNULL, stderr=sink,
            )

    def request(self, method: str, path: str, body: dict | None = None) -> Any:
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(f"{self.url}{path}", data=data, method=method,
                                     headers={"Authorization": f"token {TOKEN}", "Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=60) as response:
            text = response.read()
        return json.loads(text) if text else None

    def wait_ready(self, timeout_s: float = 120.0) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"jupyter server exited: {self.log.read_text()[-2000:]}")
            try:
                self.request("GET", "/api/status")
                return
            except (urllib.error.URLError, ConnectionError):
                time.sleep(0.5)
        raise TimeoutError(f"jupyter server not ready after {timeout_s} s")

    def stop(self) -> None:
        try:
            self.request("POST", "/api/shutdown")
            self.process.wait(timeout=30)
        except Exception:  # noqa: BLE001  (a server that will not stop is killed below)
            pass
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=30)


@pytest.fixture()
def server(tmp_path: Path, isolated_dirs: dict[str, Path]) -> Iterator[Server]:
    """A running server whose kernels write into the test's folders and are not a batch run."""
    env = {k: v for k, v in os.environ.items() if k not in (progress.BATCH_ENV, "MPLBACKEND")}
    env["JUPYTER_RUNTIME_DIR"] = str(tmp_path / "runtime")
    root = tmp_path / "root"
    root.mkdir()
    notebooks.ensure_kernel()
    running = Server(root, env, tmp_path / "server.log")
    try:
        running.wait_ready()
        yield running
    finally:
        running.stop()


def _message(code: str, session: str) -> dict:
    msg_id = uuid.uuid4().hex
    header = {"msg_id": msg_id, "username": "test", "session": session, "msg_type": "execute_request",
              "version": "5.3", "date": ""}
    content = {"code": code, "silent": False, "store_history": True, "user_expressions": {},
               "allow_stdin": False, "stop_on_error": True}
    return {"header": header, "parent_header": {}, "metadata": {}, "content": content, "channel": "shell"}


async def _execute_all(url: str, codes: list[str]) -> list[dict]:
    """Run each code over the kernel's websocket; per code: reply status and iopub messages."""
    from tornado.websocket import websocket_connect

    connection = await asyncio.wait_for(websocket_connect(url), timeout=60)
    session = uuid.uuid4().hex
    results = []
    try:
        for code in codes:
            request = _message(code, session)
            await connection.write_message(json.dumps(request))
            result: dict = {"code": code, "outputs": [], "status": None, "idle": False}
            while result["status"] is None or not result["idle"]:
                raw = await asyncio.wait_for(connection.read_message(), timeout=CELL_TIMEOUT_S)
                assert raw is not None, "the kernel's websocket closed"
                msg = json.loads(raw)
                if msg.get("parent_header", {}).get("msg_id") != request["header"]["msg_id"]:
                    continue
                kind = msg["header"]["msg_type"]
                if kind == "execute_reply":
                    result["status"] = msg["content"]["status"]
                    result["error"] = msg["content"].get("evalue")
                elif kind == "status" and msg["content"]["execution_state"] == "idle":
                    result["idle"] = True
                elif kind in ("display_data", "execute_result", "stream", "error"):
                    result["outputs"].append({"type": kind, **msg["content"]})
            results.append(result)
    finally:
        connection.close()
    return results


def test_00_metrics_runs_through_a_jupyter_server(server: Server, isolated_dirs: dict[str, Path]) -> None:
    nb = nbformat.read(paths.NOTEBOOKS_DIR / "00_metrics.ipynb", as_version=4)
    codes = [c.source for c in nb.cells if c.cell_type == "code" and c.source.strip()]
    assert "parameters" in nb.cells[1].metadata.get("tags", []) and codes[0] == nb.cells[1].source
    preset = notebooks.smoke_preset(paths.NOTEBOOKS_DIR / "00_metrics.ipynb")
    # what papermill would inject after the parameters cell: the notebook's smoke preset
    codes.insert(1, "\n".join(f"{name} = {value!r}" for name, value in preset.items()))
    codes.append("from emotools import progress\nprint(progress._bar_class().__module__)")

    created = server.request("POST", "/api/sessions", {"path": "00_metrics.ipynb", "type": "notebook",
                                                       "name": "00_metrics", "kernel": {"name": notebooks.KERNEL_NAME}})
    kernel = created["kernel"]["id"]
    try:
        ws_url = f"ws://127.0.0.1:{server.port}/api/kernels/{kernel}/channels?token={TOKEN}"
        results = asyncio.run(_execute_all(ws_url, codes))
    finally:
        server.request("DELETE", f"/api/sessions/{created['id']}")

    failed = [(r["code"][:60], r.get("error")) for r in results if r["status"] != "ok"]
    assert not failed, failed
    images = [o for r in results for o in r["outputs"]
              if o["type"] == "display_data" and "image/png" in o["data"]]
    saved = sorted(p.name for p in (isolated_dirs["figures"] / "00_metrics").glob("*.png"))
    assert saved == ["metric_bars.png", "toy_predictions.png"]
    assert len(images) == len(saved)
    assert all(o["data"]["image/png"] and o["metadata"]["image/png"]["width"] > 100 for o in images)
    assert (isolated_dirs["results"] / "00_metrics.csv").is_file()
    printed = "".join(o.get("text", "") for o in results[-1]["outputs"] if o["type"] == "stream")
    assert printed.strip() == "tqdm.notebook", "an interactive kernel should get widget progress bars"
    assert not server.request("GET", "/api/sessions")
