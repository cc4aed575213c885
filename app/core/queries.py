"""Small query helpers every module uses."""

from __future__ import annotations

from sqlalchemy import ARRAY, Integer, any_, bindparam

from app.extensions import db


def on_postgres() -> bool:
    return db.session.get_bind().dialect.name == "postgresql"


def among(column, ids: list[int]):
    """`column IN ids`; on PostgreSQL one array parameter, so a statement for hundreds of ids
    stays short and its plan cached."""
    if on_postgres():
        return column == any_(bindparam(None, list(ids), type_=ARRAY(Integer)))
    return column.in_(ids)
