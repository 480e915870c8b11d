"""The message center and the seller's record: bodies kept for disputes, flags, vacations, holds,
API tokens, delivery dates for review requests, and the marks the response-time report reads.

Revision ID: 2026_12_04_message_center
Revises: 2026_12_03_activity_index
Create Date: 2026-12-04
"""
import sqlalchemy as sa
from alembic import op

revision = "2026_12_04_message_center"
down_revision = "2026_12_03_activity_index"
branch_labels = None
depends_on = None

_FALSE = sa.false()


def upgrade() -> None:
    op.add_column("messages", sa.Column("subject", sa.Text))
    op.add_column("messages", sa.Column("kind", sa.String(20), nullable=False, server_default="message"))
    op.add_column("messages", sa.Column("no_response_needed", sa.Boolean, nullable=False, server_default=_FALSE))
    op.add_column("messages", sa.Column("auto_replied", sa.Boolean, nullable=False, server_default=_FALSE))
    op.add_column("messages", sa.Column("removed", sa.Text))
    op.add_column("parties", sa.Column("vacation_since", sa.DateTime(timezone=True)))
    op.add_column("parties", sa.Column("vacation_until", sa.DateTime(timezone=True)))
    op.add_column("parties", sa.Column("held_since", sa.DateTime(timezone=True)))
    op.add_column("parties", sa.Column("held_reason", sa.Text))
    op.add_column("parties", sa.Column("reinstated_at", sa.DateTime(timezone=True)))
    op.add_column("conversations", sa.Column("delivered_at", sa.DateTime(timezone=True)))
    op.add_column("conversations", sa.Column("review_requested_at", sa.DateTime(timezone=True)))
    op.add_column("conversations", sa.Column("auto_replied_at", sa.DateTime(timezone=True)))
    op.add_column("outgoing", sa.Column("held", sa.Boolean, nullable=False, server_default=_FALSE))
    op.create_index("ix_conversations_order_id", "conversations", ["order_id"])
    op.create_index("ix_conversations_seller_id", "conversations", ["seller_id"])
    op.create_table(
        "message_bodies",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("message_id", sa.Integer, sa.ForeignKey("messages.id"), nullable=False, index=True),
        sa.Column("kind", sa.String(20), nullable=False),
        sa.Column("seen_by", sa.String(10), nullable=False),
        sa.Column("body", sa.LargeBinary, nullable=False),
        sa.Column("stored_at", sa.DateTime(timezone=True), nullable=False, index=True),
    )
    # No foreign key: SQLite adds one only by rebuilding the table; the queue writes both in one transaction.
    op.add_column("outgoing", sa.Column("body_id", sa.Integer))
    op.create_table(
        "flags",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("message_id", sa.Integer, sa.ForeignKey("messages.id"), nullable=False, index=True),
        sa.Column("seller_id", sa.Integer, sa.ForeignKey("parties.id"), nullable=False, index=True),
        sa.Column("source", sa.String(20), nullable=False),
        sa.Column("reason", sa.Text),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.UniqueConstraint("message_id", "source", name="uq_flags_message_source"),
    )
    op.create_table(
        "api_tokens",
        sa.Column("name", sa.String(100), primary_key=True),
        sa.Column("digest", sa.String(64), nullable=False, unique=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("api_tokens")
    op.drop_table("flags")
    op.drop_table("message_bodies")
    op.drop_index("ix_conversations_seller_id", table_name="conversations")
    op.drop_index("ix_conversations_order_id", table_name="conversations")
    for table, columns in (("outgoing", ["held", "body_id"]),
                           ("conversations", ["delivered_at", "review_requested_at", "auto_replied_at"]),
                           ("parties", ["vacation_since", "vacation_until", "held_since", "held_reason",
                                        "reinstated_at"]),
                           ("messages", ["subject", "kind", "no_response_needed", "auto_replied", "removed"])):
        with op.batch_alter_table(table) as batch:
            for column in columns:
                batch.drop_column(column)
