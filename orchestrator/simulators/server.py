"""Serve the simulators over real HTTP, in a background thread or in the foreground.

Each simulator runs in its own threaded wsgiref server (one thread per
connection, daemon threads, no access log on stderr):

>>> with SimulatorServer(ProblemHandler(execution_delay=0.1)) as server:  # doctest: +SKIP
...     requests.get(f"{server.url}/query/programming_problems/").json()

For the CLI, :func:`run_simulators` starts both and blocks until Ctrl+C or
SIGTERM; tests use :func:`start_simulators`, which returns at once, and
:func:`upstream_environment` to point an orchestrator at them.
"""

from __future__ import annotations

import io
import logging
import signal
import socket
import socketserver
import sys
import threading
from types import FrameType, TracebackType
from typing import Any, Callable, Mapping
from wsgiref.simple_server import ServerHandler, WSGIRequestHandler, WSGIServer, make_server

from .common import Simulator
from .faults import Faults
from .hint_backend import ADD_REFLECTION_PATH, ADD_REQUEST_PATH, HintBackend
from .problem_handler import EXECUTE_PATH, PROBLEMS_PATH, RESULT_PATH, ProblemHandler

logger = logging.getLogger(__name__)

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PROBLEMS_PORT = 8002
DEFAULT_HINT_PORT = 8001
DEFAULT_ORCHESTRATOR_URL = "http://127.0.0.1:8000"
CALLBACK_PATH = "/ai_hint/save/"


class _QuietHandler(WSGIRequestHandler):
    """wsgiref's handler without the access-log line on stderr for every request."""

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - base signature
        logger.debug("%s %s", self.address_string(), format % args)


class _KeepAliveHandler(_QuietHandler):
    """wsgiref's handler, but HTTP/1.1 with persistent connections.

    wsgiref answers one request per connection; a client that keeps its connections
    (as the orchestrator's pooled ``requests`` sessions do) would pay a TCP
    handshake and a thread start per call, which made the simulators, not the
    orchestrator, the bound in benchmarks. A connection is kept only when the answer
    had a ``Content-Length`` and the request asked for nothing else; an idle one is
    closed after :attr:`timeout` seconds, and all of them when the server stops.
    """

    protocol_version = "HTTP/1.1"
    timeout = 30
    # The status line, headers and body go out in separate writes: without this,
    # Nagle's algorithm holds the last one back until the client's delayed ACK.
    disable_nagle_algorithm = True

    def handle(self) -> None:
        self.close_connection = True
        self.handle_one_request()
        while not self.close_connection:
            self.handle_one_request()

    def handle_one_request(self) -> None:
        try:
            self.raw_requestline = self.rfile.readline(65537)
        except (TimeoutError, OSError):
            self.close_connection = True
            return
        if not self.raw_requestline:
            self.close_connection = True
            return
        if len(self.raw_requestline) > 65536:
            self.close_connection = True
            self.send_error(414)
            return
        if not self.parse_request():
            self.close_connection = True
            return
        environ = self.get_environ()
        # The whole body is read here, so that whatever the app leaves unread never
        # runs into the next request on this connection.
        length = int(environ.get("CONTENT_LENGTH") or 0)
        body = self.rfile.read(length) if length > 0 else b""
        if "chunked" in (self.headers.get("Transfer-Encoding") or "").lower():
            self.close_connection = True  # not supported on a kept connection; read to EOF
            body = self.rfile.read()
        handler = _KeptServerHandler(io.BytesIO(body), self.wfile, self.get_stderr(), environ, multithread=True)
        handler.request_handler = self
        handler.run(self.server.get_app())
        if not handler.keep:
            self.close_connection = True  # a dropped answer, or one the client can only end at EOF


class _KeptServerHandler(ServerHandler):
    """Answers in HTTP/1.1 and notes, before wsgiref forgets it, whether the answer
    was complete with a length (only then can the connection carry another)."""

    http_version = "1.1"
    keep = False

    def close(self) -> None:
        self.keep = bool(self.headers_sent and self.headers is not None and "Content-Length" in self.headers)
        super().close()


