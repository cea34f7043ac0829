"""initial tables: program executions, hint requests, feedback requests

Revision ID: 0001
Revises: 
Create Date: 2026-12-03
"""
from typing import Sequence, Union

from alembic import op
import sqlalchemy as sa


revision: str = '0001'
down_revision: Union[str, None] = None
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    op.create_table('hint_request',
    sa.Column('id', sa.BigInteger(), nullable=False),
    sa.Column('student_id', sa.String(length=255), nullable=False),
    sa.Column('problem_id', sa.String(length=255), nullable=False),
    sa.Column('hint_type', sa.String(length=16), nullable=False),
    sa.Column('student_program', sa.Text(), nullable=False),
    sa.Column('student_notebook', sa.JSON(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('reflection_question', sa.Text(), nullable=True),
    sa.Column('reflection_answer', sa.Text(), nullable=True),
    sa.Column('reflection_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('job_finished_successfully', sa.Boolean(), nullable=True),
    sa.Column('returned_hint', sa.Text(), nullable=True),
    sa.Column('generation_error_message', sa.Text(), nullable=True),
    sa.Column('other_hint_data', sa.JSON(), nullable=True),
    sa.Column('returned_time', sa.DateTime(timezone=True), nullable=True),
    sa.Column('failure_reason', sa.Text(), nullable=True),
    sa.Column('is_cancelled', sa.Boolean(), nullable=False),
    sa.Column('cancelled_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('is_hint_helpful', sa.Boolean(), nullable=True),
    sa.Column('rated_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('poll_count', sa.Integer(), server_default='0', nullable=False),
    sa.Column('first_polled_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('last_polled_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('result_returned_at', sa.DateTime(timezone=True), nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_hint_request'))
    )
    op.create_index('ix_hint_request_status_created', 'hint_request', ['status', 'created_at'])
    op.create_index('ix_hint_request_student_problem', 'hint_request', ['student_id', 'problem_id', 'created_at'])

    op.create_table('program_execution',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('student_id', sa.String(length=255), nullable=True),
    sa.Column('problem_id', sa.String(length=255), nullable=False),
    sa.Column('student_program', sa.Text(), nullable=False),
    sa.Column('execution_id', sa.BigInteger(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('finished_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('is_success', sa.Boolean(), nullable=True),
    sa.Column('correctness', sa.Boolean(), nullable=True),
    sa.Column('buggy_output', sa.Text(), nullable=True),
    sa.Column('elapsed_time', sa.Float(), nullable=True),
    sa.Column('error_message', sa.Text(), nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_program_execution'))
    )
    op.create_index('ix_program_execution_execution_id', 'program_execution', ['execution_id'])
    op.create_index('ix_program_execution_student_problem', 'program_execution', ['student_id', 'problem_id', 'created_at'])

    op.create_table('instructor_feedback_request',
    sa.Column('id', sa.BigInteger(), nullable=False),
    sa.Column('hint_request_id', sa.BigInteger(), nullable=False),
    sa.Column('student_id', sa.String(length=255), nullable=False),
    sa.Column('problem_id', sa.String(length=255), nullable=False),
    sa.Column('student_email', sa.String(length=320), nullable=True),
    sa.Column('student_notes', sa.Text(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('state', sa.String(length=16), nullable=False),
    sa.Column('instructor_id', sa.String(length=255), nullable=True),
    sa.Column('assigned_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('instructor_feedback', sa.Text(), nullable=True),
    sa.Column('answered_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('is_feedback_helpful', sa.Boolean(), nullable=True),
    sa.Column('rated_at', sa.DateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['hint_request_id'], ['hint_request.id'], name=op.f('fk_instructor_feedback_request_hint_request_id_hint_request'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_instructor_feedback_request')),
    sa.UniqueConstraint('hint_request_id', name=op.f('uq_instructor_feedback_request_hint_request_id'))
    )
    op.create_index('ix_feedback_instructor_state', 'instructor_feedback_request', ['instructor_id', 'state'])
    op.create_index('ix_feedback_state_created', 'instructor_feedback_request', ['state', 'created_at'])
    op.create_index('ix_feedback_student_problem', 'instructor_feedback_request', ['student_id', 'problem_id', 'created_at'])



def downgrade() -> None:
    op.drop_index('ix_feedback_student_problem', table_name='instructor_feedback_request')
    op.drop_index('ix_feedback_state_created', table_name='instructor_feedback_request')
    op.drop_index('ix_feedback_instructor_state', table_name='instructor_feedback_request')

    op.drop_table('instructor_feedback_request')
    op.drop_index('ix_program_execution_student_problem', table_name='program_execution')
    op.drop_index('ix_program_execution_execution_id', table_name='program_execution')

    op.drop_table('program_execution')
    op.drop_index('ix_hint_request_student_problem', table_name='hint_request')
    op.drop_index('ix_hint_request_status_created', table_name='hint_request')

    op.drop_table('hint_request')
