"""Keep which links a buyer's forwarded message held (as fingerprints), so a seller quoting them is not bounced.

Revision ID: 2026_12_03_links_written
Revises: 2026_12_02_authentication
Create Date: 2026-12-03
"""
import sqlalchemy as sa
from alembic import op

revision = "2026_12_03_links_written"
down_revision = "2026_12_02_authentication"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("messages", sa.Column("links_written", sa.Text))


def downgrade() -> None:
    with op.batch_alter_table("messages") as batch:
        batch.drop_column("links_written")
