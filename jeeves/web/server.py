"""Running the page: bind the socket, print the address with its token, serve until stopped.

The socket is bound before uvicorn starts, so ``--port 0`` picks a free port and the printed
address is the real one; tests use the same class to serve on a free loopback port in a thread.
"""

from __future__ import annotations

import logging
import socket
import threading
import time

import uvicorn

from jeeves.errors import JeevesError
from jeeves.service import Jeeves
from jeeves.web.access import LOOPBACK_NAMES, new_token
from jeeves.web.pages import create_app

log = logging.getLogger(__name__)

#: Seconds ``start`` waits for the server thread to accept connections.
START_TIMEOUT = 30.0


class WebServer:
    """The page of one ``Jeeves`` on ``host:port`` (port 0: any free one), behind ``token``."""

    def __init__(self, jeeves: Jeeves, *, host: str = "127.0.0.1", port: int = 0, token: str | None = None) -> None:
        self.host, self.token = host, token or new_token()
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        try:
            self.socket = socket.create_server((host, port), family=family)
        except OSError as exc:
            raise JeevesError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from exc
        self.port = self.socket.getsockname()[1]
        config = uvicorn.Config(create_app(jeeves, token=self.token, host=host), log_level="warning",
                                access_log=False, lifespan="off")
        self.server = uvicorn.Server(config)
        self._thread: threading.Thread | None = None

    @property
    def base_url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    @property
    def url(self) -> str:
        """The address to open: it carries the token, which the page swaps for a session cookie."""
        return f"{self.base_url}/?token={self.token}"

    def run(self) -> None:
        """Serve in this thread until interrupted (Ctrl-C, SIGTERM)."""
        try:
            self.server.run(sockets=[self.socket])
        finally:
            self.socket.close()

    def start(self) -> "WebServer":
        """Serve in a background thread; returns once connections are accepted."""
        self._thread = threading.Thread(target=self.run, name="jeeves-web", daemon=True)
        self._thread.start()
        deadline = time.monotonic() + START_TIMEOUT
        while not self.server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise JeevesError("the web server did not start")
            time.sleep(0.02)
        return self

    def stop(self) -> None:
        self.server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout=10)


def serve(jeeves: Jeeves, *, host: str = "127.0.0.1", port: int = 8765, show=print) -> None:
    """``jeeves web``: print the address, load the model in the background (the reasons shown
    with each alert need it; the rest of the page does not), and serve until interrupted."""
    server = WebServer(jeeves, host=host, port=port)
    if host not in LOOPBACK_NAMES:
        log.warning("web: listening on %s over plain HTTP: anyone who can watch the network can read the token; "
                    "prefer the default 127.0.0.1 and an SSH tunnel", host)
    show(f"Jeeves review page (open it in your browser; the token is your password):\n    {server.url}")
    threading.Thread(target=_load_model, args=(jeeves,), name="jeeves-web-model", daemon=True).start()
    server.run()


def _load_model(jeeves: Jeeves) -> None:
    try:
        jeeves.model  # noqa: B018 - loaded now rather than on the first page that explains an alert
    except JeevesError as exc:
        log.warning("web: the model cannot be loaded, so alerts are shown without their reasons: %s", exc)
