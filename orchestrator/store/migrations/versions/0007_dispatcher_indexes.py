"""partial indexes for the dispatcher's claim and deadline sweep

The dispatcher claims the oldest due pending messages (ORDER BY id LIMIT n). With
only (status, next_attempt_at) to go on, PostgreSQL read every pending message and
sorted them for each claim: 20 ms per claim at 7,000 pending, which made a burst of
hint requests drain ever more slowly. ``ix_outbox_pending`` lists pending messages
in id order; ``ix_outbox_pending_key`` answers "is an earlier message of this key
still pending?" (with only the first, the planner walked all pending messages for
each candidate while its statistics lagged behind a burst).

Every 5 s the deadline sweep looks for pending hint requests whose reflection was
delivered long ago; no index covered that, so it read the whole hint_request table
(28 ms with 400,000 rows, growing all semester). ``ix_hint_request_awaiting_result``
holds only requests waiting for their result, a few at any time.

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
AWAITING_RESULT = sa.text("status = 'pending' AND reflection_delivered_at IS NOT NULL")


def upgrade() -> None:
    op.create_index('ix_outbox_pending', 'outbox_message', ['id'], postgresql_where=PENDING, sqlite_where=PENDING)
    op.create_index('ix_outbox_pending_key', 'outbox_message', ['ordering_key', 'id'],
                    postgresql_where=PENDING, sqlite_where=PENDING)
    op.create_index('ix_hint_request_awaiting_result', 'hint_request', ['reflection_delivered_at'],
                    postgresql_where=AWAITING_RESULT, sqlite_where=AWAITING_RESULT)


def downgrade() -> None:
    op.drop_index('ix_hint_request_awaiting_result', table_name='hint_request')
    op.drop_index('ix_outbox_pending_key', table_name='outbox_message')
    op.drop_index('ix_outbox_pending', table_name='outbox_message')
