"""quota_usage, webhook outbox and deliveries, accounts.webhook_secret, jobs' quota

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-06 01:40:00
"""
import sqlalchemy as sa
from alembic import op

from reelfarm.database import UTCDateTime

revision = '0006'
down_revision = '0005'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'quota_usage',
        sa.Column('account_id', sa.String(length=32), sa.ForeignKey('accounts.id', ondelete='CASCADE'),
                  primary_key=True),
        sa.Column('month', sa.String(length=7), primary_key=True),
        sa.Column('videos_used', sa.Integer(), server_default='0', nullable=False),
    )
    op.create_table(
        'webhook_events',
        sa.Column('id', sa.String(length=32), primary_key=True),
        sa.Column('account_id', sa.String(length=32), sa.ForeignKey('accounts.id', ondelete='CASCADE'),
                  nullable=False),
        sa.Column('event', sa.String(length=64), nullable=False),
        sa.Column('subject_id', sa.String(length=64), nullable=False),
        sa.Column('url', sa.String(length=2000), nullable=False),
        sa.Column('body', sa.Text(), nullable=True),
        sa.Column('status', sa.String(length=16), nullable=False),
        sa.Column('attempts', sa.Integer(), nullable=False),
        sa.Column('next_attempt_at', UTCDateTime(), nullable=False),
        sa.Column('locked_until', UTCDateTime(), nullable=True),
        sa.Column('created_at', UTCDateTime(), nullable=False),
        sa.Column('delivered_at', UTCDateTime(), nullable=True),
    )
    op.create_index('ix_webhook_events_due', 'webhook_events', ['status', 'next_attempt_at'])
    op.create_index('ix_webhook_events_account_created', 'webhook_events', ['account_id', 'created_at'])
    op.create_index('ix_webhook_events_subject_id', 'webhook_events', ['subject_id'])
    op.create_table(
        'webhook_deliveries',
        sa.Column('id', sa.String(length=32), primary_key=True),
        sa.Column('event_id', sa.String(length=32), sa.ForeignKey('webhook_events.id', ondelete='CASCADE'),
                  nullable=False),
        sa.Column('account_id', sa.String(length=32), sa.ForeignKey('accounts.id', ondelete='CASCADE'),
                  nullable=False),
        sa.Column('attempt', sa.Integer(), nullable=False),
        sa.Column('status_code', sa.Integer(), nullable=True),
        sa.Column('duration_ms', sa.Integer(), nullable=False),
        sa.Column('error', sa.Text(), nullable=True),
        sa.Column('created_at', UTCDateTime(), nullable=False),
    )
    op.create_index('ix_webhook_deliveries_event_id', 'webhook_deliveries', ['event_id'])
    op.create_index('ix_webhook_deliveries_account_id', 'webhook_deliveries', ['account_id'])
    with op.batch_alter_table('accounts') as batch_op:
        batch_op.add_column(sa.Column('webhook_secret', sa.String(length=128), nullable=True))
    with op.batch_alter_table('jobs') as batch_op:
        batch_op.add_column(sa.Column('quota_month', sa.String(length=7), nullable=True))
        batch_op.add_column(sa.Column('quota_videos', sa.Integer(), server_default='0', nullable=False))


def downgrade() -> None:
    with op.batch_alter_table('jobs') as batch_op:
        batch_op.drop_column('quota_videos')
        batch_op.drop_column('quota_month')
    with op.batch_alter_table('accounts') as batch_op:
        batch_op.drop_column('webhook_secret')
    op.drop_table('webhook_deliveries')
    op.drop_table('webhook_events')
    op.drop_table('quota_usage')
