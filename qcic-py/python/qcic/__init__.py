"""qcic: report Python batch jobs to qcic watchers.

A job says *started*, *progress*, *success*, *fail* or *alive*; qcic
watchers raise the alarm when an expected message does not arrive in time or
a job fails. No call blocks the job or stops it: a message that cannot be
queued is dropped and counted, and the process exits promptly even when every
watcher is unreachable.

    import qcic

    client = qcic.Client(["tcp://watcher-a:7700", "tcp://watcher-b:7700"])
    client.heartbeat("disk-sync")

    # The job says what it expects of itself: a watcher whose [declare]
    # policy allows it raises the alarm when a run is missing or too long.
    with client.run("nightly-etl", every="1d", grace="1h", max_runtime="2h") as run:
        run.progress("loaded 10k rows")      # an exception sends fail, then re-raises

    @client.monitor("report-mail")           # the same, around each call
    def main() -> None: ...

Or with a default client: ``qcic.init(endpoints)`` (or the environment
variable ``QCIC_ENDPOINTS``) and the module-level ``qcic.run``,
``qcic.monitor``, ``qcic.heartbeat``.
"""

from __future__ import annotations

import atexit
import datetime
import functools
import inspect
import multiprocessing.util
import os
import sys
import threading
import weakref
from types import TracebackType
from typing import (
    Any,
    Callable,
    Dict,
    Iterable,
    List,
    Literal,
    Optional,
    Tuple,
    Type,
    TypedDict,
    TYPE_CHECKING,
    TypeVar,
    Union,
    overload,
)

if TYPE_CHECKING:
    # typing.Unpack is 3.11+; the wheel supports 3.9. Annotations are never
    # evaluated at run time (from __future__ import annotations), so the
    # name is only needed by type checkers.
    from typing_extensions import Unpack

from . import _qcic
from ._errors import (
    ClientClosedError,
    ConfigurationError,
    DecodeError,
    InvalidJobError,
    InvalidMessageError,
    InvalidSpecError,
    NotInitializedError,
    QcicError,
    QueueFullError,
    RunEndedError,
    TransportError,
)
from ._qcic import MAX_FRAME_LEN, PROTOCOL_VERSION, Message, __version__

__all__ = [
    "Client",
    "ClientClosedError",
    "ConfigurationError",
    "DecodeError",
    "InvalidJobError",
    "InvalidMessageError",
    "InvalidSpecError",
    "MAX_FRAME_LEN",
    "Message",
    "NotInitializedError",
    "PROTOCOL_VERSION",
    "QcicError",
    "QueueFullError",
    "Run",
    "RunEndedError",
    "Spec",
    "TransportError",
    "__version__",
    "close",
    "declare",
    "flush",
    "get_client",
    "heartbeat",
    "init",
    "monitor",
    "run",
]

F = TypeVar("F", bound=Callable[..., Any])
Endpoints = Union[str, Iterable[str], None]
#: A duration: text as people write it (``"90s"``, ``"1h30m"``, ``"1d"``),
#: seconds, or a ``timedelta``.
Duration = Union[str, int, float, datetime.timedelta]


class Spec(TypedDict, total=False):
    """What a job expects of itself (a declaration): ``every`` or ``cron``
    (with an optional ``timezone``), and the limits of a watcher's
    ``[[job]]`` table. Channel names in ``notify``; the jobs whose ``down``
    or ``failed`` holds this one's alarms back in ``depends_on``; the job a
    step of a chain follows in ``after`` (with ``start_within``)."""

    every: Duration
    cron: str
    timezone: str
    grace: Duration
    start_within: Duration
    max_runtime: Duration
    stall_after: Duration
    min_runtime: Duration
    alert_after_failures: int
    recover_after_successes: int
    notify: Union[str, Iterable[str]]
    slow_after: float
    depends_on: Union[str, Iterable[str]]
    after: str


_DURATIONS = ("every", "grace", "start_within", "max_runtime", "stall_after", "min_runtime")


def _pairs(spec: Spec) -> List[Tuple[str, str]]:
    """The spec as (key, value) text pairs, in the native layer's terms."""
    pairs = []
    for key, value in spec.items():
        if value is None:
            continue
        if isinstance(value, bool):
            raise TypeError(f"{key} must not be a bool")
        if key in _DURATIONS and isinstance(value, datetime.timedelta):
            text = f"{round(value.total_seconds() * 1000)}ms"
        elif key in _DURATIONS and isinstance(value, (int, float)):
            if value < 0 or value != value:
                raise InvalidSpecError(f"invalid declaration: {key}: {value} is not a duration", key)
            text = f"{round(value * 1000)}ms"
        elif key in ("notify", "depends_on") and not isinstance(value, str):
            text = ",".join(value)  # type: ignore[arg-type]
        else:
            text = str(value)
        pairs.append((key, text))
    return pairs

