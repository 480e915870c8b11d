"""Index the message log by conversation, direction and verdict, so that a conversation's activity
(has the buyer written, how many unsolicited messages today) costs the same after ten thousand messages
as after one.

Revision ID: 2026_12_03_activity_index
Revises: 2026_12_03_links_written
Create Date: 2026-12-03
"""
from alembic import op

revision = "2026_12_03_activity_index"
down_revision = "2026_12_03_links_written"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_messages_activity", "messages", ["conversation_id", "direction", "verdict", "finished_at"])


def downgrade() -> None:
    op.drop_index("ix_messages_activity", table_name="messages")
