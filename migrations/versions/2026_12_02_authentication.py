"""Keep each message's sender authentication (an RFC 8601 Authentication-Results value) in the message log.

Revision ID: 2026_12_02_authentication
Revises: 2026_12_02_queue
Create Date: 2026-12-02
"""
import sqlalchemy as sa
from alembic import op

revision = "2026_12_02_authentication"
down_revision = "2026_12_02_queue"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("messages", sa.Column("authentication", sa.Text))


def downgrade() -> None:
    with op.batch_alter_table("messages") as batch:
        batch.drop_column("authentication")
