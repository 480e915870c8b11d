"""Create the store: parties, sender addresses, conversations, aliases, message log.

Revision ID: 2026_12_01_create_store
Revises:
Create Date: 2026-12-01
"""
import sqlalchemy as sa
from alembic import op

revision = "2026_12_01_create_store"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "parties",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("address", sa.String(320), nullable=False),
        sa.Column("role", sa.String(10), nullable=False),
        sa.Column("display_name", sa.String(200)),
        sa.Column("locale", sa.String(10), nullable=False),
        sa.Column("opted_out", sa.Boolean, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.UniqueConstraint("address", "role", name="uq_parties_address_role"),
    )
    op.create_table(
        "sender_addresses",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("party_id", sa.Integer, sa.ForeignKey("parties.id", ondelete="CASCADE"), nullable=False),
        sa.Column("address", sa.String(320), nullable=False),
        sa.UniqueConstraint("party_id", "address", name="uq_sender_addresses_party_address"),
    )
    op.create_table(
        "conversations",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("buyer_id", sa.Integer, sa.ForeignKey("parties.id"), nullable=False),
        sa.Column("seller_id", sa.Integer, sa.ForeignKey("parties.id"), nullable=False),
        sa.Column("order_id", sa.String(100)),
        sa.Column("category", sa.String(100)),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index(
        "uq_conversations_buyer_seller_order",
        "conversations",
        ["buyer_id", "seller_id", sa.text("coalesce(order_id, '')")],
        unique=True,
    )
    op.create_table(
        "aliases",
        sa.Column("local_part", sa.String(64), primary_key=True),
        sa.Column("party_id", sa.Integer, sa.ForeignKey("parties.id"), nullable=False),
        sa.Column("conversation_id", sa.String(32), sa.ForeignKey("conversations.id"), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_aliases_conversation_id", "aliases", ["conversation_id"])
    op.create_table(
        "messages",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("conversation_id", sa.String(32), sa.ForeignKey("conversations.id"), nullable=False),
        sa.Column("direction", sa.String(20), nullable=False),
        sa.Column("relay_message_id", sa.String(255)),
        sa.Column("original_message_id", sa.String(998)),
        sa.Column("size_in", sa.Integer, nullable=False),
        sa.Column("size_out", sa.Integer),
        sa.Column("verdict", sa.String(20), nullable=False),
        sa.Column("rule", sa.String(50)),
        sa.Column("reason", sa.Text),
        sa.Column("next_hop_reply", sa.Text),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_messages_conversation_id", "messages", ["conversation_id"])
    op.create_index("ix_messages_relay_message_id", "messages", ["relay_message_id"])
    op.create_index("ix_messages_original_message_id", "messages", ["original_message_id"])


def downgrade() -> None:
    op.drop_table("messages")
    op.drop_table("aliases")
    op.drop_index("uq_conversations_buyer_seller_order", table_name="conversations")
    op.drop_table("conversations")
    op.drop_table("sender_addresses")
    op.drop_table("parties")
