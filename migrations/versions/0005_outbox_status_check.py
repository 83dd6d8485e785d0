"""outbox: CHECK constraints on status and kind; thread_key renamed conversation_key

``outbox.status`` was free text, so a typo in code would have parked a row in a state no query
looks at; the CHECK makes the database refuse it. ``outbox.thread_key`` held a conversation
(references, else Message-ID) while ``messages.thread_key`` holds a normalised subject: the
outbox column is renamed ``conversation_key`` so each name has one meaning.

SQLite cannot add a CHECK in place, so the table is rebuilt (batch mode). Its DROP TABLE, with
foreign keys on, runs ``ON DELETE SET NULL`` on ``digest_entries.outbox_id``: the links from
digest entries to their digests are saved first and put back after the rebuild, all inside
the migration's one transaction.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-30 00:00:00
"""
from alembic import op
import sqlalchemy as sa


revision = '0005'
down_revision = '0004'
branch_labels = None
depends_on = None

STATUS_CHECK = "status IN ('pending', 'sending', 'sent', 'failed', 'in_doubt', 'suppressed', 'dry_run')"
KIND_CHECK = "kind IN ('alert', 'digest', 'help')"


def upgrade() -> None:
    # Plain SQL: both SQLite (3.25+) and PostgreSQL rename a column in place, no rebuild.
    op.execute('ALTER TABLE outbox RENAME COLUMN thread_key TO conversation_key')
    with _digest_links_kept():
        with op.batch_alter_table('outbox', schema=None) as batch_op:
            batch_op.create_check_constraint(op.f('ck_outbox_status'), STATUS_CHECK)
            batch_op.create_check_constraint(op.f('ck_outbox_kind'), KIND_CHECK)


def downgrade() -> None:
    with _digest_links_kept():
        with op.batch_alter_table('outbox', schema=None) as batch_op:
            batch_op.drop_constraint(op.f('ck_outbox_kind'), type_='check')
            batch_op.drop_constraint(op.f('ck_outbox_status'), type_='check')
    op.execute('ALTER TABLE outbox RENAME COLUMN conversation_key TO thread_key')


class _digest_links_kept:
    """Keep ``digest_entries.outbox_id`` across an SQLite rebuild of ``outbox`` (see above)."""

    def __enter__(self):
        bind = op.get_bind()
        self.sqlite = bind.dialect.name == 'sqlite'
        self.links = bind.execute(sa.text(
            'SELECT id, outbox_id FROM digest_entries WHERE outbox_id IS NOT NULL')).all() if self.sqlite else []

    def __exit__(self, exc_type, *_):
        if exc_type is None and self.links:
            op.get_bind().execute(sa.text('UPDATE digest_entries SET outbox_id = :outbox_id WHERE id = :id'),
                                  [{'id': i, 'outbox_id': o} for i, o in self.links])