#: How long closing a client (explicitly, or at interpreter exit) waits for delivery by default.
DEFAULT_CLOSE_TIMEOUT = 1.0


def _endpoints(endpoints: Endpoints) -> list[str]:
    if endpoints is None:
        endpoints = os.environ.get("QCIC_ENDPOINTS", "")
        if not endpoints.strip():
            raise ConfigurationError("no endpoints given and QCIC_ENDPOINTS is not set")
    if isinstance(endpoints, str):
        return [e.strip() for e in endpoints.split(",") if e.strip()]
    if isinstance(endpoints, (bytes, bytearray)):
        raise TypeError("endpoints must be a str or an iterable of str, not bytes")
    result = list(endpoints)
    for endpoint in result:
        if not isinstance(endpoint, str):
            raise TypeError(f"endpoints must be strings, got {type(endpoint).__name__}")
    return result


def _describe(exc_type: Type[BaseException], exc: Optional[BaseException]) -> str:
    text = str(exc) if exc is not None else ""
    return f"{exc_type.__name__}: {text}" if text else exc_type.__name__


_live_clients: "weakref.WeakSet[Client]" = weakref.WeakSet()
# Runs started in this interpreter, so those still unfinished when it exits
# send `fail` before their clients close (a run kept in a global is never
# collected in time for its own `fail`).
_live_runs: "weakref.WeakSet[Run]" = weakref.WeakSet()


class Client:
    """A sender to one or more qcic watchers: one socket per watcher, so each
    gets every message. Thread-safe; fork-safe (a forked child starts its own
    sender thread on first use)."""

    def __init__(
        self,
        endpoints: Endpoints = None,
        *,
        queue_capacity: int = 1024,
        close_timeout: float = DEFAULT_CLOSE_TIMEOUT,
        host: Optional[str] = None,
        server_key: Optional[str] = None,
        client_public_key: Optional[str] = None,
        client_secret_key: Optional[str] = None,
    ) -> None:
        """``endpoints``: a list, or a comma-separated string; None reads
        ``QCIC_ENDPOINTS``. ``close_timeout`` bounds the wait for delivery
        when the client is closed or the interpreter exits. ``server_key``
        (the watchers' CURVE public key, Z85) turns on encryption and
        authentication; the client key pair is optional (a fresh one
        otherwise). Unset keys come from ``QCIC_SERVER_KEY``,
        ``QCIC_CLIENT_PUBLIC_KEY`` and ``QCIC_CLIENT_SECRET_KEY``."""
        self._close_timeout = float(close_timeout)
        self._native = _qcic.Client(
            _endpoints(endpoints),
            queue_capacity=queue_capacity,
            close_timeout=self._close_timeout,
            host=host,
            server_key=server_key,
            client_public_key=client_public_key,
            client_secret_key=client_secret_key,
        )
        _live_clients.add(self)

    @property
    def host(self) -> str:
        """The host name sent with every message."""
        return self._native.host

    def heartbeat(self, job: str) -> bool:
        """Says the job is alive. True if queued, False if dropped (queue full)."""
        return self._native.heartbeat(job)

    def fail(self, job: str, text: Optional[str] = None, *, exit_code: Optional[int] = None) -> bool:
        """Reports a failure of the job outside any run."""
        return self._native.fail(job, text, exit_code)

    def start(self, job: str) -> "Run":
        """Begins a run now and sends ``start``; end it with ``success()`` or ``fail()``."""
        return Run(self, job, self._native.start(job))

    def run(self, job: str, **spec: Unpack[Spec]) -> "Run":
        """A run to use with ``with``: ``start`` on entry, ``success`` on normal
        exit, ``fail`` ("ExcType: message") if an exception escapes, which is
        then re-raised. With a declaration (``every="1d"``, ...; see
        ``declare``), it is declared on entry, before the ``start``."""
        return Run(self, job, spec=_checked(job, spec))

    @overload
    def monitor(self, job: F) -> F: ...
    @overload
    def monitor(self, job: Optional[str] = None, **spec: Unpack[Spec]) -> Callable[[F], F]: ...

    def monitor(self, job: Union[str, Callable[..., Any], None] = None, **spec: Unpack[Spec]) -> Any:
        """Decorator: each call of the function is a run of ``job`` (default:
        the function's name). Works for plain and ``async`` functions. With
        a declaration (``every="1d"``, ...), each call declares first."""
        return _monitor(lambda: self, job, spec)

    def send_message(self, message: Message) -> bool:
        """Sends a message exactly as given (every field is the caller's)."""
        return self._native.send_message(message)

    def declare(self, job: str, **spec: Unpack[Spec]) -> bool:
        """Tells the watchers what ``job`` expects of itself, so that one
        whose ``[declare]`` policy allows it watches the job without a
        ``[[job]]`` in its configuration::

            client.declare("nightly-etl", every="1d", grace="1h", max_runtime="2h")
            client.declare("report", cron="30 2 * * 1-5", timezone="Europe/London")

        Sent again before the job's next message after each reconnection to
        a watcher, and at most every 5 minutes. Raises ``InvalidSpecError``
        (its ``key`` names the culprit) for a bad declaration; True if
        queued."""
        return self._native.declare(job, _pairs(spec))

    def flush(self, timeout: float = 2.0) -> bool:
        """Waits (GIL released) until everything queued was handed to libzmq."""
        return self._native.flush(timeout)

    def close(self, timeout: float = 2.0) -> bool:
        """Stops sending; waits (GIL released) at most ``timeout`` seconds for
        delivery. True only if everything was delivered."""
        return self._native.close(timeout)

    def stats(self) -> Dict[str, int]:
        """Counters of this process's messages: queued, sent, dropped_*."""
        return dict(self._native.stats())

    def __enter__(self) -> "Client":
        return self

    def __exit__(
        self,
        exc_type: Optional[Type[BaseException]],
        exc: Optional[BaseException],
        tb: Optional[TracebackType],
    ) -> None:
        self.close(self._close_timeout)


