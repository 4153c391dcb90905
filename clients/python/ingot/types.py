"""The API's objects as dataclasses (docs/api.md "Objects", docs/openapi.json).

Each has from_dict(), built from the JSON the HTTP API answers; fields are
named and typed as there.  Times are milliseconds since the Unix epoch,
durations milliseconds.  Unknown keys are ignored, so a newer cluster's
additions do not break an older client.
"""
from dataclasses import dataclass, field, fields
from typing import Any, Dict, List, Optional, Type, TypeVar

T = TypeVar("T")


def _build(cls: Type[T], d: Dict[str, Any], **nested: Any) -> T:
    names = {f.name for f in fields(cls)}  # type: ignore[arg-type]
    kw = {k: v for k, v in d.items() if k in names}
    kw.update(nested)
    return cls(**kw)  # type: ignore[call-arg]


@dataclass(frozen=True)
class File:
    path: str
    sha256: str
    size: int

    @classmethod
    def from_dict(cls, d: Dict[str, Any]) -> "File":
        return _build(cls, d)


@dataclass(frozen=True)
class Stage:
    index: int
    state: str  # running, done, failed, killed, skipped
    exit_code: Optional[int]
    started_at: Optional[int]
    duration_ms: Optional[int]
    log_sha256: Optional[str]
    outputs: List[File] = field(default_factory=list)

    @classmethod
    def from_dict(cls, d: Dict[str, Any]) -> "Stage":
        return _build(cls, d, outputs=[File.from_dict(x) for x in d.get("outputs", [])])


@dataclass(frozen=True)
class Job:
    id: int
    target: str
    tenant: str
    state: str
    attempt: int
    max_attempts: int
    node: Optional[int]
    priority: int
    created_at: int
    updated_at: int
    deadline_at: Optional[int]
    finished_at: Optional[int]
    cancel_requested: bool
    error: str
    waiting: Optional[str]
    gpus: List[int] = field(default_factory=list)
    sources: List[File] = field(default_factory=list)
    params: Dict[str, str] = field(default_factory=dict)
    stages: List[Stage] = field(default_factory=list)

    FINAL = ("succeeded", "failed", "cancelled")

    @property
    def final(self) -> bool:
        return self.state in self.FINAL

    @classmethod
    def from_dict(cls, d: Dict[str, Any]) -> "Job":
        return _build(cls, d, sources=[File.from_dict(x) for x in d.get("sources", [])],
                      stages=[Stage.from_dict(x) for x in d.get("stages", [])],
                      params=dict(d.get("params", {})))


@dataclass(frozen=True)
class JobPage:
    jobs: List[Job]
    next: Optional[int]

    @classmethod
    def from_dict(cls, d: Dict[str, Any]) -> "JobPage":
        return cls(jobs=[Job.from_dict(x) for x in d["jobs"]], next=d.get("next"))


@dataclass(frozen=True)
class Event:
    seq: int
    time: int
    kind: str
    state: str
    attempt: int
    node: Optional[int]
    stage: Optional[int]
    exit_code: int
    message: str

    @classmethod
    def from_dict(cls, d: Dict[str, Any]) -> "Event":
        return _build(cls, d)


@dataclass(frozen=True)
class TargetStage:
    name: str
    argv: List[str]
    timeout_ms: int
    env: Dict[str, str]
    outputs: List[str]
    limits: Dict[str, int]
    stdout: Optional[str]
    gpus: int = 0

    @classmethod
    def from_dict(cls, d: Dict[str, Any]) -> "TargetStage":
        return _build(cls, d)


@dataclass(frozen=True)
class Target:
    name: str
    description: str
    revision: int
    capabilities: List[str]
    labels: Dict[str, str]
    stages: List[TargetStage]
    active_jobs: int
    created_at: int
    updated_at: int
    gpus: int = 0
    network: bool = False
    disk_bytes: int = 0

    @classmethod
    def from_dict(cls, d: Dict[str, Any]) -> "Target":
        return _build(cls, d, stages=[TargetStage.from_dict(x) for x in d.get("stages", [])])


@dataclass(frozen=True)
class Gpu:
    """A GPU of a node: offered by it, or still held after it stopped offering it."""
    index: int
    uuid: Optional[str]
    memory_bytes: Optional[int]
    offered: bool
    job: Optional[int]

    @classmethod
    def from_dict(cls, d: Dict[str, Any]) -> "Gpu":
        return _build(cls, d)


@dataclass(frozen=True)
class Node:
    id: int
    capabilities: List[str]
    labels: Dict[str, str]
    slots: int
    used_slots: int
    draining: bool
    drain_deadline: Optional[int]
    down: bool
    registered_at: int
    updated_at: int
    gpus: List[Gpu] = field(default_factory=list)
    used_gpus: int = 0

    @classmethod
    def from_dict(cls, d: Dict[str, Any]) -> "Node":
        return _build(cls, d, gpus=[Gpu.from_dict(x) for x in d.get("gpus", [])])


@dataclass(frozen=True)
class Member:
    id: int
    role: str
    raft_address: str
    api_address: str
    alive: bool
    applied_index: Optional[int]
    leader: bool
    last_contact_ms: Optional[int]

    @classmethod
    def from_dict(cls, d: Dict[str, Any]) -> "Member":
        return _build(cls, d)


@dataclass(frozen=True)
class Status:
    cluster_id: Optional[str]
    leader: Optional[int]
    term: int
    node: int
    members: List[Member]

    @classmethod
    def from_dict(cls, d: Dict[str, Any]) -> "Status":
        return _build(cls, d, members=[Member.from_dict(x) for x in d.get("members", [])])


@dataclass(frozen=True)
class ClusterEvent:
    seq: int
    time_ms: int
    kind: str
    member: Optional[int]
    message: str

    @classmethod
    def from_dict(cls, d: Dict[str, Any]) -> "ClusterEvent":
        return _build(cls, d)


@dataclass(frozen=True)
class Snapshot:
    """What save_snapshot() wrote: the file, its size and SHA-256."""
    path: str
    size: int
    sha256: str
