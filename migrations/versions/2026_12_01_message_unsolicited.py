"""Mark unsolicited seller messages in the message log, for the over-messaging rule.

Revision ID: 2026_12_01_message_unsolicited
Revises: 2026_12_01_create_store
Create Date: 2026-12-01
"""
import sqlalchemy as sa
from alembic import op

revision = "2026_12_01_message_unsolicited"
down_revision = "2026_12_01_create_store"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # A plain ADD COLUMN works on SQLite and PostgreSQL alike; batch mode would copy the table.
    op.add_column("messages", sa.Column("unsolicited", sa.Boolean, nullable=False, server_default=sa.false()))
    op.create_index("ix_messages_conversation_direction_finished", "messages",
                    ["conversation_id", "direction", "finished_at"])


def downgrade() -> None:
    op.drop_index("ix_messages_conversation_direction_finished", table_name="messages")
    with op.batch_alter_table("messages") as batch:
        batch.drop_column("unsolicited")
