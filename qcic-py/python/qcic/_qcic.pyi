"""Type stubs for the native module qcic._qcic (checked by mypy.stubtest)."""

from typing import Dict, List, Optional, Tuple

from typing_extensions import final

__all__ = ["Client", "MAX_FRAME_LEN", "Message", "PROTOCOL_VERSION", "Run", "__version__", "spec_string"]

__version__: str
PROTOCOL_VERSION: int
MAX_FRAME_LEN: int

def spec_string(job: str, pairs: List[Tuple[str, str]]) -> str: ...

@final
class Client:
    def __new__(
        cls,
        endpoints: List[str],
        *,
        queue_capacity: int = 1024,
        close_timeout: float = 1.0,
        host: Optional[str] = None,
        server_key: Optional[str] = None,
        client_public_key: Optional[str] = None,
        client_secret_key: Optional[str] = None,
    ) -> Client: ...
    def heartbeat(self, job: str) -> bool: ...
    def fail(self, job: str, text: Optional[str] = None, exit_code: Optional[int] = None) -> bool: ...
    def start(self, job: str) -> Run: ...
    def send_message(self, message: Message) -> bool: ...
    def declare(self, job: str, pairs: List[Tuple[str, str]]) -> bool: ...
    def flush(self, timeout: float = 2.0) -> bool: ...
    def close(self, timeout: float = 2.0) -> bool: ...
    def stats(self) -> Dict[str, int]: ...
    @property
    def host(self) -> str: ...

@final
class Run:
    @property
    def id(self) -> int: ...
    @property
    def job(self) -> str: ...
    @property
    def ended(self) -> bool: ...
    def progress(self, text: str) -> bool: ...
    def success(self) -> bool: ...
    def fail(self, text: Optional[str] = None, exit_code: Optional[int] = None) -> bool: ...

@final
class Message:
    kind: str
    job: str
    run_id: Optional[int]
    seq: int
    ts_ms: int
    host: str
    pid: int
    exit_code: Optional[int]
    text: Optional[str]
    expect: Optional[str]
    def __new__(
        cls,
        kind: str,
        job: str,
        *,
        run_id: Optional[int] = None,
        seq: int = 1,
        ts_ms: int = 0,
        host: str = "",
        pid: int = 0,
        exit_code: Optional[int] = None,
        text: Optional[str] = None,
        expect: Optional[str] = None,
    ) -> Message: ...
    def encode(self) -> bytes: ...
    @staticmethod
    def decode(frame: bytes) -> Message: ...
