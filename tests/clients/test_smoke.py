"""The main paths of the client base through its services."""

from __future__ import annotations

from datetime import timedelta

import pytest

from app.clients import services as clients
from app.core.clock import utcnow
from app.core.errors import NotFound, ValidationError


@pytest.fixture
def pipeline(admin):
    return clients.save_pipeline(admin, {"name": "Sales", "stages": [
        {"name": "New", "probability": 10}, {"name": "Offer", "probability": 50},
        {"name": "Won", "kind": "won", "probability": 100},
        {"name": "Lost", "kind": "lost"}]})


def test_a_seller_works_a_client_from_lead_to_won_deal(office, admin, pipeline):
    lead = clients.create_lead(None, {"name": "Ivan", "company_name": "Acme", "email": "ivan@acme.test"})
    converted = clients.convert_lead(office.Sam, lead.id, {"deal_title": "Windows"})
    assert converted.status == "converted"
    deal = clients.get_deal(office.Sam, converted.deal_id)
    assert deal.stage.name == "New" and deal.company.legal_name == "Acme"
    lost = pipeline.stages[3]
    with pytest.raises(ValidationError):
        clients.move_deal(office.Sam, deal.id, {"stage_id": lost.id})
    clients.move_deal(office.Sam, deal.id, {"stage_id": pipeline.stages[2].id})
    assert deal.status == "won" and len(deal.history) == 2
    # Helen (Sam's head) sees it; Fred (another unit) does not.
    assert clients.get_company(office.Helen, deal.company_id)
    with pytest.raises(NotFound):
        clients.get_company(office.Fred, deal.company_id)


def test_a_company_is_never_its_own_ancestor(office):
    parent = clients.create_company(office.Sam, {"legal_name": "Holding"})
    child = clients.create_company(office.Sam, {"legal_name": "Child", "parent_id": parent.id})
    with pytest.raises(ValidationError):
        clients.update_company(office.Sam, parent.id, {"parent_id": child.id})
    assert clients.holding_ids(parent.id) == [parent.id, child.id]


def test_advancing_needs_a_next_step(office):
    company = clients.create_company(office.Sam, {"legal_name": "Beta", "phones": ["8 (900) 123-45-67"]})
    with pytest.raises(ValidationError):
        clients.log_interaction(office.Sam, {"company_id": company.id, "kind": "call",
                                             "outcome": "advance"})
    when = (utcnow() + timedelta(days=2)).isoformat()
    clients.log_interaction(office.Sam, {"company_id": company.id, "kind": "call", "outcome": "advance",
                                         "next_step": "Send offer", "next_step_at": when})
    assert company.next_step == "Send offer" and company.status == "active"
    found = clients.duplicates(phone="+7 900 123 45 67")
    assert [c.id for c in found] == [company.id]


def test_a_colleague_a_client_is_shared_with_reads_its_deals_but_does_not_move_them(
        office, admin, pipeline):
    from app.core.errors import PermissionDenied

    company = clients.create_company(office.Sam, {"legal_name": "Gamma"})
    deal = clients.create_deal(office.Sam, {"title": "Doors", "company_id": company.id})
    clients.share(office.Sam, company.id, {"user_ids": [office.Fred.id]})
    assert clients.get_deal(office.Fred, deal.id).title == "Doors"
    with pytest.raises(PermissionDenied):
        clients.move_deal(office.Fred, deal.id, {"stage_id": pipeline.stages[1].id})
    with pytest.raises(PermissionDenied):
        clients.update_deal(office.Fred, deal.id, {"title": "Mine"})
    assert (deal.stage.name, deal.title) == ("New", "Doors")


def test_a_deal_names_a_contact_of_its_own_company(office, pipeline):
    mine = clients.create_company(office.Sam, {"legal_name": "Delta"})
    other = clients.create_company(office.Sam, {"legal_name": "Epsilon"})
    person = clients.create_contact(office.Sam, {"name": "Olga", "companies": [{"company_id": other.id}]})
    with pytest.raises(ValidationError):
        clients.create_deal(office.Sam, {"title": "x", "company_id": mine.id, "contact_id": person.id})


def test_duplicates_read_percent_and_underscore_as_themselves(office):
    clients.create_company(office.Sam, {"legal_name": "Zeta", "emails": ["a_b@zeta.test"]})
    assert clients.duplicates(email="a%b@zeta.test") == []
    assert [c.legal_name for c in clients.duplicates(email="a_b@zeta.test")] == ["Zeta"]
