"""JSON API of the client base: each endpoint's outcome with a token (and a browser session),
access by the chart (another's records are 404 exactly like missing ones), bad input refused
with field errors and nothing changed, lists in a fixed number of queries, and the OpenAPI
document."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import func, select

from app.clients import services as clients
from app.clients.models import (
    Category,
    Company,
    Contact,
    ContactLink,
    Deal,
    Interaction,
    Lead,
    Pipeline,
    Reason,
    Share,
    Stage,
    StageChange,
)
from app.core import clock, signals
from app.core.models import AuditEvent, Notification
from app.extensions import db

API = "/api/v1"
C = f"{API}/clients"
BIG = 2**31  # one past the database's integers


def bearer(token: str) -> dict:
    return {"Authorization": f"Bearer {token}"}


def ok(resp, status: int = 200):
    assert resp.status_code == status, resp.get_data(as_text=True)
    return resp.get_json()


def error_of(resp, status: int, code: str) -> dict:
    assert resp.status_code == status, resp.get_data(as_text=True)
    body = resp.get_json()
    assert set(body) == {"error"} and set(body["error"]) == {"code", "message", "fields"}
    assert body["error"]["code"] == code and body["error"]["message"]
    return body["error"]


MODELS = (Company, Category, Share, Contact, ContactLink, Deal, StageChange, Interaction, Lead,
          Pipeline, Stage, Reason, AuditEvent, Notification)


def row_counts() -> dict[str, int]:
    return {m.__name__: db.session.scalar(select(func.count()).select_from(m)) for m in MODELS}


def later(**kw) -> str:
    return (clock.utcnow() + timedelta(**kw)).isoformat()


@pytest.fixture
def tok(office, admin, token_for):
    """Bearer headers by first name (and the administrator's)."""
    out = {name: bearer(token_for(getattr(office, name)))
           for name in ("Dora", "Helen", "Sam", "Sara", "Fred")}
    out["admin"] = bearer(token_for(admin))
    return out


@pytest.fixture
def pipeline(admin):
    p = clients.save_pipeline(admin, {"name": "Sales", "stages": [
        {"name": "New", "probability": 10}, {"name": "Offer", "probability": 50},
        {"name": "Won", "kind": "won", "probability": 100}, {"name": "Lost", "kind": "lost"}]})
    db.session.commit()
    return p


@pytest.fixture
def other_pipeline(admin, pipeline):
    p = clients.save_pipeline(admin, {"name": "Service", "stages": [
        {"name": "Asked"}, {"name": "Done", "kind": "won"}, {"name": "Dropped", "kind": "lost"}]})
    db.session.commit()
    return p


@pytest.fixture
def reasons(admin):
    out = {kind: clients.add_reason(admin, {"kind": kind, "name": name})
           for kind, name in (("lost", "Price"), ("refusal", "No budget"),
                              ("complaint", "Late delivery"))}
    db.session.commit()
    return out


def new_company(client, headers, **kw):
    return ok(client.post(f"{C}/companies", headers=headers,
                          json={"legal_name": "Acme LLC", **kw}), 201)


def new_deal(client, headers, company_id, **kw):
    return ok(client.post(f"{C}/deals", headers=headers,
                          json={"title": "Windows", "company_id": company_id, **kw}), 201)


# --- authentication -----------------------------------------------------------------------

def test_no_token_is_401_and_a_session_needs_its_csrf_token(app, client, user, user_client):
    for method, path in (("get", "/companies"), ("post", "/companies"), ("get", "/deals"),
                         ("get", "/leads"), ("post", "/hand-over"), ("get", "/pipelines")):
        error_of(getattr(client, method)(f"{C}{path}", json={}), 401, "unauthorized")
    error_of(client.get(f"{C}/companies", headers=bearer("crm_not-a-token")), 401, "unauthorized")

    before = row_counts()
    resp = user_client.post(f"{C}/companies", json={"legal_name": "No token Ltd"})
    error_of(resp, 400, "csrf_failed")
    assert row_counts() == before

    assert ok(user_client.get(f"{C}/companies"))["items"] == []  # reading needs no token
    created = ok(user_client.post(f"{C}/companies", json={"legal_name": "Session Ltd"},
                                  headers={"X-CSRFToken": user_client.csrf()}), 201)
    assert created["responsible"] == {"id": user.id, "name": user.name}
    assert db.session.get(Company, created["id"]).legal_name == "Session Ltd"


# --- companies ----------------------------------------------------------------------------

def test_company_created_read_changed_and_archived(client, office, tok):
    o = office
    clock.freeze(clock.utcnow().replace(microsecond=0))
    holding = new_company(client, tok["Sam"], legal_name="Acme Holding", short_name="Acme")
    step_at = later(days=2)
    made = new_company(client, tok["Sam"], legal_name="Acme Trading LLC", tax_number="7701234567",
                       categories=["Retail", "Wholesale"], tags=["VIP", "north"],
                       phones=["8 (900) 123-45-67"], emails=["Info@Acme.test"],
                       addresses=[{"kind": "office", "text": "Moscow, Tverskaya 1"}],
                       website="acme.test", status="active", parent_id=holding["id"],
                       next_step="Send the offer", next_step_at=step_at, is_supplier=True)
    assert made["responsible"] == {"id": o.Sam.id, "name": "Sam"}
    assert made["categories"] == ["Retail", "Wholesale"] and made["tags"] == ["vip", "north"]
    assert made["emails"] == ["info@acme.test"] and made["phones"] == ["8 (900) 123-45-67"]
    assert made["addresses"] == [{"kind": "office", "text": "Moscow, Tverskaya 1"}]
    assert made["parent"] == {"id": holding["id"], "name": "Acme"}
    assert made["next_step"] == "Send the offer" and made["next_step_overdue"] is False
    assert made["is_client"] and made["is_supplier"] and not made["is_partner"]
    assert made["editable"] is True and made["shared_with"] == [] and made["contacts"] == []

    top = ok(client.get(f"{C}/companies/{holding['id']}", headers=tok["Sam"]))
    assert top["subsidiaries"] == [{"id": made["id"], "name": "Acme Trading LLC"}]
    assert top["holding_ids"] == [holding["id"], made["id"]] and top["parent"] is None

    # Helen (Sam's head) changes one field; the rest stays
    patched = ok(client.patch(f"{C}/companies/{made['id']}", headers=tok["Helen"],
                              json={"short_name": "Acme T", "tags": ["key"]}))
    assert patched["short_name"] == "Acme T" and patched["name"] == "Acme T"
    assert patched["tags"] == ["key"] and patched["categories"] == ["Retail", "Wholesale"]
    assert patched["tax_number"] == "7701234567" and patched["next_step"] == "Send the offer"
    assert db.session.scalar(select(func.count()).select_from(AuditEvent).where(
        AuditEvent.action == "company.update")) == 1

    # a company past its next step says so
    clock.advance(timedelta(days=3))
    assert ok(client.get(f"{C}/companies/{made['id']}",
                         headers=tok["Sam"]))["next_step_overdue"] is True

    assert client.delete(f"{C}/companies/{made['id']}", headers=tok["Sam"]).status_code == 204
    assert db.session.get(Company, made["id"]).archived_at is not None
    listed = ok(client.get(f"{C}/companies", headers=tok["Sam"]))
    assert [c["id"] for c in listed["items"]] == [holding["id"]]
    # the archived card can still be read (its history stays)
    assert ok(client.get(f"{C}/companies/{made['id']}", headers=tok["Sam"]))["archived_at"]


def test_company_list_searches_filters_and_pages(client, office, tok):
    clock.freeze(clock.utcnow())
    rows = [
        dict(legal_name="Acme Trading", tax_number="7701000001", phones=["+7 900 111-22-33"],
             status="active", tags=["vip"], categories=["Retail"],
             next_step="Call", next_step_at=later(days=-1)),
        dict(legal_name="Beta Supplies", emails=["sales@beta.test"], is_client=False,
             is_supplier=True, status="active", next_step="Visit", next_step_at=later(days=5)),
        dict(legal_name="Gamma Partners", is_partner=True, status="prospect"),
        dict(legal_name="Delta Former", status="former"),
        dict(legal_name="Эпсилон Торг", status="prospect", tags=["vip"]),
    ]
    ids = [new_company(client, tok["Sam"], **r)["id"] for r in rows]
    child = new_company(client, tok["Sam"], legal_name="Acme Child", parent_id=ids[0])["id"]
    sara_own = new_company(client, tok["Sara"], legal_name="Sara's Acme")["id"]

    def names(query: str, who: str = "Sam") -> list[str]:
        page = ok(client.get(f"{C}/companies?{query}", headers=tok[who]))
        return [c["legal_name"] for c in page["items"]]

    assert names("") == ["Acme Child", "Acme Trading", "Beta Supplies", "Delta Former",
                         "Gamma Partners", "Эпсилон Торг"]
    assert set(names("q=acme")) == {"Acme Child", "Acme Trading"}  # best match first on PG
    assert names("q=8 900 111 22 33") == ["Acme Trading"]  # a phone as typed
    assert names("q=7701000001") == ["Acme Trading"]
    assert names("q=sales@beta") == ["Beta Supplies"]
    assert names("q=эпсилон") == ["Эпсилон Торг"]
    if db.engine.dialect.name == "postgresql":  # trigram similarity forgives a typo
        assert names("q=Acme Tradng")[0] == "Acme Trading"
    assert names("status=active") == ["Acme Trading", "Beta Supplies"]
    assert names("kind=supplier") == ["Beta Supplies"]
    assert names("kind=partner") == ["Gamma Partners"]
    assert names("tag=VIP") == ["Acme Trading", "Эпсилон Торг"]
    assert names("category=retail") == ["Acme Trading"]
    assert names(f"parent_id={ids[0]}") == ["Acme Child"]
    assert names("next_step=overdue") == ["Acme Trading"]
    assert set(names("next_step=none")) == {"Acme Child", "Gamma Partners", "Эпсилон Торг"}
    assert names(f"responsible_id={office.Sam.id}&status=prospect") == [
        "Acme Child", "Gamma Partners", "Эпсилон Торг"]
    # Sam's companies are not Sara's; Helen above them both sees all of them
    assert names("q=acme", "Sara") == ["Sara's Acme"]
    assert len(names("", "Helen")) == 7
    assert child in [c["id"] for c in ok(client.get(f"{C}/companies",
                                                    headers=tok["Dora"]))["items"]]
    assert sara_own not in [c["id"] for c in ok(client.get(f"{C}/companies",
                                                           headers=tok["Fred"]))["items"]]

    first = ok(client.get(f"{C}/companies?per_page=4", headers=tok["Sam"]))
    assert first["meta"] == {"page": 1, "per_page": 4, "total": 6, "pages": 2}
    second = ok(client.get(f"{C}/companies?per_page=4&page=2", headers=tok["Sam"]))
    assert len(second["items"]) == 2
    assert not {c["id"] for c in first["items"]} & {c["id"] for c in second["items"]}


def test_share_rollup_and_history(client, office, tok, pipeline, reasons):
    o = office
    parent = new_company(client, tok["Sam"], legal_name="North Holding")
    child = new_company(client, tok["Sam"], legal_name="North Retail", parent_id=parent["id"])
    grandchild = new_company(client, tok["Sam"], legal_name="North Shop", parent_id=child["id"])
    new_deal(client, tok["Sam"], parent["id"], amount="100.50")
    new_deal(client, tok["Sam"], grandchild["id"], amount="1000")
    won = new_deal(client, tok["Sam"], child["id"], amount=20)
    ok(client.post(f"{C}/deals/{won['id']}/move", headers=tok["Sam"],
                   json={"stage_id": pipeline.stages[2].id}))

    # Sara sees nothing of it until it is shared with her; then she reads and logs contacts
    error_of(client.get(f"{C}/companies/{parent['id']}", headers=tok["Sara"]), 404, "not_found")
    shared = ok(client.put(f"{C}/companies/{parent['id']}/share", headers=tok["Sam"],
                           json={"user_ids": [o.Sara.id]}))
    assert shared == {"user_ids": [o.Sara.id]}
    card = ok(client.get(f"{C}/companies/{parent['id']}", headers=tok["Sara"]))
    assert card["shared_with"] == [{"id": o.Sara.id, "name": "Sara"}] and card["editable"] is False
    error_of(client.patch(f"{C}/companies/{parent['id']}", headers=tok["Sara"],
                          json={"notes": "mine now"}), 403, "permission_denied")
    error_of(client.delete(f"{C}/companies/{parent['id']}", headers=tok["Sara"]), 403,
             "permission_denied")
    error_of(client.put(f"{C}/companies/{parent['id']}/share", headers=tok["Sara"],
                        json={"user_ids": [o.Fred.id]}), 403, "permission_denied")
    assert db.session.get(Company, parent["id"]).notes == ""

    rollup = ok(client.get(f"{C}/companies/{parent['id']}/rollup", headers=tok["Sam"]))
    assert sorted(rollup["company_ids"]) == sorted([parent["id"], child["id"], grandchild["id"]])
    by_status = {d["status"]: d for d in rollup["deals"]}
    assert by_status["open"]["count"] == 2 and by_status["open"]["amount_minor"] == 110050
    assert by_status["open"]["amount"] == "1100.50" and by_status["open"]["currency"] == "RUB"
    assert by_status["won"]["count"] == 1 and by_status["won"]["amount_minor"] == 2000
    child_rollup = ok(client.get(f"{C}/companies/{child['id']}/rollup", headers=tok["Sam"]))
    assert sorted(child_rollup["company_ids"]) == sorted([child["id"], grandchild["id"]])

    ok(client.post(f"{C}/interactions", headers=tok["Sara"],
                   json={"company_id": parent["id"], "kind": "call", "subject": "Intro"}), 201)
    ok(client.post(f"{C}/interactions", headers=tok["Sam"],
                   json={"company_id": parent["id"], "kind": "complaint", "subject": "Late",
                         "reason_id": reasons["complaint"].id,
                         "occurred_at": later(hours=1)}), 201)
    history = ok(client.get(f"{C}/companies/{parent['id']}/history", headers=tok["Sam"]))
    assert [(i["kind"], i["title"]) for i in history["items"]] == [("complaint", "Late"),
                                                                  ("call", "Intro")]
    complaint = history["items"][0]["interaction"]
    assert complaint["reason"] == {"id": reasons["complaint"].id, "kind": "complaint",
                                   "name": "Late delivery"}
    assert history["items"][1]["interaction"]["author"] == {"id": o.Sara.id, "name": "Sara"}
    assert len(ok(client.get(f"{C}/companies/{parent['id']}/history?limit=1",
                             headers=tok["Sam"]))["items"]) == 1

    # unsharing takes it away again
    ok(client.put(f"{C}/companies/{parent['id']}/share", headers=tok["Sam"], json={"user_ids": []}))
    error_of(client.get(f"{C}/companies/{parent['id']}/history", headers=tok["Sara"]), 404,
             "not_found")


# --- contacts -----------------------------------------------------------------------------

def test_contacts_created_found_and_changed(client, office, tok):
    acme = new_company(client, tok["Sam"], legal_name="Acme")
    fred_co = new_company(client, tok["Fred"], legal_name="Fred's Bank")
    made = ok(client.post(f"{C}/contacts", headers=tok["Sam"], json={
        "name": "Ivan Sidorov", "phones": ["+7 (901) 555-44-33"], "emails": ["Ivan@Acme.test"],
        "messengers": [{"kind": "telegram", "handle": "@ivan"}], "birthday": "1980-02-29",
        "consent": True, "companies": [{"company_id": acme["id"], "position": "CEO"}]}), 201)
    assert made["companies"] == [{"company_id": acme["id"], "name": "Acme", "position": "CEO"}]
    assert made["birthday"] == "1980-02-29" and made["consent"] is True
    assert made["emails"] == ["ivan@acme.test"]
    assert made["messengers"] == [{"kind": "telegram", "handle": "@ivan"}]
    ok(client.post(f"{C}/contacts", headers=tok["Sam"], json={"name": "Olga Private"}), 201)

    # Fred also links Ivan to his bank: Sam does not learn of Fred's company
    contact = db.session.get(Contact, made["id"])
    contact.links.append(ContactLink(company_id=fred_co["id"], position="Client"))
    db.session.commit()
    assert [c["name"] for c in ok(client.get(f"{C}/contacts/{made['id']}",
                                             headers=tok["Sam"]))["companies"]] == ["Acme"]
    assert [c["name"] for c in ok(client.get(f"{C}/contacts/{made['id']}",
                                             headers=tok["Fred"]))["companies"]] == ["Fred's Bank"]

    def names(query: str, who: str = "Sam") -> list[str]:
        return [c["name"] for c in ok(client.get(f"{C}/contacts?{query}",
                                                 headers=tok[who]))["items"]]

    assert names("") == ["Ivan Sidorov", "Olga Private"]
    assert names("q=sidor") == ["Ivan Sidorov"]
    assert names("q=8 901 555 44 33") == ["Ivan Sidorov"]
    assert names("q=ivan@acme") == ["Ivan Sidorov"]
    assert names(f"company_id={acme['id']}") == ["Ivan Sidorov"]
    assert names("", "Sara") == []
    error_of(client.get(f"{C}/contacts?company_id={acme['id']}", headers=tok["Sara"]), 404,
             "not_found")

    card = ok(client.get(f"{C}/companies/{acme['id']}", headers=tok["Sam"]))
    assert card["contacts"] == [{"id": made["id"], "name": "Ivan Sidorov", "position": "CEO",
                                 "phones": ["+7 (901) 555-44-33"], "emails": ["ivan@acme.test"]}]

    patched = ok(client.patch(f"{C}/contacts/{made['id']}", headers=tok["Sam"],
                              json={"notes": "Prefers mornings"}))
    assert patched["notes"] == "Prefers mornings" and patched["name"] == "Ivan Sidorov"
    assert patched["phones"] == ["+7 (901) 555-44-33"]


# --- interactions and the next step -------------------------------------------------------

def test_interactions_move_the_next_step(client, office, tok, pipeline, reasons):
    clock.freeze(clock.utcnow())
    acme = new_company(client, tok["Sam"], legal_name="Acme")
    deal = new_deal(client, tok["Sam"], acme["id"])
    step_at = later(days=2)
    row = ok(client.post(f"{C}/interactions", headers=tok["Sam"], json={
        "company_id": acme["id"], "kind": "call", "subject": "First call", "outcome": "advance",
        "next_step": "Send the offer", "next_step_at": step_at}), 201)
    assert row["author"] == {"id": office.Sam.id, "name": "Sam"} and row["outcome"] == "advance"
    company = db.session.get(Company, acme["id"])
    assert company.next_step == "Send the offer" and company.status == "active"

    new_at = later(days=7)
    ok(client.post(f"{C}/interactions", headers=tok["Sam"], json={
        "company_id": acme["id"], "deal_id": deal["id"], "kind": "meeting",
        "outcome": "postpone", "next_step_at": new_at}), 201)
    assert db.session.get(Deal, deal["id"]).next_step_at.isoformat() == new_at

    before = row_counts()
    err = error_of(client.post(f"{C}/interactions", headers=tok["Sam"], json={
        "company_id": acme["id"], "kind": "call", "outcome": "refuse"}), 422, "validation_error")
    assert "reason_id" in err["fields"]
    err = error_of(client.post(f"{C}/interactions", headers=tok["Sam"], json={
        "company_id": acme["id"], "kind": "call", "outcome": "postpone",
        "next_step_at": later(days=-1)}), 422, "validation_error")
    assert "next_step_at" in err["fields"]
    assert row_counts() == before

    ok(client.post(f"{C}/interactions", headers=tok["Sam"], json={
        "company_id": acme["id"], "deal_id": deal["id"], "kind": "refusal",
        "outcome": "refuse", "reason_id": reasons["refusal"].id}), 201)
    refused = db.session.get(Deal, deal["id"])
    assert refused.status == "lost" and refused.next_step_at is None

    page = ok(client.get(f"{C}/interactions?company_id={acme['id']}&per_page=2",
                         headers=tok["Sam"]))
    assert page["meta"]["total"] == 3 and len(page["items"]) == 2
    only_deal = ok(client.get(f"{C}/interactions?deal_id={deal['id']}", headers=tok["Sam"]))
    assert [i["kind"] for i in only_deal["items"]] == ["refusal", "meeting"]
    assert ok(client.get(f"{C}/interactions?kind=call", headers=tok["Sam"]))["meta"]["total"] == 1
    assert ok(client.get(f"{C}/interactions", headers=tok["Sara"]))["items"] == []
    error_of(client.get(f"{C}/interactions?company_id={acme['id']}", headers=tok["Sara"]), 404,
             "not_found")


# --- leads --------------------------------------------------------------------------------

def test_leads_taken_contacted_rejected_and_converted(client, office, admin, tok, pipeline):
    clients.set_settings(admin, {"lead_minutes": 20, "lead_post_id": office.head.id})
    db.session.commit()
    clock.freeze(clock.utcnow().replace(microsecond=0))
    made = ok(client.post(f"{C}/leads", headers=tok["Sam"], json={
        "source": "call", "name": "Pavel", "company_name": "Omega", "email": "Pavel@Omega.test",
        "phone": "+7 902 000-11-22", "message": "Wants windows"}), 201)
    assert made["status"] == "new" and made["source"] == "call"
    assert made["email"] == "pavel@omega.test" and made["overdue"] is False
    assert made["responsible"] == {"id": office.Helen.id, "name": "Helen"}
    assert made["contact_due_at"] == (clock.utcnow() + timedelta(minutes=20)).isoformat()
    mine = ok(client.post(f"{C}/leads", headers=tok["Helen"], json={
        "name": "Rita", "responsible_id": office.Sam.id}), 201)
    assert mine["responsible"]["id"] == office.Sam.id

    clock.advance(timedelta(minutes=21))
    overdue = ok(client.get(f"{C}/leads?overdue=true", headers=tok["Helen"]))
    assert [lead["id"] for lead in overdue["items"]] == [mine["id"], made["id"]]
    assert all(lead["overdue"] for lead in overdue["items"])
    # Sam sees his own lead, not Helen's
    assert [x["id"] for x in ok(client.get(f"{C}/leads", headers=tok["Sam"]))["items"]] == \
        [mine["id"]]
    error_of(client.get(f"{C}/leads/{made['id']}", headers=tok["Sam"]), 404, "not_found")

    contacted = ok(client.post(f"{C}/leads/{mine['id']}/contacted", headers=tok["Sam"]))
    assert contacted["status"] == "contacted" and contacted["overdue"] is False
    error_of(client.post(f"{C}/leads/{mine['id']}/contacted", headers=tok["Sam"]), 409, "conflict")
    err = error_of(client.post(f"{C}/leads/{mine['id']}/reject", headers=tok["Sam"],
                               json={"reason": ""}), 422, "validation_error")
    assert "reason" in err["fields"]
    rejected = ok(client.post(f"{C}/leads/{mine['id']}/reject", headers=tok["Sam"],
                              json={"reason": "A student, not a buyer"}))
    assert rejected["status"] == "rejected" and rejected["reject_reason"] == "A student, not a buyer"
    assert ok(client.get(f"{C}/leads?status=rejected", headers=tok["Helen"]))["meta"]["total"] == 1

    # a company Sam keeps has the lead's phone: Helen sees it; Fred, asked, would not
    twin = new_company(client, tok["Sam"], legal_name="Omega Old", phones=["8 902 000 11 22"])
    dup = ok(client.get(f"{C}/leads/{made['id']}/duplicates", headers=tok["Helen"]))
    assert [c["id"] for c in dup["items"]] == [twin["id"]] and dup["hidden"] == 0
    fred_twin = new_company(client, tok["Fred"], legal_name="Omega Bank", tax_number="1234")
    db.session.get(Lead, made["id"]).tax_number = "1234"
    db.session.commit()
    dup = ok(client.get(f"{C}/leads/{made['id']}/duplicates", headers=tok["Helen"]))
    assert [c["id"] for c in dup["items"]] == [twin["id"]] and dup["hidden"] == 1
    assert fred_twin["id"] not in [c["id"] for c in dup["items"]]

    converted = ok(client.post(f"{C}/leads/{made['id']}/convert", headers=tok["Helen"],
                               json={"company_id": twin["id"], "deal_title": "Windows",
                                     "amount": "5000"}))
    assert converted["status"] == "converted" and converted["company_id"] == twin["id"]
    deal = ok(client.get(f"{C}/deals/{converted['deal_id']}", headers=tok["Helen"]))
    assert deal["title"] == "Windows" and deal["amount_minor"] == 500000
    assert deal["stage"]["name"] == "New" and deal["contact"]["id"] == converted["contact_id"]
    contact = ok(client.get(f"{C}/contacts/{converted['contact_id']}", headers=tok["Helen"]))
    assert contact["name"] == "Pavel" and contact["companies"][0]["company_id"] == twin["id"]
    error_of(client.post(f"{C}/leads/{made['id']}/convert", headers=tok["Helen"], json={}), 409,
             "conflict")


# --- deals --------------------------------------------------------------------------------

def test_deals_created_listed_changed_and_moved(client, office, tok, pipeline, other_pipeline,
                                                reasons):
    new, offer, won_stage, lost = pipeline.stages
    acme = new_company(client, tok["Sam"], legal_name="Acme")
    beta = new_company(client, tok["Sam"], legal_name="Beta")
    made = new_deal(client, tok["Sam"], acme["id"], amount="1500.5", currency="EUR",
                    expected_close="2027-03-31", next_step="Call back", next_step_at=later(days=1))
    assert made["stage"] == {"id": new.id, "position": 1, "name": "New", "kind": "open",
                             "probability": 10}
    assert (made["amount"], made["amount_minor"], made["currency"]) == ("1500.50", 150050, "EUR")
    assert made["probability"] == 10 and made["status"] == "open"
    assert made["pipeline"] == {"id": pipeline.id, "name": "Sales"}
    assert [h["stage"]["name"] for h in made["history"]] == ["New"]
    assert made["history"][0]["by"] == {"id": office.Sam.id, "name": "Sam"}
    service = new_deal(client, tok["Sam"], beta["id"], title="Repair",
                       pipeline_id=other_pipeline.id)
    assert service["stage"]["name"] == "Asked"

    patched = ok(client.patch(f"{C}/deals/{made['id']}", headers=tok["Sam"],
                              json={"amount": 2000, "probability": 35}))
    assert patched["amount_minor"] == 200000 and patched["probability"] == 35
    assert patched["title"] == "Windows" and patched["currency"] == "EUR"
    err = error_of(client.patch(f"{C}/deals/{made['id']}", headers=tok["Sam"],
                                json={"stage_id": won_stage.id}), 422, "validation_error")
    assert "stage_id" in err["fields"]
    assert db.session.get(Deal, made["id"]).stage_id == new.id

    won_signals = []

    def on_won(deal, **kw):
        won_signals.append(deal.id)

    signals.deal_won.connect(on_won)
    try:
        moved = ok(client.post(f"{C}/deals/{made['id']}/move", headers=tok["Sam"],
                               json={"stage_id": offer.id}))
        assert moved["stage"]["name"] == "Offer" and moved["probability"] == 50
        moved = ok(client.post(f"{C}/deals/{made['id']}/move", headers=tok["Sam"],
                               json={"stage_id": won_stage.id}))
    finally:
        signals.deal_won.disconnect(on_won)
    assert moved["status"] == "won" and moved["closed_at"] and won_signals == [made["id"]]
    assert [h["stage"]["name"] for h in moved["history"]] == ["New", "Offer", "Won"]

    lost_one = ok(client.post(f"{C}/deals/{service['id']}/move", headers=tok["Sam"], json={
        "stage_id": other_pipeline.stages[2].id, "reason_id": reasons["lost"].id,
        "note": "Too dear"}))
    assert lost_one["status"] == "lost" and lost_one["lost_note"] == "Too dear"
    assert lost_one["lost_reason"] == {"id": reasons["lost"].id, "kind": "lost", "name": "Price"}

    def titles(query: str, who: str = "Sam") -> list[str]:
        return [d["title"] for d in ok(client.get(f"{C}/deals?{query}",
                                                  headers=tok[who]))["items"]]

    third = new_deal(client, tok["Sam"], beta["id"], title="Doors")
    assert titles("") == ["Doors", "Repair", "Windows"]
    assert titles("status=open") == ["Doors"]
    assert titles(f"pipeline_id={other_pipeline.id}") == ["Repair"]
    assert titles(f"stage_id={won_stage.id}") == ["Windows"]
    assert titles(f"company_id={beta['id']}") == ["Doors", "Repair"]
    assert titles("q=win") == ["Windows"]
    assert titles("next_step=none") == ["Doors"]
    assert titles(f"responsible_id={office.Sam.id}&status=lost") == ["Repair"]
    assert titles("", "Sara") == [] and titles("", "Helen") == ["Doors", "Repair", "Windows"]
    clock.freeze(clock.utcnow() + timedelta(days=2))
    ok(client.patch(f"{C}/deals/{third['id']}", headers=tok["Sam"],
                    json={"next_step": "Measure", "next_step_at": later(hours=-1)}))
    assert titles("next_step=overdue") == ["Doors"]
    assert ok(client.get(f"{C}/deals/{third['id']}", headers=tok["Sam"]))["next_step_overdue"]


# --- pipelines, boards, reasons, hand-over ------------------------------------------------

def test_pipelines_are_set_by_administrators_and_show_a_board(client, office, tok, pipeline,
                                                               other_pipeline):
    listed = ok(client.get(f"{C}/pipelines", headers=tok["Sam"]))
    assert [p["name"] for p in listed] == ["Sales", "Service"]
    assert [s["name"] for s in listed[0]["stages"]] == ["New", "Offer", "Won", "Lost"]
    body = {"name": "Tenders", "stages": [{"name": "Bid"}, {"name": "Won", "kind": "won"},
                                          {"name": "Lost", "kind": "lost"}]}
    before = row_counts()
    error_of(client.post(f"{C}/pipelines", headers=tok["Sam"], json=body), 403, "permission_denied")
    err = error_of(client.post(f"{C}/pipelines", headers=tok["admin"], json={
        "name": "Bad", "stages": [{"name": "Only", "kind": "open"}]}), 422, "validation_error")
    assert "stages" in err["fields"]
    assert row_counts() == before
    made = ok(client.post(f"{C}/pipelines", headers=tok["admin"], json=body), 201)
    assert [s["kind"] for s in made["stages"]] == ["open", "won", "lost"]

    stages = [{"id": s.id, "name": s.name, "kind": s.kind, "probability": s.probability}
              for s in pipeline.stages]
    stages.insert(2, {"name": "Contract", "probability": 80})
    changed = ok(client.put(f"{C}/pipelines/{pipeline.id}", headers=tok["admin"],
                            json={"name": "Sales 2", "stages": stages}))
    assert changed["name"] == "Sales 2"
    assert [s["name"] for s in changed["stages"]] == ["New", "Offer", "Contract", "Won", "Lost"]
    assert changed["stages"][0]["id"] == pipeline.stages[0].id  # the old stage kept
    error_of(client.put(f"{C}/pipelines/{pipeline.id}", headers=tok["Sam"],
                        json={"name": "Mine", "stages": stages}), 403, "permission_denied")
    # a stage of another pipeline is refused, and nothing changes
    foreign = stages + [{"id": other_pipeline.stages[0].id, "name": "Stolen"}]
    before = row_counts()
    err = error_of(client.put(f"{C}/pipelines/{pipeline.id}", headers=tok["admin"],
                              json={"name": "X", "stages": foreign}), 422, "validation_error")
    assert "stages" in err["fields"]
    assert row_counts() == before
    assert ok(client.get(f"{C}/pipelines/{pipeline.id}", headers=tok["Sam"]))["name"] == "Sales 2"
    assert db.session.get(Stage, other_pipeline.stages[0].id).pipeline_id == other_pipeline.id

    acme = new_company(client, tok["Sam"], legal_name="Acme")
    first = new_deal(client, tok["Sam"], acme["id"], title="One")
    second = new_deal(client, tok["Sam"], acme["id"], title="Two")
    ok(client.post(f"{C}/deals/{second['id']}/move", headers=tok["Sam"],
                   json={"stage_id": pipeline.stages[1].id}))
    sara_co = new_company(client, tok["Sara"], legal_name="Sara Co")
    new_deal(client, tok["Sara"], sara_co["id"], title="Hers")
    board = ok(client.get(f"{C}/pipelines/{pipeline.id}/board", headers=tok["Sam"]))
    assert board["pipeline"]["id"] == pipeline.id
    cols = {c["stage"]["name"]: [d["title"] for d in c["deals"]] for c in board["columns"]}
    assert cols == {"New": ["One"], "Offer": ["Two"], "Contract": [], "Won": [], "Lost": []}
    assert first["id"] in [d["id"] for d in board["columns"][0]["deals"]]
    helen = ok(client.get(f"{C}/pipelines/{pipeline.id}/board", headers=tok["Helen"]))
    assert sorted(helen["columns"][0]["deals"], key=lambda d: d["title"])[0]["title"] == "Hers"
    error_of(client.get(f"{C}/pipelines/{BIG - 1}/board", headers=tok["Sam"]), 404, "not_found")


def test_reasons_and_hand_over(client, office, tok, reasons):
    listed = ok(client.get(f"{C}/reasons?kind=lost", headers=tok["Sam"]))
    assert listed == [{"id": reasons["lost"].id, "kind": "lost", "name": "Price"}]
    assert {r["kind"] for r in ok(client.get(f"{C}/reasons", headers=tok["Sam"]))} == \
        {"lost", "refusal", "complaint"}
    error_of(client.post(f"{C}/reasons", headers=tok["Sam"], json={"kind": "lost", "name": "X"}),
             403, "permission_denied")
    made = ok(client.post(f"{C}/reasons", headers=tok["admin"],
                          json={"kind": "lost", "name": "Went to a rival"}), 201)
    assert made["kind"] == "lost"
    err = error_of(client.post(f"{C}/reasons", headers=tok["admin"],
                               json={"kind": "lost", "name": "Price"}), 422, "validation_error")
    assert "name" in err["fields"]
    error_of(client.get(f"{C}/reasons?kind=other", headers=tok["Sam"]), 422, "validation_error")

    o = office
    for name in ("A", "B"):
        new_company(client, tok["Sam"], legal_name=name)
    ok(client.post(f"{C}/leads", headers=tok["Sam"],
                   json={"name": "L", "responsible_id": o.Sam.id}), 201)
    before = row_counts()
    error_of(client.post(f"{C}/hand-over", headers=tok["Fred"],
                         json={"from_user_id": o.Sam.id, "to_user_id": o.Fred.id}), 403,
             "permission_denied")
    err = error_of(client.post(f"{C}/hand-over", headers=tok["Helen"],
                               json={"from_user_id": o.Sam.id, "to_user_id": o.Sam.id}),
                   422, "validation_error")
    assert "to_user_id" in err["fields"]
    assert row_counts() == before
    moved = ok(client.post(f"{C}/hand-over", headers=tok["Helen"],
                           json={"from_user_id": o.Sam.id, "to_user_id": o.Sara.id}))
    assert moved == {"companies": 2, "deals": 0, "leads": 1}
    assert [c["legal_name"] for c in ok(client.get(f"{C}/companies", headers=tok["Sara"]))[
        "items"]] == ["A", "B"]
    assert ok(client.get(f"{C}/companies", headers=tok["Sam"]))["items"] == []


# --- access: another's records are 404, exactly like missing ones -------------------------

def test_records_out_of_reach_are_404_like_missing_ones(client, office, tok, pipeline, reasons):
    acme = new_company(client, tok["Sam"], legal_name="Acme")
    contact = ok(client.post(f"{C}/contacts", headers=tok["Sam"], json={
        "name": "Ivan", "companies": [{"company_id": acme["id"]}]}), 201)
    deal = new_deal(client, tok["Sam"], acme["id"])
    missing = BIG - 1
    sara_co = new_company(client, tok["Sara"], legal_name="Sara Co")
    before = row_counts()

    def same_404(method: str, path: str, **kw):
        seen = getattr(client, method)(path.format(id=kw.pop("real")), headers=tok["Sara"], **kw)
        absent = getattr(client, method)(path.format(id=missing), headers=tok["Sara"], **kw)
        assert seen.status_code == absent.status_code == 404, (path, seen.get_data(as_text=True))
        assert seen.get_json() == absent.get_json()

    for method, path, extra in (
            ("get", "/companies/{id}", {}), ("patch", "/companies/{id}", {"json": {"notes": "x"}}),
            ("delete", "/companies/{id}", {}),
            ("put", "/companies/{id}/share", {"json": {"user_ids": []}}),
            ("get", "/companies/{id}/rollup", {}), ("get", "/companies/{id}/history", {})):
        same_404(method, C + path, real=acme["id"], **extra)
    for method, path, extra in (("get", "/contacts/{id}", {}),
                                ("patch", "/contacts/{id}", {"json": {"notes": "x"}})):
        same_404(method, C + path, real=contact["id"], **extra)
    for method, path, extra in (
            ("get", "/deals/{id}", {}), ("patch", "/deals/{id}", {"json": {"title": "Mine"}}),
            ("post", "/deals/{id}/move", {"json": {"stage_id": pipeline.stages[1].id}})):
        same_404(method, C + path, real=deal["id"], **extra)

    # nor may Sara hang her records on Sam's
    for path, body in (
            ("/deals", {"title": "Steal", "company_id": acme["id"]}),
            ("/interactions", {"company_id": acme["id"], "kind": "note"}),
            ("/contacts", {"name": "X", "companies": [{"company_id": acme["id"]}]}),
            ("/interactions", {"company_id": sara_co["id"], "kind": "note",
                               "deal_id": deal["id"]}),
            ("/deals", {"title": "T", "company_id": sara_co["id"], "contact_id": contact["id"]})):
        error_of(client.post(f"{C}{path}", headers=tok["Sara"], json=body), 404, "not_found")
    err = error_of(client.patch(f"{C}/companies/{sara_co['id']}", headers=tok["Sara"],
                                json={"parent_id": acme["id"]}), 422, "validation_error")
    assert "parent_id" in err["fields"]
    assert row_counts() == before
    assert db.session.get(Company, acme["id"]).notes == ""
    assert db.session.get(Deal, deal["id"]).title == "Windows"


# --- bad input ----------------------------------------------------------------------------

def test_bad_input_gets_field_errors_and_changes_nothing(client, office, tok, pipeline,
                                                         other_pipeline, reasons):
    top = new_company(client, tok["Sam"], legal_name="Top")
    mid = new_company(client, tok["Sam"], legal_name="Mid", parent_id=top["id"])
    low = new_company(client, tok["Sam"], legal_name="Low", parent_id=mid["id"])
    deal = new_deal(client, tok["Sam"], top["id"])
    db.session.commit()
    before = row_counts()

    def refused(method: str, path: str, body, field: str, status: int = 422):
        resp = getattr(client, method)(f"{C}{path}", headers=tok["Sam"], json=body)
        err = error_of(resp, status, "validation_error")
        assert field in err["fields"], (path, body, err)

    # a company as its own parent or ancestor
    refused("patch", f"/companies/{top['id']}", {"parent_id": top["id"]}, "parent_id")
    refused("patch", f"/companies/{top['id']}", {"parent_id": mid["id"]}, "parent_id")
    refused("patch", f"/companies/{top['id']}", {"parent_id": low["id"]}, "parent_id")
    refused("post", "/companies", {"legal_name": "Orphan", "parent_id": BIG - 1}, "parent_id")
    # losing a deal without a reason, or with a reason of another list
    lost = pipeline.stages[3]
    refused("post", f"/deals/{deal['id']}/move", {"stage_id": lost.id}, "reason_id")
    refused("post", f"/deals/{deal['id']}/move",
            {"stage_id": lost.id, "reason_id": reasons["refusal"].id}, "reason_id")
    # a stage from another pipeline
    refused("post", f"/deals/{deal['id']}/move", {"stage_id": other_pipeline.stages[0].id},
            "stage_id")
    refused("post", "/deals", {"title": "X", "company_id": top["id"], "pipeline_id": pipeline.id,
                               "stage_id": other_pipeline.stages[0].id}, "stage_id")
    refused("post", "/deals", {"title": "X", "company_id": top["id"],
                               "stage_id": pipeline.stages[2].id}, "stage_id")  # not open
    # wrong types
    refused("post", "/companies", {"legal_name": 5}, "legal_name")
    refused("post", "/companies", {"legal_name": "X", "is_client": "maybe"}, "is_client")
    refused("post", "/companies", {"legal_name": "X", "emails": "a@b.test"}, "emails")
    refused("post", "/companies", {"legal_name": "X", "emails": ["not an e-mail"]}, "emails")
    refused("post", "/companies", {"legal_name": "X", "status": "dormant"}, "status")
    refused("post", "/companies", {"legal_name": "X", "next_step_at": "tomorrow"}, "next_step_at")
    refused("post", "/deals", {"title": "X", "company_id": str(top["id"])}, "company_id")
    refused("post", "/deals", {"title": "X", "company_id": top["id"], "amount": "lots"}, "amount")
    refused("post", "/deals", {"title": "X", "company_id": top["id"], "amount": -1}, "amount")
    refused("post", "/deals", {"title": "X", "company_id": top["id"], "currency": "rub"},
            "currency")
    refused("post", f"/deals/{deal['id']}/move", {"stage_id": None}, "stage_id")
    refused("post", "/interactions", {"company_id": top["id"], "kind": "telepathy"}, "kind")
    refused("post", "/leads", {"name": "X", "email": "nobody"}, "email")
    refused("post", "/leads", {"phone": "<script>"}, "phone")
    refused("post", "/leads", {}, "name")
    refused("put", f"/companies/{top['id']}/share", {"user_ids": [office.Sara.id, "x"]},
            "user_ids")
    refused("put", f"/companies/{top['id']}/share", {"user_ids": [BIG - 1]}, "user_ids")
    refused("post", "/contacts", {"name": "X", "birthday": "1980-13-01"}, "birthday")
    # huge strings
    refused("post", "/companies", {"legal_name": "x" * 301}, "legal_name")
    refused("patch", f"/companies/{top['id']}", {"notes": "x" * 20_001}, "notes")
    refused("post", "/leads", {"name": "X", "message": "x" * 5001}, "message")
    refused("post", "/contacts", {"name": "x" * 201}, "name")
    refused("post", "/companies", {"legal_name": "X", "tags": ["t"] * 21}, "tags")
    error_of(client.post(f"{C}/companies", headers=tok["Sam"],
                         json={"legal_name": "x" * (2 * 1024 * 1024)}), 413, "too_large")
    # ids beyond the database's integers
    refused("post", "/deals", {"title": "X", "company_id": BIG}, "company_id")
    refused("patch", f"/companies/{top['id']}", {"parent_id": 2**40}, "parent_id")
    refused("post", "/interactions", {"company_id": top["id"], "kind": "note",
                                      "deal_id": 2**63}, "deal_id")
    refused("post", "/hand-over", {"from_user_id": BIG, "to_user_id": office.Sara.id},
            "from_user_id")
    for path in (f"/companies/{BIG}", f"/contacts/{BIG}", f"/deals/{BIG}", f"/leads/{BIG}",
                 f"/pipelines/{BIG}", f"/companies/{2**70}/rollup"):
        error_of(client.get(f"{C}{path}", headers=tok["Sam"]), 404, "not_found")
    for query in (f"companies?responsible_id={BIG}", f"deals?pipeline_id={2**40}",
                  f"interactions?company_id={BIG}", "companies?per_page=1000",
                  "companies?page=0", "companies?q=" + "x" * 201, "leads?overdue=perhaps",
                  "deals?next_step=soon"):
        err = error_of(client.get(f"{C}/{query}", headers=tok["Sam"]), 422, "validation_error")
        assert err["fields"], query
    # not JSON at all
    error_of(client.post(f"{C}/companies", headers={**tok["Sam"], "Content-Type": "application/json"},
                         data="{legal_name"), 400, "bad_request")

    assert row_counts() == before
    rows = {c.id: c for c in db.session.scalars(select(Company))}
    assert rows[top["id"]].parent_id is None and rows[top["id"]].notes == ""
    assert rows[mid["id"]].parent_id == top["id"] and rows[low["id"]].parent_id == mid["id"]
    assert db.session.get(Deal, deal["id"]).stage_id == pipeline.stages[0].id


# --- queries ------------------------------------------------------------------------------

def test_lists_take_the_same_number_of_queries_for_more_rows(client, office, tok, pipeline,
                                                             count_queries):
    def add(n: int, start: int) -> None:
        for i in range(start, start + n):
            company = clients.create_company(office.Sam, {"legal_name": f"Co {i:03}",
                                                          "categories": ["Retail"]})
            clients.create_contact(office.Sam, {"name": f"Person {i:03}",
                                                "companies": [{"company_id": company.id}]})
            clients.create_deal(office.Sam, {"title": f"Deal {i:03}", "company_id": company.id})
            clients.log_interaction(office.Sam, {"company_id": company.id, "kind": "note"})
            clients.create_lead(office.Sam, {"name": f"Lead {i:03}",
                                             "responsible_id": office.Sam.id})
        db.session.commit()

    paths = ("/companies", "/contacts", "/deals", "/interactions", "/leads",
             f"/pipelines/{pipeline.id}/board")

    def counts() -> dict[str, int]:
        out = {}
        for path in paths:
            with count_queries() as statements:
                ok(client.get(f"{C}{path}?per_page=50" if "board" not in path else f"{C}{path}",
                              headers=tok["Sam"]))
            out[path] = len(statements)
        return out

    add(2, 0)
    ok(client.get(f"{API}/me", headers=tok["Sam"]))  # the token's first use is written down once
    few = counts()
    add(10, 2)
    many = counts()
    assert few == many
    page = ok(client.get(f"{C}/deals?per_page=50", headers=tok["Sam"]))
    assert page["meta"]["total"] == 12


# --- the OpenAPI document -----------------------------------------------------------------

def test_openapi_document_has_every_clients_route(app, client, office, tok):
    doc = ok(client.get(f"{API}/openapi.json", headers=tok["Sam"]))
    paths = doc["paths"]
    seen = 0
    for rule in app.url_map.iter_rules():
        if not rule.rule.startswith(f"{C}/"):
            continue
        path = rule.rule
        for arg in rule.arguments:
            path = path.replace(f"<int:{arg}>", f"{{{arg}}}")
        assert path in paths, path
        methods = {m.lower() for m in rule.methods} - {"head", "options"}
        assert methods <= set(paths[path]), (path, methods, set(paths[path]))
        seen += 1
    assert seen >= 21
    for path, methods in (
            ("/companies", {"get", "post"}), ("/companies/{company_id}", {"get", "patch", "delete"}),
            ("/companies/{company_id}/share", {"put"}), ("/companies/{company_id}/rollup", {"get"}),
            ("/companies/{company_id}/history", {"get"}), ("/contacts", {"get", "post"}),
            ("/contacts/{contact_id}", {"get", "patch"}), ("/interactions", {"get", "post"}),
            ("/leads", {"get", "post"}), ("/leads/{lead_id}", {"get"}),
            ("/leads/{lead_id}/contacted", {"post"}), ("/leads/{lead_id}/reject", {"post"}),
            ("/leads/{lead_id}/convert", {"post"}), ("/leads/{lead_id}/duplicates", {"get"}),
            ("/deals", {"get", "post"}), ("/deals/{deal_id}", {"get", "patch"}),
            ("/deals/{deal_id}/move", {"post"}), ("/pipelines", {"get", "post"}),
            ("/pipelines/{pipeline_id}", {"get", "put"}),
            ("/pipelines/{pipeline_id}/board", {"get"}), ("/reasons", {"get", "post"}),
            ("/hand-over", {"post"})):
        assert methods <= set(paths[f"{C}{path}"]), path
    create = paths[f"{C}/companies"]["post"]
    assert {"201", "422"} <= set(create["responses"])
    assert create["requestBody"]["content"]["application/json"]["schema"]["$ref"].endswith(
        "/CompanyIn")
    params = {p["name"] for p in paths[f"{C}/companies"]["get"]["parameters"]}
    assert {"q", "status", "kind", "tag", "category", "responsible_id", "parent_id",
            "next_step", "page", "per_page"} <= params
    params = {p["name"] for p in paths[f"{C}/leads"]["get"]["parameters"]}
    assert {"status", "overdue"} <= params
    schemas = doc["components"]["schemas"]
    assert {"categories", "subsidiaries", "parent", "contacts", "next_step_at"} <= set(
        schemas["ClientCompanyDetail"]["properties"])
    assert "history" in schemas["ClientDealDetail"]["properties"]
    assert {"stage_id", "reason_id", "note"} <= set(schemas["DealMoveIn"]["properties"])
