"""folders.notify_from_uid: the server's UIDNEXT when Jeeves first saw the folder

Mail already in a folder when its account was added is never texted. That was decided by the
local clock minus a 5-minute allowance for clock skew, so mail that arrived just before the
first sync was texted. The server's own UIDNEXT at first sight makes it exact: a lower UID was
there before. (notify_after now holds the server's INTERNALDATE of the newest message at first
sight, used when a UIDVALIDITY change renumbers the UIDs.)

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-29 21:00:00
"""
from alembic import op
import sqlalchemy as sa


revision = '0003'
down_revision = '0002'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('folders', schema=None) as batch_op:
        batch_op.add_column(sa.Column('notify_from_uid', sa.BigInteger(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('folders', schema=None) as batch_op:
        batch_op.drop_column('notify_from_uid')
