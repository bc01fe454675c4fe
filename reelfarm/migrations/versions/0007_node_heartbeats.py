"""node_heartbeats: the render nodes the scheduler sees, for the API's 503 when there are none

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-07 09:00:00
"""
import sqlalchemy as sa
from alembic import op

from reelfarm.database import UTCDateTime

revision = '0007'
down_revision = '0006'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'node_heartbeats',
        sa.Column('node_id', sa.String(length=200), primary_key=True),
        sa.Column('address', sa.String(length=300), nullable=False),
        sa.Column('draining', sa.Boolean(), nullable=False),
        sa.Column('last_seen_at', UTCDateTime(), nullable=False),
    )
    op.create_index('ix_node_heartbeats_last_seen_at', 'node_heartbeats', ['last_seen_at'])


def downgrade() -> None:
    op.drop_index('ix_node_heartbeats_last_seen_at', table_name='node_heartbeats')
    op.drop_table('node_heartbeats')
