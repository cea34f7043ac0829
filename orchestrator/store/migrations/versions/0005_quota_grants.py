"""quota grants

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-03
"""
from typing import Sequence, Union

from alembic import op
import sqlalchemy as sa


revision: str = '0005'
down_revision: Union[str, None] = '0004'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    op.create_table('quota_grant',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('student_id', sa.String(length=255), nullable=False),
    sa.Column('problem_id', sa.String(length=255), nullable=False),
    sa.Column('hint_type', sa.String(length=16), nullable=False),
    sa.Column('count', sa.Integer(), nullable=False),
    sa.Column('reason', sa.Text(), nullable=True),
    sa.Column('granted_by', sa.String(length=255), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_quota_grant'))
    )
    op.create_index('ix_quota_grant_student_problem', 'quota_grant', ['student_id', 'problem_id'])



def downgrade() -> None:
    op.drop_index('ix_quota_grant_student_problem', table_name='quota_grant')

    op.drop_table('quota_grant')
