"""The render nodes the scheduler sees, as rows the API can read (table node_heartbeats).

The scheduler is the only writer: it publishes each registered node and refreshes the
row as the node keeps heartbeating (scheduler/core.py), and deletes it when the node goes
down. A node counts as live while its row is younger than `node_timeout_seconds`, the same
timeout the scheduler uses to declare a node down; so a stopped scheduler also reads as
"no live node" once its rows age out.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import delete, exists, func, select
from sqlalchemy.orm import Session

from reelfarm.database import utcnow
from reelfarm.models.nodes import NodeHeartbeat


@dataclass(frozen=True)
class SeenNode:
    node_id: str
    address: str
    draining: bool
    last_seen_at: datetime


def publish(session: Session, seen: Iterable[SeenNode], gone: Iterable[str] = ()) -> None:
    """Upsert `seen` and delete `gone` (the caller commits)."""
    gone = list(gone)
    if gone:
        session.execute(delete(NodeHeartbeat).where(NodeHeartbeat.node_id.in_(gone)))
    for node in seen:
        row = session.get(NodeHeartbeat, node.node_id)
        if row is None:
            session.add(NodeHeartbeat(node_id=node.node_id, address=node.address[:300], draining=node.draining,
                                      last_seen_at=node.last_seen_at))  # fmt: skip
        else:
            row.address, row.draining, row.last_seen_at = node.address[:300], node.draining, node.last_seen_at


def live_node_count(session: Session, timeout_seconds: float, now: datetime | None = None) -> int:
    """Nodes seen within `timeout_seconds` that take work (not draining)."""
    since = (now or utcnow()) - timedelta(seconds=timeout_seconds)
    return session.scalar(select(func.count()).select_from(NodeHeartbeat)
                          .where(NodeHeartbeat.last_seen_at >= since, NodeHeartbeat.draining.is_(False)))  # fmt: skip


def any_live_node(session: Session, timeout_seconds: float, now: datetime | None = None) -> bool:
    """One indexed EXISTS: cheap enough for every job submission."""
    since = (now or utcnow()) - timedelta(seconds=timeout_seconds)
    return bool(session.scalar(select(exists().where(NodeHeartbeat.last_seen_at >= since,
                                                     NodeHeartbeat.draining.is_(False)))))  # fmt: skip
