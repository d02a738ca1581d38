"""The exceptions of qcic. The native module raises these by name; every
error of the Rust SDK maps to exactly one of them (qcic-py/src/errors.rs)."""

from __future__ import annotations


class QcicError(Exception):
    """Base class of every qcic error."""


class ConfigurationError(QcicError, ValueError):
    """No endpoints, or an endpoint libzmq refuses."""


class InvalidJobError(QcicError, ValueError):
    """A job name breaks the protocol's rules (1-128 bytes of A-Z a-z 0-9 . _ -)."""


class InvalidMessageError(QcicError, ValueError):
    """A Message breaks the protocol's rules."""


class InvalidSpecError(QcicError, ValueError):
    """A declaration breaks a rule; ``key`` names the one at fault (``every``,
    ``cron``, ``grace``, ...; ``spec`` when it cannot be read at all)."""

    def __init__(self, message: str, key: str) -> None:
        super().__init__(message)
        self.key = key


class DecodeError(QcicError, ValueError):
    """A frame that is not a valid qcic message. `reason` is a stable label:
    too_large, malformed, unsupported_version, unknown_kind, invalid_field."""

    def __init__(self, message: str, reason: str) -> None:
        super().__init__(message)
        self.reason = reason


class TransportError(QcicError):
    """libzmq could not make a socket, or the sender thread could not start."""


class QueueFullError(QcicError):
    """Not raised by the sending calls (they return False); kept so that the
    mapping from the Rust SDK's errors stays exhaustive."""


class ClientClosedError(QcicError):
    """The client was closed."""


class RunEndedError(QcicError):
    """success() or fail() was already called on this run."""


class NotInitializedError(QcicError):
    """A module-level call with no qcic.init() and no QCIC_ENDPOINTS."""
