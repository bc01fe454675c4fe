"""style_extractions: Style DNA asked for by GET /api/v1/videos/{id}/style; tasks.job_id nullable

A style task planned for such a request has no job (until a job of the same source adopts it).

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-08 09:00:00
"""

import sqlalchemy as sa
from alembic import op

from reelfarm.database import UTCDateTime

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "style_extractions",
        sa.Column("source_sha256", sa.String(length=64), nullable=False),
        sa.Column("video_id", sa.String(length=32), nullable=False),
        sa.Column("state", sa.String(length=20), nullable=False),
        sa.Column("task_id", sa.String(length=32), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["video_id"], ["videos.id"], name=op.f("fk_style_extractions_video_id_videos"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("source_sha256", name=op.f("pk_style_extractions")),
    )
    with op.batch_alter_table("style_extractions") as batch_op:
        batch_op.create_index(batch_op.f("ix_style_extractions_video_id"), ["video_id"], unique=False)
    with op.batch_alter_table("tasks") as batch_op:
        batch_op.alter_column("job_id", existing_type=sa.String(length=32), nullable=True)


def downgrade() -> None:
    op.execute("DELETE FROM tasks WHERE job_id IS NULL")
    with op.batch_alter_table("tasks") as batch_op:
        batch_op.alter_column("job_id", existing_type=sa.String(length=32), nullable=False)
    with op.batch_alter_table("style_extractions") as batch_op:
        batch_op.drop_index(batch_op.f("ix_style_extractions_video_id"))
    op.drop_table("style_extractions")
