"""Run an ASGI app under a real uvicorn on a free loopback port, in a thread, for HTTP tests."""

from __future__ import annotations

import contextlib
import socket
import threading
import time


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def live_server(app, *, timeout: float = 60.0):
    """Yield the base URL (http://127.0.0.1:PORT) while uvicorn serves ``app``; stop it afterwards."""
    import uvicorn

    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=free_port(), log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + timeout
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("uvicorn did not start")
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{server.config.port}"
    finally:
        server.should_exit = True
        thread.join(timeout=30)


def wait_until_healthy(url: str, *, timeout: float, still_running=lambda: None, interval: float = 0.2) -> None:
    """Poll ``url``/healthz until it answers 200 (connection errors and 503s mean "not yet");
    ``still_running`` is called each round and should raise when the server has died."""
    import httpx

    deadline = time.monotonic() + timeout
    while True:
        still_running()
        try:
            if httpx.get(url + "/healthz", timeout=10).status_code == 200:
                return
        except httpx.TransportError:
            pass
        assert time.monotonic() < deadline, f"{url} did not become healthy within {timeout:.0f} s"
        time.sleep(interval)
