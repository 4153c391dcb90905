"""Errors of the ingot API: one exception class per stable error name.

Every error the cluster returns carries a stable name (docs/api.md, the
error table) and a message naming what was wrong; the client raises the
class registered for that name, a subclass of IngotError.  Failures to reach
any node within the client's deadline raise Unreachable (also an
IngotError, code "unavailable").
"""
from typing import Dict, Optional, Type


class IngotError(Exception):
    """An error answer of the cluster (or of the client, for Unreachable)."""

    code: str = "unknown"

    def __init__(self, message: str, status: Optional[int] = None, code: Optional[str] = None):
        super().__init__(message)
        self.message = message
        self.status = status
        if code is not None:
            self.code = code

    def __str__(self) -> str:
        return "%s: %s" % (self.code, self.message)


class NoMemory(IngotError):
    code = "no_memory"


class Invalid(IngotError):
    code = "invalid"


class NotFound(IngotError):
    code = "not_found"


class AlreadyExists(IngotError):
    code = "already_exists"


class Conflict(IngotError):
    code = "conflict"


class Malformed(IngotError):
    code = "malformed"


class UnsupportedVersion(IngotError):
    code = "unsupported_version"


class TooLarge(IngotError):
    code = "too_large"


class StaleAttempt(IngotError):
    code = "stale_attempt"


class Corrupt(IngotError):
    code = "corrupt"


class IoError(IngotError):
    code = "io_error"


class NoSpace(IngotError):
    code = "no_space"


class StoreTooNew(IngotError):
    code = "store_too_new"


class Unavailable(IngotError):
    code = "unavailable"


class NotLeader(IngotError):
    code = "not_leader"


class Timeout(IngotError):
    code = "timeout"


class PermissionDenied(IngotError):
    code = "permission_denied"


class Internal(IngotError):
    code = "internal"


class Unreachable(Unavailable):
    """No node answered within the client's deadline (connection refused,
    reset, timed out, or every node said unavailable)."""


ERRORS: Dict[str, Type[IngotError]] = {
    cls.code: cls
    for cls in (NoMemory, Invalid, NotFound, AlreadyExists, Conflict, Malformed, UnsupportedVersion,
                TooLarge, StaleAttempt, Corrupt, IoError, NoSpace, StoreTooNew, Unavailable, NotLeader,
                Timeout, PermissionDenied, Internal)
}


def error_for(code: str, message: str, status: Optional[int] = None) -> IngotError:
    """The exception for an error name (IngotError itself for a name this
    client does not know, keeping the name)."""
    cls = ERRORS.get(code)
    if cls is None:
        return IngotError(message, status, code)
    return cls(message, status)
