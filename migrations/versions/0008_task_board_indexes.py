"""Task board indexes: columns in due order, recent done work.

A column of a large scope is read in due order until it is full; the work a scope has done
in the last two weeks is counted and listed without visiting older done work.

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-26 14:20:00.000000

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table("task", schema=None) as batch_op:
        batch_op.create_index("ix_task_status_due", ["status", "due_at", "id"], unique=False)
        batch_op.create_index("ix_task_done", ["assignee_id", "done_at"], unique=False,
                              postgresql_where=sa.text("status = 'done'"),
                              sqlite_where=sa.text("status = 'done'"))


def downgrade():
    with op.batch_alter_table("task", schema=None) as batch_op:
        batch_op.drop_index("ix_task_done", postgresql_where=sa.text("status = 'done'"),
                            sqlite_where=sa.text("status = 'done'"))
        batch_op.drop_index("ix_task_status_due")