class Run:
    """One run of a job. Dropped (garbage-collected) unfinished, it sends ``fail``."""

    def __init__(
        self,
        client: Client,
        job: str,
        native: Optional[_qcic.Run] = None,
        spec: Optional[List[Tuple[str, str]]] = None,
    ) -> None:
        self._client = client
        self._job = job
        self._spec = spec
        self._native = native
        self._pid = os.getpid()
        if native is not None:
            _live_runs.add(self)

    @property
    def job(self) -> str:
        return self._job

    @property
    def id(self) -> int:
        """The run id carried by this run's messages."""
        return self._started().id

    @property
    def ended(self) -> bool:
        return self._native is not None and self._native.ended

    def _started(self) -> _qcic.Run:
        if self._native is None:
            raise RunEndedError(f"this run of {self._job!r} has not started: use it with `with`")
        return self._native

    def progress(self, text: str) -> bool:
        """Reports that the run is alive, with a short note (cut to 1024 bytes)."""
        return self._started().progress(text)

    def success(self) -> bool:
        """Ends the run well."""
        return self._started().success()

    def fail(self, text: Optional[str] = None, *, exit_code: Optional[int] = None) -> bool:
        """Ends the run as failed."""
        return self._started().fail(text, exit_code)

    def __enter__(self) -> "Run":
        if self._native is None:
            if self._spec:
                self._client._native.declare(self._job, self._spec)
            self._native = self._client._native.start(self._job)
            self._pid = os.getpid()
            _live_runs.add(self)
        return self

    def __exit__(
        self,
        exc_type: Optional[Type[BaseException]],
        exc: Optional[BaseException],
        tb: Optional[TracebackType],
    ) -> Literal[False]:
        native = self._native
        # A forked child leaving the parent's `with` block: the run goes on
        # in the parent, which ends it.
        if native is None or self._pid != os.getpid() or native.ended:
            return False
        if exc_type is None:
            native.success()
        elif issubclass(exc_type, SystemExit) and getattr(exc, "code", None) in (None, 0):
            native.success()
        else:
            code = getattr(exc, "code", None) if issubclass(exc_type, SystemExit) else None
            native.fail(_describe(exc_type, exc), code if isinstance(code, int) else None)
        return False  # never swallow the exception


def _checked(job: str, spec: Spec) -> Optional[List[Tuple[str, str]]]:
    """The spec's pairs, checked now (a bad declaration raises where it is
    written, not when the job runs); None without one."""
    if not spec:
        return None
    pairs = _pairs(spec)
    _qcic.spec_string(job, pairs)
    return pairs


