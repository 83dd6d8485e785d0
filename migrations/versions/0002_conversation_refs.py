"""messages.refs: the References/In-Reply-To chain, to group alerts by real conversation

The thread window used to group alerts by normalised subject alone, so unrelated requests with a
generic subject ("Meeting", "lunch", none at all) shared one window and all but the first went
untexted. Outbox thread keys may now be Message-IDs, hence the wider column.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-23 15:00:00
"""
from alembic import op
import sqlalchemy as sa


revision = '0002'
down_revision = '0001'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('messages', schema=None) as batch_op:
        batch_op.add_column(sa.Column('refs', sa.Text(), nullable=False, server_default=''))
    with op.batch_alter_table('outbox', schema=None) as batch_op:
        batch_op.alter_column('thread_key', existing_type=sa.String(length=300), type_=sa.String(length=998),
                              existing_nullable=False)


def downgrade() -> None:
    with op.batch_alter_table('outbox', schema=None) as batch_op:
        batch_op.alter_column('thread_key', existing_type=sa.String(length=998), type_=sa.String(length=300),
                              existing_nullable=False)
    with op.batch_alter_table('messages', schema=None) as batch_op:
        batch_op.drop_column('refs')
