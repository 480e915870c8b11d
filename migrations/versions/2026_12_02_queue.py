"""The queue: messages committed before the client hears 250, their bounce tokens, their delivery state.

Revision ID: 2026_12_02_queue
Revises: 2026_12_02_handed_on
Create Date: 2026-12-02
"""
import sqlalchemy as sa
from alembic import op

revision = "2026_12_02_queue"
down_revision = "2026_12_02_handed_on"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("messages", sa.Column("delivery", sa.String(20)))
    op.add_column("messages", sa.Column("attempts", sa.Integer, nullable=False, server_default="0"))
    op.add_column("messages", sa.Column("notice_context", sa.Text))
    op.create_table(
        "outgoing",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("message_id", sa.Integer, sa.ForeignKey("messages.id")),
        sa.Column("kind", sa.String(20), nullable=False),
        sa.Column("envelope_from", sa.String(320), nullable=False),
        sa.Column("recipient", sa.String(320), nullable=False),
        sa.Column("body", sa.LargeBinary, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("due_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
        sa.Column("last_reply", sa.Text),
        sa.Column("warned", sa.Boolean, nullable=False, server_default=sa.false()),
        sa.Column("lease_owner", sa.String(100)),
        sa.Column("lease_until", sa.DateTime(timezone=True)),
    )
    op.create_index("ix_outgoing_due", "outgoing", ["due_at"])
    op.create_index("ix_outgoing_message_id", "outgoing", ["message_id"])
    op.create_table(
        "bounce_tokens",
        sa.Column("token", sa.String(40), primary_key=True),
        sa.Column("message_id", sa.Integer, sa.ForeignKey("messages.id"), nullable=False),
        sa.Column("kind", sa.String(20), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_bounce_tokens_message_id", "bounce_tokens", ["message_id"])
    op.create_index("ix_bounce_tokens_created_at", "bounce_tokens", ["created_at"])


def downgrade() -> None:
    op.drop_table("bounce_tokens")
    op.drop_index("ix_outgoing_message_id", table_name="outgoing")
    op.drop_index("ix_outgoing_due", table_name="outgoing")
    op.drop_table("outgoing")
    with op.batch_alter_table("messages") as batch:
        batch.drop_column("notice_context")
        batch.drop_column("attempts")
        batch.drop_column("delivery")
