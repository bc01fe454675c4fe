"""campaigns and campaign_videos: web pages made into voiced vertical videos (seeds/004)

Keys that held every scope there was (the default) get the new `campaigns:create` too, as a key
made now would: 004 attaches it to every key.

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-06 08:00:00
"""

import sqlalchemy as sa
from alembic import op

from reelfarm.database import UTCDateTime

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


# Every scope before this revision: a key holding all of them was made with the default.
_FULL_BEFORE = {"uploads:write", "jobs:read", "jobs:write", "clips:read", "assets:read", "assets:write"}
_NEW_SCOPE = "campaigns:create"


def _rescope(add: bool) -> None:
    keys = sa.table("api_keys", sa.column("id", sa.String), sa.column("scopes", sa.JSON))
    connection = op.get_bind()
    for key_id, scopes in connection.execute(sa.select(keys.c.id, keys.c.scopes)).all():
        scopes = list(scopes or [])
        if add and _FULL_BEFORE <= set(scopes) and _NEW_SCOPE not in scopes:
            connection.execute(keys.update().where(keys.c.id == key_id).values(scopes=[*scopes, _NEW_SCOPE]))
        elif not add and _NEW_SCOPE in scopes:
            connection.execute(keys.update().where(keys.c.id == key_id)
                               .values(scopes=[x for x in scopes if x != _NEW_SCOPE]))  # fmt: skip


def upgrade() -> None:
    _rescope(add=True)
    op.create_table(
        "campaigns",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("account_id", sa.String(length=32), nullable=False),
        sa.Column("job_id", sa.String(length=32), nullable=False),
        sa.Column("url", sa.String(length=2000), nullable=False),
        sa.Column("title", sa.String(length=500), nullable=False),
        sa.Column("languages", sa.JSON(), nullable=False),
        sa.Column("page_language", sa.String(length=16), nullable=True),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("webhook_url", sa.String(length=2000), nullable=True),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sa.Column("published_at", UTCDateTime(), nullable=True),
        sa.ForeignKeyConstraint(["account_id"], ["accounts.id"], name=op.f("fk_campaigns_account_id_accounts"),
                                ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["job_id"], ["jobs.id"], name=op.f("fk_campaigns_job_id_jobs"), ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_campaigns")),
    )
    with op.batch_alter_table("campaigns") as batch_op:
        batch_op.create_index("ix_campaigns_account_created", ["account_id", "created_at"], unique=False)
        batch_op.create_index(batch_op.f("ix_campaigns_job_id"), ["job_id"], unique=False)
    op.create_table(
        "campaign_videos",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("campaign_id", sa.String(length=36), nullable=False),
        sa.Column("language", sa.String(length=16), nullable=False),
        sa.Column("platform", sa.String(length=32), nullable=False),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("storage_key", sa.String(length=300), nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("poster_key", sa.String(length=300), nullable=True),
        sa.Column("size_bytes", sa.Integer(), nullable=False),
        sa.Column("duration_seconds", sa.Float(), nullable=False),
        sa.Column("engine", sa.String(length=32), nullable=True),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("published_at", UTCDateTime(), nullable=True),
        sa.ForeignKeyConstraint(["campaign_id"], ["campaigns.id"], name=op.f("fk_campaign_videos_campaign_id_campaigns"),
                                ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_campaign_videos")),
    )
    with op.batch_alter_table("campaign_videos") as batch_op:
        batch_op.create_index(batch_op.f("ix_campaign_videos_campaign_id"), ["campaign_id"], unique=False)


def downgrade() -> None:
    _rescope(add=False)
    with op.batch_alter_table("campaign_videos") as batch_op:
        batch_op.drop_index(batch_op.f("ix_campaign_videos_campaign_id"))
    op.drop_table("campaign_videos")
    with op.batch_alter_table("campaigns") as batch_op:
        batch_op.drop_index(batch_op.f("ix_campaigns_job_id"))
        batch_op.drop_index("ix_campaigns_account_created")
    op.drop_table("campaigns")
