"""digest: unsure messages wait for one daily text instead of a text each

``outbox.kind`` tells an alert (one message) from a digest (the day's list, no single
message, hence ``message_pk`` may be empty); ``digest_entries`` holds the unsure messages and
the digest that listed them.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-29 21:00:00
"""
from alembic import op
import sqlalchemy as sa


revision = '0004'
down_revision = '0003'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('outbox', schema=None) as batch_op:
        batch_op.add_column(sa.Column('kind', sa.String(length=10), nullable=False, server_default='alert'))
        batch_op.alter_column('message_pk', existing_type=sa.Integer(), nullable=True)
    op.create_table(
        'digest_entries',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('dedupe_key', sa.String(length=998), nullable=False),
        sa.Column('message_pk', sa.Integer(), nullable=False),
        sa.Column('prediction_id', sa.Integer(), nullable=True),
        sa.Column('outbox_id', sa.Integer(), nullable=True),
        sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(['message_pk'], ['messages.id'], name=op.f('fk_digest_entries_message_pk_messages'),
                                ondelete='CASCADE'),
        sa.ForeignKeyConstraint(['prediction_id'], ['predictions.id'],
                                name=op.f('fk_digest_entries_prediction_id_predictions'), ondelete='SET NULL'),
        sa.ForeignKeyConstraint(['outbox_id'], ['outbox.id'], name=op.f('fk_digest_entries_outbox_id_outbox'),
                                ondelete='SET NULL'),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_digest_entries')),
        sa.UniqueConstraint('dedupe_key', name=op.f('uq_digest_entries_dedupe_key')),
    )
    with op.batch_alter_table('digest_entries', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_digest_entries_message_pk'), ['message_pk'], unique=False)
        batch_op.create_index(batch_op.f('ix_digest_entries_outbox_id'), ['outbox_id'], unique=False)


def downgrade() -> None:
    op.drop_table('digest_entries')
    with op.batch_alter_table('outbox', schema=None) as batch_op:
        batch_op.alter_column('message_pk', existing_type=sa.Integer(), nullable=False)
        batch_op.drop_column('kind')
