"""source_styles: each source's Style DNA, by SHA-256, extracted once; videos.template_video_id

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-06 05:00:00
"""
import sqlalchemy as sa
from alembic import op

from reelfarm.database import UTCDateTime

revision = '0009'
down_revision = '0008'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'source_styles',
        sa.Column('source_sha256', sa.String(length=64), primary_key=True),
        sa.Column('dna', sa.JSON(), nullable=False),
        sa.Column('created_at', UTCDateTime(), nullable=False),
    )
    with op.batch_alter_table('videos') as batch:
        batch.add_column(sa.Column('template_video_id', sa.String(length=32), nullable=True))
        batch.create_foreign_key('fk_videos_template_video_id', 'videos', ['template_video_id'], ['id'],
                                 ondelete='SET NULL')


def downgrade() -> None:
    with op.batch_alter_table('videos') as batch:
        batch.drop_constraint('fk_videos_template_video_id', type_='foreignkey')
        batch.drop_column('template_video_id')
    op.drop_table('source_styles')
