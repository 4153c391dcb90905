"""ingot: a typed, synchronous Python client of the ingot HTTP API.

See ingot.client.Client; errors in ingot.errors, objects in ingot.types.
"""
from .client import Client, tls_context
from .errors import (ERRORS, AlreadyExists, Conflict, Corrupt, IngotError, Internal, Invalid, IoError,
                     Malformed, NoMemory, NoSpace, NotFound, NotLeader, PermissionDenied, StaleAttempt,
                     StoreTooNew, Timeout, TooLarge, Unavailable, Unreachable, UnsupportedVersion)
from .types import (ClusterEvent, Event, File, Gpu, Job, JobPage, Member, Node, Snapshot, Stage, Status,
                    Target)

__all__ = [
    "Client", "tls_context", "ERRORS", "IngotError", "AlreadyExists", "Conflict", "Corrupt", "Internal", "Invalid",
    "IoError", "Malformed", "NoMemory", "NoSpace", "NotFound", "NotLeader", "PermissionDenied",
    "StaleAttempt", "StoreTooNew", "Timeout", "TooLarge", "Unavailable", "Unreachable",
    "UnsupportedVersion", "ClusterEvent", "Event", "File", "Gpu", "Job", "JobPage", "Member", "Node",
    "Snapshot", "Stage", "Status", "Target",
]
