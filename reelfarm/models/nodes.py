from __future__ import annotations

from datetime import datetime

from sqlalchemy import String
from sqlalchemy.orm import Mapped, mapped_column

from reelfarm.database import Base, UTCDateTime


class NodeHeartbeat(Base):
    """A render node as the scheduler last saw it: the API's view of whether work can run.

    The API and the scheduler share only the database. The scheduler writes a row when a
    node registers and refreshes it as heartbeats arrive (reelfarm/nodes.py), and deletes it
    when the node goes down; the API refuses new jobs (503) when no row is fresher than
    `node_timeout_seconds`, which also covers a scheduler that has stopped.
    """

    __tablename__ = "node_heartbeats"

    node_id: Mapped[str] = mapped_column(String(200), primary_key=True)
    address: Mapped[str] = mapped_column(String(300))
    # A draining node takes no new tasks: it does not count as live.
    draining: Mapped[bool] = mapped_column(default=False)
    last_seen_at: Mapped[datetime] = mapped_column(UTCDateTime(), index=True)
