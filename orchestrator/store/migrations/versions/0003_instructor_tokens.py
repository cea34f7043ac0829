"""instructor tokens

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-03
"""
from typing import Sequence, Union

from alembic import op
import sqlalchemy as sa


revision: str = '0003'
down_revision: Union[str, None] = '0002'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    op.create_table('instructor_token',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('instructor_id', sa.String(length=255), nullable=False),
    sa.Column('token_hash', sa.String(length=64), nullable=False),
    sa.Column('prefix', sa.String(length=16), nullable=False),
    sa.Column('label', sa.String(length=255), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('last_used_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('revoked_at', sa.DateTime(timezone=True), nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_instructor_token')),
    sa.UniqueConstraint('token_hash', name=op.f('uq_instructor_token_token_hash'))
    )
    op.create_index('ix_instructor_token_instructor', 'instructor_token', ['instructor_id'])



def downgrade() -> None:
    op.drop_index('ix_instructor_token_instructor', table_name='instructor_token')

    op.drop_table('instructor_token')
