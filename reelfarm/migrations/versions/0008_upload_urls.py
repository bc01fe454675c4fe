"""upload_urls: the presigned upload URL issued per asset, so a retry gets the same one

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-06 02:00:00
"""
import sqlalchemy as sa
from alembic import op

from reelfarm.database import UTCDateTime

revision = '0008'
down_revision = '0007'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'upload_urls',
        sa.Column('asset_id', sa.String(length=32), primary_key=True),
        sa.Column('account_id', sa.String(length=32), sa.ForeignKey('accounts.id', ondelete='CASCADE'),
                  nullable=False),
        sa.Column('size_bytes', sa.BigInteger(), nullable=False),
        sa.Column('content_type', sa.String(length=100), nullable=False),
        sa.Column('url', sa.Text(), nullable=False),
        sa.Column('expires_at', UTCDateTime(), nullable=False),
    )
    op.create_index('ix_upload_urls_account_id', 'upload_urls', ['account_id'])


def downgrade() -> None:
    op.drop_table('upload_urls')