def _monitor(get: Callable[[], Client], job: Union[str, Callable[..., Any], None], spec: Optional[Spec] = None) -> Any:
    # Checked now, where the decorator is written: a declaration does not
    # depend on the job's name.
    pairs = _checked(job if isinstance(job, str) else "job", spec or {})

    def decorate(func: F) -> F:
        name = job if isinstance(job, str) else func.__name__

        def run() -> Run:
            client = get()
            return Run(client, name, spec=pairs)

        if inspect.iscoroutinefunction(func):

            @functools.wraps(func)
            async def run_async(*args: Any, **kwargs: Any) -> Any:
                with run():
                    return await func(*args, **kwargs)

            return run_async  # type: ignore[return-value]

        @functools.wraps(func)
        def run_sync(*args: Any, **kwargs: Any) -> Any:
            with run():
                return func(*args, **kwargs)

        return run_sync  # type: ignore[return-value]

    if callable(job):  # used bare: @monitor
        return decorate(job)
    return decorate


# ---- the default client ----

_default: Optional[Client] = None
_default_lock = threading.Lock()


def init(endpoints: Endpoints = None, **options: Any) -> Client:
    """Makes the default client (replacing, and closing, any earlier one).
    ``endpoints`` None reads ``QCIC_ENDPOINTS``; options as for ``Client``."""
    global _default
    client = Client(endpoints, **options)
    with _default_lock:
        old, _default = _default, client
    if old is not None:
        old.close(old._close_timeout)
    return client


def get_client() -> Client:
    """The default client; made from ``QCIC_ENDPOINTS`` on first use if
    ``init()`` was not called."""
    global _default
    with _default_lock:
        if _default is None:
            if not os.environ.get("QCIC_ENDPOINTS", "").strip():
                raise NotInitializedError(
                    "no default qcic client: call qcic.init(endpoints) or set QCIC_ENDPOINTS"
                )
            _default = Client()
        return _default


def heartbeat(job: str) -> bool:
    """``heartbeat`` on the default client."""
    return get_client().heartbeat(job)


def run(job: str, **spec: Unpack[Spec]) -> Run:
    """``run`` on the default client."""
    return get_client().run(job, **spec)


def declare(job: str, **spec: Unpack[Spec]) -> bool:
    """``declare`` on the default client."""
    return get_client().declare(job, **spec)


@overload
def monitor(job: F) -> F: ...
@overload
def monitor(job: Optional[str] = None, **spec: Unpack[Spec]) -> Callable[[F], F]: ...


def monitor(job: Union[str, Callable[..., Any], None] = None, **spec: Unpack[Spec]) -> Any:
    """``monitor`` on the default client, looked up at each call (so it may
    decorate functions before ``init()`` runs)."""
    return _monitor(get_client, job, spec)


def flush(timeout: float = 2.0) -> bool:
    """``flush`` on the default client; True if there is none."""
    return _default.flush(timeout) if _default is not None else True


def close(timeout: float = 2.0) -> bool:
    """``close`` on the default client; True if there is none."""
    return _default.close(timeout) if _default is not None else True


def _fail_unfinished_runs() -> None:
    """Ends every run this process started and did not end with ``fail``:
    the program is exiting, so the run will never finish. Runs a forked
    child inherited are its parent's to end, not the child's."""
    uncaught = getattr(sys, "last_value", None) if hasattr(sys, "last_type") else None
    why, code = "the program exited before the run ended", None
    if isinstance(uncaught, BaseException):
        # The interpreter exits with status 1 after an uncaught exception.
        why, code = f"{_describe(type(uncaught), uncaught)} (uncaught); {why}", 1
    me = os.getpid()
    for run in list(_live_runs):
        native = run._native
        # The pid first: `ended` asks the native run, whose lock a forked
        # child may have inherited held.
        if native is None or run._pid != me or native.ended:
            continue
        try:
            native.fail(why, code)
        except Exception:  # noqa: BLE001 - nothing may stop the exit
            pass


def _close_all_at_exit() -> None:
    _fail_unfinished_runs()
    # Each close is bounded by its client's close_timeout, so a job whose
    # watchers are unreachable still exits promptly; delivered otherwise.
    for client in list(_live_clients):
        try:
            client._native.close(client._close_timeout)
        except Exception:  # noqa: BLE001 - nothing may stop the exit
            pass


atexit.register(_close_all_at_exit)


# A multiprocessing child made by fork leaves through os._exit(), which skips
# atexit; it runs multiprocessing's finalizers first, so close there too. The
# child starts with an empty finalizer registry, so the hook is re-armed after
# each such fork.
class _ExitHook:
    pass


_exit_hook = _ExitHook()


def _arm_multiprocessing_exit(_: object = None) -> None:
    multiprocessing.util.Finalize(None, _close_all_at_exit, exitpriority=0)


_arm_multiprocessing_exit()
multiprocessing.util.register_after_fork(_exit_hook, _arm_multiprocessing_exit)
