"""A programme can start by itself when a deal is won.

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-26 14:00:02.822077

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = "0007"
down_revision = '0006'
branch_labels = None
depends_on = None


# Plain ALTER TABLE on every database: a batch copy of task_programme on SQLite would break
# the foreign keys of the rows that point at it.
COLUMNS = ("won_pipeline_id", "start_on_deal_won")


def upgrade():
    op.add_column('task_programme', sa.Column('start_on_deal_won', sa.Boolean(),
                                              server_default=sa.false(), nullable=False))
    op.add_column('task_programme', sa.Column('won_pipeline_id', sa.Integer(), nullable=True))


def downgrade():
    for column in COLUMNS:
        op.execute(f"ALTER TABLE task_programme DROP COLUMN {column}")
