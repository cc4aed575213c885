"""Fixtures for the chart's tests."""

from __future__ import annotations

import pytest

from app.orgchart import template


@pytest.fixture
def acme(db, admin):
    """A company made from the seven-division template, in English."""
    company = template.apply(admin, {"company": "Acme", "language": "en"})
    db.session.commit()
    return company
