"""sms replies: inbound texts that label alerts, each applied once (unique Twilio SID)

``sms_replies`` remembers every inbound SMS Jeeves handled, by its SID, written in the same
transaction as the label it applied or the help text it queued (``jeeves.storage.replies``).
Its newest ``received_at`` is the polling watermark.

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-30 00:00:00
"""
from alembic import op
import sqlalchemy as sa


revision = '0006'
down_revision = '0005'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'sms_replies',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('sid', sa.String(length=64), nullable=False),
        sa.Column('received_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('sender', sa.String(length=20), nullable=False),
        sa.Column('outcome', sa.String(length=20), nullable=False),
        sa.Column('detail', sa.String(length=100), nullable=True),
        sa.Column('message_pk', sa.Integer(), nullable=True),
        sa.Column('value', sa.Integer(), nullable=True),
        sa.Column('label_id', sa.Integer(), nullable=True),
        sa.Column('outbox_id', sa.Integer(), nullable=True),
        sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(['message_pk'], ['messages.id'], name=op.f('fk_sms_replies_message_pk_messages'),
                                ondelete='SET NULL'),
        sa.ForeignKeyConstraint(['label_id'], ['labels.id'], name=op.f('fk_sms_replies_label_id_labels'),
                                ondelete='SET NULL'),
        sa.ForeignKeyConstraint(['outbox_id'], ['outbox.id'], name=op.f('fk_sms_replies_outbox_id_outbox'),
                                ondelete='SET NULL'),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_sms_replies')),
        sa.UniqueConstraint('sid', name=op.f('uq_sms_replies_sid')),
    )
    with op.batch_alter_table('sms_replies', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_sms_replies_received_at'), ['received_at'], unique=False)


def downgrade() -> None:
    op.drop_table('sms_replies')