class _ThreadingWSGIServer(socketserver.ThreadingMixIn, WSGIServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self._open: set[socket.socket] = set()
        self._open_lock = threading.Lock()
        super().__init__(*args, **kwargs)

    def process_request(self, request: Any, client_address: Any) -> None:
        with self._open_lock:
            self._open.add(request)
        super().process_request(request, client_address)

    def shutdown_request(self, request: Any) -> None:
        with self._open_lock:
            self._open.discard(request)
        super().shutdown_request(request)

    def close_connections(self) -> None:
        """Hang up every open (kept-alive) connection: a stopped simulator answers nothing."""
        with self._open_lock:
            connections = list(self._open)
        for connection in connections:
            try:
                connection.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def server_bind(self) -> None:
        # NOTE: HTTPServer.server_bind calls socket.getfqdn(), a reverse DNS
        # lookup that can take seconds on machines without a resolver.
        socketserver.TCPServer.server_bind(self)
        host, port = self.server_address[:2]
        self.server_name = str(host)
        self.server_port = int(port)
        self.setup_environ()

    def handle_error(self, request: Any, client_address: Any) -> None:
        exc = sys.exc_info()[1]
        if isinstance(exc, (ConnectionError, TimeoutError)):
            return  # clients hang up; that is routine, not an error of ours
        logger.exception("simulator failed to handle a request from %s", client_address)


class _ThreadingWSGIServerV6(_ThreadingWSGIServer):
    address_family = socket.AF_INET6


class SimulatorServer:
    """One simulator on one HTTP port.

    ``port=0`` picks a free port when the server starts; :attr:`port` and
    :attr:`url` then tell which. Stopping the server also stops the simulator's
    background work (pending executions and callbacks).
    """

    def __init__(self, simulator: Simulator, *, host: str = DEFAULT_HOST, port: int = 0) -> None:
        self.simulator = simulator
        self.host = host
        self._port = port
        self._httpd: _ThreadingWSGIServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        """The listening port (the requested one before :meth:`start`)."""
        if self._httpd is not None:
            return int(self._httpd.server_address[1])
        return self._port

    @property
    def url(self) -> str:
        """Base URL without a trailing slash, e.g. ``http://127.0.0.1:8002``."""
        host = {"0.0.0.0": "127.0.0.1", "::": "::1", "": "127.0.0.1"}.get(self.host, self.host)
        if ":" in host:
            host = f"[{host}]"
        return f"http://{host}:{self.port}"

    def _bind(self) -> _ThreadingWSGIServer:
        if self._httpd is None:
            server_class = _ThreadingWSGIServerV6 if ":" in self.host else _ThreadingWSGIServer
            self._httpd = make_server(
                self.host, self._port, self.simulator, server_class=server_class, handler_class=_KeepAliveHandler
            )
        return self._httpd

    def start(self) -> "SimulatorServer":
        """Listen and serve in a daemon thread; returns once the socket listens.

        Raises:
            OSError: the address is in use or cannot be bound.
            RuntimeError: the server is already running.
        """
        if self._thread is not None:
            raise RuntimeError(f"{self.simulator.name} simulator is already running")
        httpd = self._bind()
        self._thread = threading.Thread(
            target=httpd.serve_forever,
            kwargs={"poll_interval": 0.02},
            name=f"sim-server-{self.port}",
            daemon=True,
        )
        self._thread.start()
        return self

    def serve_forever(self) -> None:
        """Serve in the calling thread until interrupted; then release the port."""
        httpd = self._bind()
        try:
            httpd.serve_forever(poll_interval=0.2)
        finally:
            httpd.server_close()
            httpd.close_connections()
            self.simulator.close()
            self._httpd = None

    def stop(self) -> None:
        """Stop serving, release the port and stop the simulator's background work."""
        if self._thread is not None and self._httpd is not None:
            self._httpd.shutdown()
            self._thread.join(timeout=5)
        if self._httpd is not None:
            self._httpd.server_close()
            self._httpd.close_connections()
        self._httpd = None
        self._thread = None
        self.simulator.close()

    def __enter__(self) -> "SimulatorServer":
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def __repr__(self) -> str:
        return f"<SimulatorServer {self.simulator.name} {self.url}>"


def callback_url_for(orchestrator_url: str) -> str:
    """The orchestrator's ``/ai_hint/save/`` URL from its base URL (or that URL itself)."""
    url = orchestrator_url.rstrip("/")
    if url.endswith(CALLBACK_PATH.rstrip("/")):
        return url + "/"
    return url + CALLBACK_PATH


def start_simulators(
    problems_port: int = 0,
    hint_port: int = 0,
    orchestrator_url: str = DEFAULT_ORCHESTRATOR_URL,
    host: str = DEFAULT_HOST,
    *,
    execution_delay: float = 0.5,
    case_timeout: float = 2.0,
    hint_delay: float = 1.0,
    generation_failure_rate: float = 0.0,
    callback_token: str | None = None,
    callback_when: str = "reflection",
    callback_attempts: int = 8,
    problem_faults: Faults | Mapping[str, Any] | None = None,
    hint_faults: Faults | Mapping[str, Any] | None = None,
    seed: int | None = None,
) -> tuple[SimulatorServer, SimulatorServer]:
    """Start both simulators in background threads and return ``(problems, hints)``.

    Ports default to 0 (free ports, for tests); :func:`run_simulators` uses the
    old deployment's 8002 and 8001. Stop both servers with ``.stop()``.

    Raises:
        OSError: a port cannot be bound (nothing is left running then).
        ValueError: an option is out of range.
    """
    problems = ProblemHandler(execution_delay=execution_delay, case_timeout=case_timeout, faults=problem_faults)
    hints = HintBackend(
        callback_url=callback_url_for(orchestrator_url),
        callback_token=callback_token,
        hint_delay=hint_delay,
        generation_failure_rate=generation_failure_rate,
        callback_when=callback_when,
        callback_attempts=callback_attempts,
        seed=seed,
        faults=hint_faults,
    )
    problem_server = SimulatorServer(problems, host=host, port=problems_port).start()
    try:
        hint_server = SimulatorServer(hints, host=host, port=hint_port).start()
    except BaseException:
        problem_server.stop()
        raise
    return problem_server, hint_server


def upstream_environment(problem_server: SimulatorServer, hint_server: SimulatorServer) -> dict[str, str]:
    """The orchestrator's ``BACKEND_*_URL`` variables pointing at these simulators."""
    problems, hints = problem_server.url, hint_server.url
    return {
        "BACKEND_PROBLEM_HANDLER_GET_PROBLEMS_URL": problems + PROBLEMS_PATH,
        "BACKEND_PROBLEM_HANDLER_EXECUTE_CODE_URL": problems + EXECUTE_PATH,
        "BACKEND_PROBLEM_HANDLER_GET_EXECUTION_RESULT_URL": problems + RESULT_PATH,
        "BACKEND_HINT_ADD_REQUEST_URL": hints + ADD_REQUEST_PATH,
        "BACKEND_HINT_ADD_REFLECTION_URL": hints + ADD_REFLECTION_PATH,
    }


def run_simulators(
    problems_port: int = DEFAULT_PROBLEMS_PORT,
    hint_port: int = DEFAULT_HINT_PORT,
    orchestrator_url: str = DEFAULT_ORCHESTRATOR_URL,
    host: str = DEFAULT_HOST,
    *,
    announce: Callable[[str], None] = print,
    **options: Any,
) -> None:
    """Run both simulators in the foreground until Ctrl+C or SIGTERM.

    ``options`` are the keyword options of :func:`start_simulators`. One line
    naming both URLs (and the callback URL) goes to ``announce`` at start.

    Raises:
        OSError: a port cannot be bound.
        ValueError: an option is out of range.
    """
    problem_server, hint_server = start_simulators(problems_port, hint_port, orchestrator_url, host, **options)
    stop = threading.Event()
    restore = _stop_on_sigterm(stop)
    try:
        announce(
            f"Problem Handler simulator at {problem_server.url}/ and AI Hint backend simulator at "
            f"{hint_server.url}/ (hints go to {callback_url_for(orchestrator_url)}); Ctrl+C stops them"
        )
        while not stop.wait(0.5):
            pass
    except KeyboardInterrupt:
        pass
    finally:
        restore()
        hint_server.stop()
        problem_server.stop()


def _stop_on_sigterm(stop: threading.Event) -> Callable[[], None]:
    """Make SIGTERM set ``stop`` (main thread only); return a function undoing it."""
    if threading.current_thread() is not threading.main_thread():
        return lambda: None

    def handler(signum: int, frame: FrameType | None) -> None:
        stop.set()

    previous = signal.signal(signal.SIGTERM, handler)
    return lambda: signal.signal(signal.SIGTERM, previous)


__all__ = [
    "DEFAULT_HINT_PORT",
    "DEFAULT_HOST",
    "DEFAULT_ORCHESTRATOR_URL",
    "DEFAULT_PROBLEMS_PORT",
    "SimulatorServer",
    "callback_url_for",
    "run_simulators",
    "start_simulators",
    "upstream_environment",
]
