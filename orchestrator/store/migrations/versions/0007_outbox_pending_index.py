"""outbox: partial index of pending messages in id order

The dispatcher claims the oldest due pending messages (ORDER BY id LIMIT n). With
only (status, next_attempt_at) to go on, PostgreSQL read every pending message and
sorted them for each claim: 20 ms per claim at 7,000 pending, which made a burst
of hint requests drain ever more slowly. Walking this index in id order stops at
the first n claimable ones.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-04
"""
from typing import Sequence, Union

from alembic import op
import sqlalchemy as sa


revision: str = '0007'
down_revision: Union[str, None] = '0006'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None

PENDING = sa.text("status = 'pending'")


def upgrade() -> None:
    op.create_index('ix_outbox_pending', 'outbox_message', ['id'], postgresql_where=PENDING, sqlite_where=PENDING)


def downgrade() -> None:
    op.drop_index('ix_outbox_pending', table_name='outbox_message')
