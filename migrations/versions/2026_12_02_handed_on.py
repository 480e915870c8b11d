"""Remember what was handed to the next hop, so a client's retry never makes a second copy.

Revision ID: 2026_12_02_handed_on
Revises: 2026_12_01_message_unsolicited
Create Date: 2026-12-02
"""
import sqlalchemy as sa
from alembic import op

revision = "2026_12_02_handed_on"
down_revision = "2026_12_01_message_unsolicited"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "handed_on",
        sa.Column("identity", sa.String(64), primary_key=True),
        sa.Column("reply", sa.Text, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_handed_on_created_at", "handed_on", ["created_at"])


def downgrade() -> None:
    op.drop_index("ix_handed_on_created_at", table_name="handed_on")
    op.drop_table("handed_on")
