"""outbox and hint delivery columns

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-03
"""
from typing import Sequence, Union

from alembic import op
import sqlalchemy as sa


revision: str = '0002'
down_revision: Union[str, None] = '0001'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    op.create_table('outbox_message',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('kind', sa.String(length=64), nullable=False),
    sa.Column('ordering_key', sa.String(length=128), nullable=False),
    sa.Column('hint_request_id', sa.BigInteger(), nullable=True),
    sa.Column('payload', sa.JSON(), nullable=True),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('attempts', sa.Integer(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('next_attempt_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('lease_owner', sa.String(length=128), nullable=True),
    sa.Column('lease_expires_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('last_attempt_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('last_error', sa.Text(), nullable=True),
    sa.Column('delivered_at', sa.DateTime(timezone=True), nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_outbox_message'))
    )
    op.create_index('ix_outbox_hint_request', 'outbox_message', ['hint_request_id'])
    op.create_index('ix_outbox_ordering_key', 'outbox_message', ['ordering_key', 'id'])
    op.create_index('ix_outbox_status_due', 'outbox_message', ['status', 'next_attempt_at'])

    with op.batch_alter_table('hint_request', schema=None) as batch_op:
        batch_op.add_column(sa.Column('finished_at', sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column('delivered_at', sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column('reflection_delivered_at', sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column('late_result', sa.JSON(), nullable=True))
        batch_op.add_column(sa.Column('late_result_at', sa.DateTime(timezone=True), nullable=True))



def downgrade() -> None:
    with op.batch_alter_table('hint_request', schema=None) as batch_op:
        batch_op.drop_column('late_result_at')
        batch_op.drop_column('late_result')
        batch_op.drop_column('reflection_delivered_at')
        batch_op.drop_column('delivered_at')
        batch_op.drop_column('finished_at')

    op.drop_index('ix_outbox_status_due', table_name='outbox_message')
    op.drop_index('ix_outbox_ordering_key', table_name='outbox_message')
    op.drop_index('ix_outbox_hint_request', table_name='outbox_message')

    op.drop_table('outbox_message')
