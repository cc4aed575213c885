"""The client base's pages: each shows the right rows to the right person, refuses what one
may not see (404), its forms work, and a refused form keeps what was typed with the reason
beside the field."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace

import pytest
from sqlalchemy import func, select

from app.clients import services as clients
from app.clients.models import Company, Contact, Deal, Interaction, Lead, Pipeline, Reason, Share, WebForm
from app.core import clock
from app.core.models import Notification

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


def signed(app, user):
    c = app.test_client()
    assert c.sign_in(user.email).status_code == 302
    return c


def text(resp) -> str:
    return resp.get_data(as_text=True)


def local(moment: datetime) -> str:
    """A datetime-local field's value (the test users live in UTC)."""
    return moment.strftime("%Y-%m-%dT%H:%M")


@pytest.fixture
def world(app, db, office, admin):
    """Sam's client Acme (in the holding Acme Group with a second subsidiary), Sara's Beta,
    Fred's supplier Paper Co; a pipeline with its reasons; signed-in clients."""
    clock.freeze(T0)
    pipeline = clients.save_pipeline(admin, {"name": "Sales", "stages": [
        {"name": "New", "probability": 10}, {"name": "Offer", "probability": 50},
        {"name": "Won", "kind": "won", "probability": 100}, {"name": "Lost", "kind": "lost"}]})
    reasons = SimpleNamespace(**{kind: clients.add_reason(admin, {"kind": kind, "name": name})
                                 for kind, name in (("refusal", "Too expensive"), ("lost", "Chose a rival"),
                                                    ("complaint", "Late delivery"))})
    group = clients.create_company(office.Sam, {"legal_name": "Acme Group LLC", "short_name": "Acme Group"})
    acme = clients.create_company(office.Sam, {
        "legal_name": "Acme Windows LLC", "short_name": "Acme", "tax_number": "7701234567",
        "phones": ["+7 (495) 123-45-67"], "emails": ["info@acme.test"], "tags": ["vip"],
        "categories": ["Retail"], "parent_id": group.id, "industry": "Windows",
        "next_step": "Call the buyer", "next_step_at": (T0 - timedelta(days=1)).isoformat()})
    acme_south = clients.create_company(office.Sam, {"legal_name": "Acme South", "parent_id": group.id,
                                                     "is_partner": True})
    beta = clients.create_company(office.Sara, {"legal_name": "Beta Doors", "status": "active"})
    paper = clients.create_company(office.Fred, {"legal_name": "Paper Co", "is_client": False,
                                                 "is_supplier": True})
    ivan = clients.create_contact(office.Sam, {"name": "Ivan Buyer", "emails": ["ivan@acme.test"],
                                               "companies": [{"company_id": acme.id, "position": "Buyer"}]})
    deal = clients.create_deal(office.Sam, {"title": "Windows for the office", "company_id": acme.id,
                                            "contact_id": ivan.id, "amount": "150000", "currency": "RUB"})
    south_deal = clients.create_deal(office.Sam, {"title": "South showroom", "company_id": acme_south.id,
                                                  "amount": "50000"})
    db.session.commit()
    return World(
        app=app, office=office, admin=admin, pipeline=pipeline, stages={s.name: s for s in pipeline.stages},
        reasons=reasons, group=group, acme=acme, acme_south=acme_south, beta=beta, paper=paper,
        ivan=ivan, deal=deal, south_deal=south_deal)


class World(SimpleNamespace):
    """The rows of a test, and a signed-in browser per person, made when first asked for."""

    def _client(self, name, user):
        if name not in self.__dict__:
            self.__dict__[name] = signed(self.app, user)
        return self.__dict__[name]

    sam = property(lambda self: self._client("_sam", self.office.Sam))
    helen = property(lambda self: self._client("_helen", self.office.Helen))
    fred = property(lambda self: self._client("_fred", self.office.Fred))
    boss = property(lambda self: self._client("_boss", self.admin))


# --- companies ------------------------------------------------------------------------------

def test_each_person_sees_their_own_companies(world):
    sam = text(world.sam.get("/clients/"))
    assert "Acme Windows LLC" in sam and "Acme South" in sam and "Beta Doors" not in sam
    assert "Paper Co" not in sam
    helen = text(world.helen.get("/clients/"))  # Sam's and Sara's head
    assert "Acme Windows LLC" in helen and "Beta Doors" in helen and "Paper Co" not in helen
    fred = text(world.fred.get("/clients/"))
    assert "Paper Co" in fred and "Acme" not in fred


def test_search_by_phone_email_tax_number_and_a_typo(world, db):
    for q in ("495 123 45", "info@acme", "7701234567", "Acme Wind"):
        page = text(world.sam.get("/clients/", query_string={"q": q}))
        rows = page.split('data-testid="company-row"')[1:]
        assert rows and "Acme Windows LLC" in rows[0], q  # the best match first
        assert "Beta Doors" not in page, q
    if db.engine.dialect.name == "postgresql":  # trigram similarity
        assert "Acme Windows LLC" in text(world.sam.get("/clients/?q=acme windwos"))
    assert "No company matches" in text(world.sam.get("/clients/?q=Paper"))  # Fred's


def test_filters_role_status_category_tag_responsible_holding(world):
    def names(**query):
        page = text(world.helen.get("/clients/", query_string=query))
        row = r'data-testid="company-row">\s*<td>\s*<a class="fw-semibold[^"]*" href="[^"]+">([^<]+)<'
        return set(re.findall(row, page))

    assert names(role="partner") == {"Acme South"}
    assert names(status="active") == {"Beta Doors"}
    category = world.acme.categories[0].id
    assert names(category=category) == {"Acme"}
    assert names(tag="vip") == {"Acme"}
    assert names(responsible=world.office.Sara.id) == {"Beta Doors"}
    assert names(holding=world.group.id) == {"Acme Group", "Acme", "Acme South"}
    assert world.helen.get("/clients/?holding=abc").status_code == 404


def test_lists_without_a_next_step_and_overdue(world):
    overdue = text(world.sam.get("/clients/?step=overdue"))
    assert "Acme Windows LLC" in overdue and "Acme South" not in overdue
    assert 'data-overdue="1"' in overdue
    missing = text(world.sam.get("/clients/?step=none"))
    assert "Acme South" in missing and "Acme Windows LLC" not in missing
    page = text(world.sam.get("/clients/"))
    card = r'data-testid="attention-(\w+)">\s*<div[^>]*>\s*<span class="attention-count">(\d+)'
    assert dict(re.findall(card, page)) == {"companies_overdue": "1", "companies_none": "2",
                                             "deals_overdue": "0", "deals_none": "2"}
    deals = text(world.sam.get("/clients/deals?step=none"))
    assert "Windows for the office" in deals and "South showroom" in deals


def test_the_companies_list_is_paginated_in_a_fixed_number_of_queries(world, db, count_queries):
    for i in range(30):
        clients.create_company(world.office.Sam, {"legal_name": f"Filler {i:02d}",
                                                  "categories": ["Retail"], "tags": ["x"]})
    db.session.commit()
    first = text(world.sam.get("/clients/"))
    assert len(re.findall(r'data-testid="company-row"', first)) == 25
    second = text(world.sam.get("/clients/?page=2"))
    assert len(re.findall(r'data-testid="company-row"', second)) == 8  # 33 in all
    with count_queries() as small:
        world.sam.get("/clients/?q=Filler 0")
    with count_queries() as large:
        world.sam.get("/clients/?q=Filler")
    assert len(small) == len(large)


def test_company_card_shows_holding_rollup_contacts_deals_and_the_overdue_next_step(world, db):
    page = text(world.sam.get(f"/clients/companies/{world.acme.id}"))
    panel = page.split('data-testid="next-step-panel"')[1][:1500]
    assert "is-overdue" in page.split('data-testid="next-step-panel"')[0][-200:]
    assert "Call the buyer" in panel and "overdue" in panel
    holding = page.split('data-testid="holding"')[1].split("</section>")[0]
    assert "Acme Group" in holding and "Acme South" in holding and 'aria-current="true"' in holding
    assert "Ivan Buyer" in page and "Buyer" in page
    assert "Windows for the office" in page
    assert "7701234567" in page and "info@acme.test" in page and "#vip" in page
    assert 'data-testid="edit-company"' in page and 'data-testid="archive-company"' in page
    # The holding's card rolls up both subsidiaries' deals.
    top = text(world.sam.get(f"/clients/companies/{world.group.id}"))
    rollup = top.split('data-testid="rollup"')[1].split("</table>")[0]
    assert "Open" in rollup and "<td class=\"text-end\">2</td>" in rollup
    assert "200,000.00" in rollup


def test_the_holding_hides_companies_one_may_not_see(world, db):
    hidden = clients.create_company(world.admin, {"legal_name": "Secret Sub", "parent_id": world.group.id,
                                                  "responsible_id": world.office.Fred.id})
    db.session.commit()
    page = text(world.sam.get(f"/clients/companies/{world.group.id}"))
    assert "Secret Sub" not in page and "a company not shared with you" in page
    assert world.fred.get(f"/clients/companies/{hidden.id}").status_code == 200


def test_what_one_may_not_see_is_404(world, db):
    lead = clients.create_lead(world.office.Sam, {"name": "Walk-in", "responsible_id": world.office.Sam.id})
    db.session.commit()
    for path in (f"/clients/companies/{world.acme.id}", f"/clients/companies/{world.acme.id}/edit",
                 f"/clients/contacts/{world.ivan.id}", f"/clients/contacts/{world.ivan.id}/edit",
                 f"/clients/deals/{world.deal.id}", f"/clients/deals/{world.deal.id}/edit",
                 f"/clients/leads/{lead.id}", "/clients/companies/999999", "/clients/deals/99999999999"):
        assert world.fred.get(path).status_code == 404, path
    for path, data in ((f"/clients/companies/{world.acme.id}/log", {"kind": "call"}),
                       (f"/clients/companies/{world.acme.id}/archive", {}),
                       (f"/clients/deals/{world.deal.id}/move", {"stage_id": world.stages["Won"].id}),
                       (f"/clients/leads/{lead.id}/contacted", {}),
                       (f"/clients/leads/{lead.id}/convert", {}),
                       ("/clients/dates", {"company_id": world.acme.id, "kind": "other",
                                           "on": "2026-05-01"})):
        assert world.fred.form(path, data).status_code == 404, path
    # A contact of a company Fred may not see cannot be put on a deal of his own.
    resp = world.fred.form("/clients/deals/new", {"title": "Sneaky", "contact_id": world.ivan.id,
                                                  "company": f"Paper Co (#{world.paper.id})"})
    assert resp.status_code == 404
    assert db.session.get(Company, world.acme.id).archived_at is None
    assert db.session.scalar(select(func.count(Deal.id)).where(Deal.title == "Sneaky")) == 0


def test_new_company_and_a_refused_form_keeps_what_was_typed(world, db):
    resp = world.sam.form("/clients/companies/new", {
        "legal_name": "", "short_name": "Gamma", "tax_number": "12 34", "emails": "good@g.test\nnot-an-email",
        "phones": "+7 900 000-00-01", "notes": "Met at the fair", "status": "prospect",
        "is_client": "1", "is_supplier": "1", "parent": "Nothing like a company",
        "responsible_id": str(world.office.Sam.id)})
    assert resp.status_code == 422
    page = text(resp)
    assert 'value="Gamma"' in page and "Met at the fair" in page and "not-an-email" in page
    assert 'id="f-is_supplier" name="is_supplier" value="1" checked' in page
    assert "Choose a company from the list." in page
    assert db.session.scalar(select(func.count(Company.id)).where(Company.short_name == "Gamma")) == 0
    resp = world.sam.form("/clients/companies/new", {
        "legal_name": "Gamma LLC", "short_name": "Gamma", "emails": "good@g.test\nnot-an-email",
        "status": "prospect", "is_client": "1", "responsible_id": str(world.office.Sam.id)})
    page = text(resp)
    assert resp.status_code == 422 and "Not a valid email address." in page and "{0:" not in page
    resp = world.sam.form("/clients/companies/new", {
        "legal_name": "Gamma LLC", "short_name": "Gamma", "emails": "good@g.test", "status": "prospect",
        "is_client": "1", "addresses": "Legal: Moscow, 1 Tverskaya St\nWarehouse in Khimki",
        "categories": "Retail, Wholesale", "tags": "new, fair", "parent": f"Acme Group (#{world.group.id})",
        "next_step": "Send the catalogue", "next_step_at": local(T0 + timedelta(days=2)),
        "responsible_id": str(world.office.Sam.id)})
    assert resp.status_code == 302
    gamma = db.session.scalar(select(Company).where(Company.legal_name == "Gamma LLC"))
    assert gamma.parent_id == world.group.id and gamma.tag_list == ["new", "fair"]
    assert gamma.addresses == [{"kind": "Legal", "text": "Moscow, 1 Tverskaya St"},
                               {"kind": "office", "text": "Warehouse in Khimki"}]
    assert gamma.next_step_at == T0 + timedelta(days=2)
    assert sorted(c.name for c in gamma.categories) == ["Retail", "Wholesale"]


def test_a_company_cannot_go_inside_its_own_subsidiary(world, db):
    resp = world.sam.form(f"/clients/companies/{world.group.id}/edit", {
        "legal_name": "Acme Group LLC", "short_name": "Acme Group", "status": "prospect", "is_client": "1",
        "parent": f"Acme (#{world.acme.id})", "responsible_id": str(world.office.Sam.id)})
    assert resp.status_code == 422
    assert "cannot be inside itself" in text(resp) and f"Acme (#{world.acme.id})" in text(resp)
    assert db.session.get(Company, world.group.id).parent_id is None


def test_edit_and_archive_only_for_those_who_may(world, db, app):
    clients.share(world.office.Sam, world.acme.id, {"user_ids": [world.office.Fred.id]})
    db.session.commit()
    page = text(world.fred.get(f"/clients/companies/{world.acme.id}"))
    assert "Acme Windows LLC" in page and 'data-testid="edit-company"' not in page
    assert 'data-testid="archive-company"' not in page
    assert world.fred.get(f"/clients/companies/{world.acme.id}/edit").status_code == 403
    # The company's deals: read, not changed or moved.
    deal = text(world.fred.get(f"/clients/deals/{world.deal.id}"))
    assert "Windows for the office" in deal
    assert 'data-testid="edit-deal"' not in deal and 'id="move"' not in deal
    assert world.fred.get(f"/clients/deals/{world.deal.id}/edit").status_code == 403
    board = f"/clients/pipelines/{world.pipeline.id}/board"
    assert f'is-fixed" draggable="false" data-deal-id="{world.deal.id}"' in text(world.fred.get(board))
    assert f'draggable="true" data-deal-id="{world.deal.id}"' in text(world.sam.get(board))
    world.fred.form(f"/clients/companies/{world.acme.id}/archive")
    assert db.session.get(Company, world.acme.id).archived_at is None
    # A colleague it is shared with logs contacts, but does not lose its deals by refusing.
    resp = world.fred.form(f"/clients/companies/{world.acme.id}/log", {"kind": "note", "subject": "Saw them"})
    assert resp.status_code == 302
    resp = world.fred.form(f"/clients/companies/{world.acme.id}/log", {
        "kind": "refusal", "deal_id": str(world.deal.id), "outcome": "refuse",
        "reason_id": str(world.reasons.refusal.id)})
    assert resp.status_code == 403 and db.session.get(Deal, world.deal.id).status == "open"
    # The responsible archives it; it leaves the list, its card stays.
    assert world.sam.form(f"/clients/companies/{world.acme.id}/archive").status_code == 302
    assert db.session.get(Company, world.acme.id).archived_at is not None
    assert "Acme Windows LLC" not in text(world.sam.get("/clients/"))
    assert "Archived on" in text(world.sam.get(f"/clients/companies/{world.acme.id}"))


def test_edit_company_saves_and_keeps_a_departed_responsible(world, db):
    resp = world.sam.form(f"/clients/companies/{world.acme.id}/edit", {
        "legal_name": "Acme Windows LLC", "short_name": "Acme Windows", "status": "active", "is_client": "1",
        "parent": f"Acme Group (#{world.group.id})", "responsible_id": str(world.office.Sam.id),
        "phones": "+7 (495) 123-45-67", "emails": "info@acme.test", "tags": "vip", "categories": "Retail"})
    assert resp.status_code == 302
    acme = db.session.get(Company, world.acme.id)
    assert acme.short_name == "Acme Windows" and acme.status == "active"
    form = text(world.sam.get(f"/clients/companies/{world.acme.id}/edit"))
    assert f'value="Acme Group (#{world.group.id})"' in form and "info@acme.test" in form


def test_share_with_colleagues(world, db):
    resp = world.sam.form(f"/clients/companies/{world.acme.id}/share",
                          {"user_ids": [str(world.office.Fred.id)]})
    assert resp.status_code == 302
    shared = db.session.scalar(select(Share.user_id).where(Share.company_id == world.acme.id))
    assert shared == world.office.Fred.id
    page = text(world.sam.get(f"/clients/companies/{world.acme.id}"))
    assert "Fred" in page.split('data-testid="shares"')[1][:300]


# --- logging a contact and the history ------------------------------------------------------

def test_log_a_contact_that_advances_the_next_step(world, db):
    resp = world.sam.form(f"/clients/companies/{world.acme.id}/log", {
        "kind": "call", "contact_id": str(world.ivan.id), "subject": "Price talk", "body": "They want 5% off",
        "outcome": "advance", "next_step": "Send the offer", "next_step_at": local(T0 + timedelta(days=3))})
    assert resp.status_code == 302
    acme = db.session.get(Company, world.acme.id)
    assert acme.next_step == "Send the offer" and acme.next_step_at == T0 + timedelta(days=3)
    page = text(world.sam.get(f"/clients/companies/{world.acme.id}"))
    history = page.split('data-testid="history"')[1]
    assert "Price talk" in history and "They want 5% off" in history and "Advance" in history
    assert "Ivan Buyer" in history
    assert "is-set" in page.split('data-testid="next-step-panel"')[0][-200:]


def test_a_refused_contact_keeps_what_was_typed(world, db):
    resp = world.sam.form(f"/clients/companies/{world.acme.id}/log", {
        "kind": "call", "subject": "Price talk", "body": "They want 5% off", "outcome": "advance",
        "next_step": "", "next_step_at": ""})
    assert resp.status_code == 422
    page = text(resp)
    log = page.split('data-testid="log-form"')[1].split("</form>")[0]
    assert 'value="Price talk"' in log and "They want 5% off" in log
    assert 'value="advance" checked' in log and "Advancing needs the next step and its date." in log
    resp = world.sam.form(f"/clients/companies/{world.acme.id}/log", {
        "kind": "call", "outcome": "refuse", "subject": "No"})
    assert resp.status_code == 422 and "Choose a reason from the list." in text(resp)
    resp = world.sam.form(f"/clients/companies/{world.acme.id}/log", {  # a refusal's reason
        "kind": "complaint", "complaint_reason_id": str(world.reasons.refusal.id), "subject": "Late"})
    log = text(resp).split('data-testid="log-form"')[1].split("</form>")[0]
    assert resp.status_code == 422 and 'id="e-complaint_reason_id"' in log
    assert db.session.scalar(select(func.count(Interaction.id))) == 0


def test_refusing_with_a_reason_closes_the_company(world, db):
    resp = world.sam.form(f"/clients/companies/{world.beta.id}/log", {"kind": "call"})
    assert resp.status_code == 404  # Sara's client
    resp = world.sam.form(f"/clients/companies/{world.acme_south.id}/log", {
        "kind": "refusal", "outcome": "refuse", "reason_id": str(world.reasons.refusal.id)})
    assert resp.status_code == 302
    assert db.session.get(Company, world.acme_south.id).status == "former"
    assert "Too expensive" in text(world.sam.get(f"/clients/companies/{world.acme_south.id}"))


def test_history_shows_registered_sources(world, monkeypatch):
    from app.core import links

    monkeypatch.setitem(links._backlinks, "test", lambda actor, kind, ids: [
        {"at": T0 - timedelta(hours=1), "kind": "mail", "title": "Offer sent by mail", "url": "/mail/1"}
    ] if kind == "client" and ids == [world.acme.id] else [])
    page = text(world.sam.get(f"/clients/companies/{world.acme.id}"))
    assert '<a href="/mail/1">Offer sent by mail</a>' in page


def test_significant_dates(world, db):
    resp = world.sam.form("/clients/dates", {"company_id": str(world.acme.id), "kind": "founding",
                                             "title": "Founded", "on": "2010-03-05", "yearly": "on"})
    assert resp.status_code == 302
    page = text(world.sam.get(f"/clients/companies/{world.acme.id}"))
    assert "Founded" in page and "2026-03-05" in page
    bad = world.sam.form("/clients/dates", {"company_id": str(world.acme.id), "kind": "founding",
                                            "on": "soon"})
    assert bad.status_code == 302  # back to the card with the reason
    assert "Not a valid date." in text(world.sam.get(f"/clients/companies/{world.acme.id}"))


# --- contacts -------------------------------------------------------------------------------

def test_contacts_list_search_and_page(world, db):
    clients.create_contact(world.office.Fred, {"name": "Pavel Paper",
                                               "companies": [{"company_id": world.paper.id}]})
    db.session.commit()
    page = text(world.sam.get("/clients/contacts"))
    assert "Ivan Buyer" in page and "Pavel Paper" not in page
    assert "Ivan Buyer" in text(world.sam.get("/clients/contacts?q=ivan@acme"))
    assert "Nobody matches" in text(world.sam.get("/clients/contacts?q=pavel"))
    person = text(world.sam.get(f"/clients/contacts/{world.ivan.id}"))
    assert "Acme" in person.split('data-testid="contact-companies"')[1][:400]
    assert "Buyer" in person and "Windows for the office" in person
    assert "No consent to be contacted" in person


def test_new_contact_at_a_company_and_a_refused_form(world, db):
    form = text(world.sam.get(f"/clients/contacts/new?company_id={world.acme.id}"))
    assert f'value="Acme (#{world.acme.id})"' in form
    assert world.fred.get(f"/clients/contacts/new?company_id={world.acme.id}").status_code == 404
    bad = world.sam.form("/clients/contacts/new", {
        "name": "Olga", "emails": "olga@", "phones": "+7 900 1", "messengers": "Telegram: @olga",
        "rows": "2", "company-0": f"Acme (#{world.acme.id})", "position-0": "Director", "company-1": ""})
    assert bad.status_code == 422
    page = text(bad)
    assert "Not a valid email address." in page and 'value="Director"' in page and "Telegram: @olga" in page
    ok = world.sam.form("/clients/contacts/new", {
        "name": "Olga", "emails": "olga@acme.test", "messengers": "Telegram: @olga", "birthday": "1990-04-01",
        "consent": "1", "rows": "2", "company-0": f"Acme (#{world.acme.id})", "position-0": "Director"})
    assert ok.status_code == 302
    olga = db.session.scalar(select(Contact).where(Contact.name == "Olga"))
    assert olga.consent and olga.messengers == [{"kind": "Telegram", "handle": "@olga"}]
    assert [(lk.company_id, lk.position) for lk in olga.links] == [(world.acme.id, "Director")]
    page = text(world.sam.get(f"/clients/contacts/{olga.id}"))
    assert "Agreed to be contacted" in page and "1990-04-01" in page and "Telegram: @olga" in page
    # Fred may not put someone at a company he does not see.
    resp = world.fred.form("/clients/contacts/new", {"name": "X", "rows": "1",
                                                     "company-0": f"Acme (#{world.acme.id})"})
    assert resp.status_code == 404


def test_edit_contact(world, db):
    resp = world.sam.form(f"/clients/contacts/{world.ivan.id}/edit", {
        "name": "Ivan Petrov", "emails": "ivan@acme.test", "rows": "2",
        "company-0": f"Acme (#{world.acme.id})", "position-0": "Head buyer",
        "company-1": f"Acme South (#{world.acme_south.id})", "position-1": "Adviser"})
    assert resp.status_code == 302
    ivan = db.session.get(Contact, world.ivan.id)
    assert ivan.name == "Ivan Petrov"
    assert sorted(lk.position for lk in ivan.links) == ["Adviser", "Head buyer"]
    form = text(world.sam.get(f"/clients/contacts/{world.ivan.id}/edit"))
    assert 'value="Head buyer"' in form and 'name="rows" value="3"' in form


def test_company_options_offer_only_visible_companies(world):
    page = text(world.fred.get("/clients/companies/options?parent=acme"))
    assert "Acme" not in page
    page = text(world.sam.get("/clients/companies/options?company=acme"))
    assert f'value="Acme (#{world.acme.id})"' in page


# --- leads ----------------------------------------------------------------------------------

def test_leads_tabs_and_the_overdue_one_stands_out(world, db, admin):
    clients.set_settings(admin, {"lead_minutes": 15, "lead_post_id": world.office.seller.id})
    early = clients.create_lead(None, {"name": "Early Bird", "email": "early@x.test",
                                       "message": "Need windows"})
    clock.advance(timedelta(minutes=10))
    fresh = clients.create_lead(None, {"name": "Fresh One", "phone": "+7 900 555-00-11"})
    clients.mark_contacted(world.office.Sam, clients.create_lead(None, {"name": "Called Back"}).id)
    db.session.commit()
    clock.advance(timedelta(minutes=6))  # the first is 16 minutes old now
    page = text(world.sam.get("/clients/leads"))
    rows = page.split('data-testid="lead-row"')
    early_row = next(r for r in rows if "Early Bird" in r)
    fresh_row = next(r for r in rows if "Fresh One" in r)
    assert "overdue since" in early_row and "overdue since" not in fresh_row
    row = r'class="lead-row is-overdue" data-testid="lead-row" data-overdue="1">\s*<td><a[^>]+>Early Bird'
    assert re.search(row, page)
    assert "Called Back" not in page
    overdue = text(world.sam.get("/clients/leads?show=overdue"))
    assert "Early Bird" in overdue and "Fresh One" not in overdue
    assert 'data-testid="overdue-leads">1<' in overdue
    assert "Called Back" in text(world.sam.get("/clients/leads?show=contacted"))
    # Fred is not in sales: leads of Sam's are not his.
    assert "Early Bird" not in text(world.fred.get("/clients/leads"))
    assert world.fred.get(f"/clients/leads/{early.id}").status_code == 404
    assert world.sam.get(f"/clients/leads/{fresh.id}").status_code == 200


def test_new_lead_form_and_its_errors(world, db):
    bad = world.sam.form("/clients/leads/new", {"source": "call", "name": "", "email": "", "phone": "",
                                                "company_name": "", "message": "Wants a call back"})
    assert bad.status_code == 422
    assert "at least a name" in text(bad) and "Wants a call back" in text(bad)
    bad = world.sam.form("/clients/leads/new", {"source": "referral", "name": "Nina", "email": "nina@",
                                                "phone": "call me"})
    assert bad.status_code == 422 and 'value="Nina"' in text(bad)
    assert 'id="f-source-referral" value="referral" checked' in text(bad)
    ok = world.sam.form("/clients/leads/new", {"source": "referral", "name": "Nina", "email": "nina@n.test",
                                               "phone": "+7 900 1234567", "message": "From Ivan"})
    assert ok.status_code == 302
    lead = db.session.scalar(select(Lead).where(Lead.name == "Nina"))
    assert lead.source == "referral" and lead.contact_due_at == T0 + timedelta(minutes=15)
    assert "Contact this lead by" in text(world.sam.get(f"/clients/leads/{lead.id}"))


def test_lead_contacted_rejected(world, db):
    a = clients.create_lead(world.office.Sam, {"name": "A", "responsible_id": world.office.Sam.id})
    b = clients.create_lead(world.office.Sam, {"name": "B", "responsible_id": world.office.Sam.id})
    db.session.commit()
    assert world.sam.form(f"/clients/leads/{a.id}/contacted").status_code == 302
    assert db.session.get(Lead, a.id).status == "contacted"
    world.sam.form(f"/clients/leads/{a.id}/contacted")  # twice: a reason, no change
    bad = world.sam.form(f"/clients/leads/{b.id}/reject", {"reason": "  "})
    assert bad.status_code == 422 and "Say why the lead is rejected." in text(bad)
    ok = world.sam.form(f"/clients/leads/{b.id}/reject", {"reason": "Spam"})
    assert ok.status_code == 302 and db.session.get(Lead, b.id).status == "rejected"
    assert "Spam" in text(world.sam.get(f"/clients/leads/{b.id}"))


def test_convert_a_lead_joining_a_duplicate(world, db):
    lead = clients.create_lead(None, {"name": "Ivan Buyer", "company_name": "Acme Windows",
                                      "email": "ivan@acme.test", "phone": "+7 495 123 45 67",
                                      "message": "Another order"})
    db.session.commit()
    page = text(world.sam.get(f"/clients/leads/{lead.id}"))
    assert f'id="cv-company-{world.acme.id}"' in page and "Join Acme" in page
    assert f'id="cv-contact-{world.ivan.id}"' in page
    # Fred sees the lead (nobody is responsible) but not the duplicate.
    fred = text(world.fred.get(f"/clients/leads/{lead.id}"))
    assert "Join Acme" not in fred and "matching company is kept by a colleague" in fred
    bad = world.sam.form(f"/clients/leads/{lead.id}/convert", {
        "company_id": str(world.acme.id), "contact_id": str(world.ivan.id), "deal_title": "Second order",
        "pipeline_id": str(world.pipeline.id), "amount": "lots", "currency": "RUB"})
    assert bad.status_code == 422
    assert f'id="cv-company-{world.acme.id}" value="{world.acme.id}" checked' in text(bad)
    assert 'value="lots"' in text(bad)
    ok = world.sam.form(f"/clients/leads/{lead.id}/convert", {
        "company_id": str(world.acme.id), "contact_id": str(world.ivan.id), "deal_title": "Second order",
        "pipeline_id": str(world.pipeline.id), "amount": "12 500,50", "currency": "RUB"})
    assert ok.status_code == 302
    lead = db.session.get(Lead, lead.id)
    deal = db.session.get(Deal, lead.deal_id)
    assert lead.status == "converted"
    assert lead.company_id == world.acme.id and lead.contact_id == world.ivan.id
    assert ok.headers["Location"].endswith(f"/clients/deals/{deal.id}")
    assert deal.amount_minor == 1_250_050 and deal.title == "Second order"
    same = select(func.count(Company.id)).where(Company.legal_name.like("Acme Windows%"))
    assert db.session.scalar(same) == 1
    done = text(world.sam.get(f"/clients/leads/{lead.id}"))
    assert "Converted" in done and "Second order" in done


# --- deals ----------------------------------------------------------------------------------

def test_board_shows_cards_by_stage_for_those_who_may_see_them(world, db):
    clients.move_deal(world.office.Sam, world.south_deal.id, {"stage_id": world.stages["Offer"].id})
    sara_deal = clients.create_deal(world.office.Sara, {"title": "Beta doors", "company_id": world.beta.id})
    db.session.commit()
    page = text(world.sam.get(f"/clients/pipelines/{world.pipeline.id}/board"))
    columns = dict(re.findall(r'data-stage-id="(\d+)" data-stage-kind="\w+" data-testid="stage-column" '
                              r'aria-label="[^"]+">(.*?)</section>', page, re.S))
    assert "Windows for the office" in columns[str(world.stages["New"].id)]
    assert "South showroom" in columns[str(world.stages["Offer"].id)]
    assert "Beta doors" not in page
    assert "Beta doors" in text(world.helen.get(f"/clients/pipelines/{world.pipeline.id}/board"))
    assert world.sam.get("/clients/pipelines/999999/board").status_code == 404
    assert world.sam.get("/clients/pipelines").headers["Location"].endswith(
        f"/clients/pipelines/{world.pipeline.id}/board")
    assert sara_deal.id


def test_moving_a_card_from_the_board(world, db):
    won = world.stages["Won"].id
    lost = world.stages["Lost"].id
    headers = {"Accept": "application/json", "X-CSRFToken": world.sam.csrf()}
    resp = world.sam.post(f"/clients/deals/{world.deal.id}/move", data={"stage_id": lost}, headers=headers)
    assert resp.status_code == 422 and resp.json["error"]["fields"]["reason_id"]
    assert db.session.get(Deal, world.deal.id).status == "open"
    other = db.session.scalar(select(Pipeline.id))  # a stage of another pipeline
    second = clients.save_pipeline(world.admin, {"name": "Service", "stages": [
        {"name": "Open"}, {"name": "Done", "kind": "won"}, {"name": "Dropped", "kind": "lost"}]})
    db.session.commit()
    resp = world.sam.post(f"/clients/deals/{world.deal.id}/move", data={"stage_id": second.stages[0].id},
                          headers=headers)
    assert resp.status_code == 422 and other
    resp = world.fred.post(f"/clients/deals/{world.deal.id}/move", data={"stage_id": won},
                           headers={"Accept": "application/json", "X-CSRFToken": world.fred.csrf()})
    assert resp.status_code == 404
    no_csrf = world.sam.post(f"/clients/deals/{world.deal.id}/move", data={"stage_id": won},
                             headers={"Accept": "application/json"})
    assert no_csrf.status_code == 400
    resp = world.sam.post(f"/clients/deals/{world.deal.id}/move", data={"stage_id": won}, headers=headers)
    assert resp.status_code == 200 and resp.json["status"] == "won"
    deal = db.session.get(Deal, world.deal.id)
    assert deal.status == "won" and [c.stage_id for c in deal.history] == [world.stages["New"].id, won]
    resp = world.sam.post(f"/clients/deals/{world.south_deal.id}/move", headers=headers,
                          data={"stage_id": lost, "reason_id": world.reasons.lost.id, "note": "Cheaper"})
    assert resp.json["status"] == "lost"
    assert db.session.get(Deal, world.south_deal.id).lost_note == "Cheaper"


def test_deal_page_stage_history_move_and_log(world, db):
    clock.advance(timedelta(days=2))
    clients.move_deal(world.office.Sam, world.deal.id, {"stage_id": world.stages["Offer"].id})
    db.session.commit()
    page = text(world.sam.get(f"/clients/deals/{world.deal.id}"))
    history = page.split('data-testid="stage-history"')[1].split("</ol>")[0]
    assert history.index("Offer") < history.index("New") and "2 d" in history
    assert "Ivan Buyer" in page and "150,000.00" in page
    bad = world.sam.form(f"/clients/deals/{world.deal.id}/move", {"stage_id": str(world.stages["Lost"].id),
                                                                  "note": "Rival"})
    assert bad.status_code == 422 and "Choose a reason from the list." in text(bad)
    assert 'value="Rival"' in text(bad)
    resp = world.sam.form(f"/clients/companies/{world.acme.id}/log", {
        "from": "deal", "deal_id": str(world.deal.id), "kind": "meeting", "subject": "Demo",
        "outcome": "postpone", "next_step_at": ""})
    assert resp.status_code == 422
    page = text(resp)
    assert "Postponing needs a new date ahead." in page and 'data-testid="stage-history"' in page
    resp = world.sam.form(f"/clients/companies/{world.acme.id}/log", {
        "from": "deal", "deal_id": str(world.deal.id), "kind": "meeting", "subject": "Demo",
        "outcome": "advance", "next_step": "Sign", "next_step_at": local(clock.utcnow() + timedelta(days=1))})
    assert resp.headers["Location"].endswith(f"/clients/deals/{world.deal.id}#history")
    deal = db.session.get(Deal, world.deal.id)
    assert deal.next_step == "Sign"
    assert db.session.get(Company, world.acme.id).next_step == "Call the buyer"  # the deal's step moved
    assert "Demo" in text(world.sam.get(f"/clients/deals/{world.deal.id}"))


def test_a_deals_responsible_who_may_not_see_its_company(world, db, app):
    deal = clients.create_deal(world.office.Helen, {"title": "Fittings by Sara", "company_id": world.acme.id,
                                                    "responsible_id": world.office.Sara.id})
    db.session.commit()
    sara = signed(app, world.office.Sara)
    assert sara.get(f"/clients/companies/{world.acme.id}").status_code == 404
    page = text(sara.get(f"/clients/deals/{deal.id}"))
    assert "Fittings by Sara" in page and 'data-testid="log-form"' not in page
    assert f'href="/clients/companies/{world.acme.id}"' not in page
    assert "kept by a colleague" in text(sara.get(f"/clients/deals/{deal.id}/edit"))
    resp = sara.form(f"/clients/deals/{deal.id}/edit", {"title": "Fittings, revised", "amount": "10",
                                                        "currency": "RUB"})
    assert resp.status_code == 302
    assert db.session.get(Deal, deal.id).title == "Fittings, revised"
    assert db.session.get(Deal, deal.id).company_id == world.acme.id
    moved = sara.post(f"/clients/deals/{deal.id}/move", data={"stage_id": world.stages["Offer"].id},
                      headers={"Accept": "application/json", "X-CSRFToken": sara.csrf()})
    assert moved.status_code == 200 and moved.json["stage"] == "Offer"


def test_new_and_edit_deal(world, db):
    form = text(world.sam.get(f"/clients/deals/new?company_id={world.acme.id}"))
    assert f'value="Acme (#{world.acme.id})"' in form and "Ivan Buyer" in form
    bad = world.sam.form("/clients/deals/new", {"title": "", "company": f"Acme (#{world.acme.id})",
                                                "amount": "100", "currency": "rub",
                                                "pipeline_id": str(world.pipeline.id),
                                                "stage_id": str(world.stages["Won"].id), "next_step": "Call"})
    assert bad.status_code == 422
    page = text(bad)
    assert 'value="Call"' in page and 'value="100"' in page and "is-invalid" in page
    ok = world.sam.form("/clients/deals/new", {"title": "Doors", "company": f"Acme (#{world.acme.id})",
                                               "contact_id": str(world.ivan.id), "amount": "1 000",
                                               "currency": "EUR", "pipeline_id": str(world.pipeline.id),
                                               "stage_id": str(world.stages["Offer"].id),
                                               "responsible_id": str(world.office.Sam.id),
                                               "next_step": "Call",
                                               "next_step_at": local(T0 + timedelta(days=1))})
    assert ok.status_code == 302
    deal = db.session.scalar(select(Deal).where(Deal.title == "Doors"))
    assert deal.stage_id == world.stages["Offer"].id
    assert deal.amount_minor == 100_000 and deal.currency == "EUR"
    assert deal.probability == 50
    edit = world.sam.form(f"/clients/deals/{deal.id}/edit", {
        "title": "Doors and frames", "company": f"Acme (#{world.acme.id})", "amount": "2000.5",
        "currency": "EUR", "probability": "60", "responsible_id": str(world.office.Sam.id),
        "expected_close": "2026-04-30"})
    assert edit.status_code == 302
    deal = db.session.get(Deal, deal.id)
    assert deal.title == "Doors and frames" and deal.amount_minor == 200_050 and deal.probability == 60
    assert 'value="2000.50"' in text(world.sam.get(f"/clients/deals/{deal.id}/edit"))
    bad = world.sam.form(f"/clients/deals/{deal.id}/edit", {"title": "X", "probability": "150",
                                                            "company": f"Acme (#{world.acme.id})"})
    assert bad.status_code == 422 and db.session.get(Deal, deal.id).title == "Doors and frames"


# --- administration -------------------------------------------------------------------------

def test_administration_is_for_administrators(world):
    for path in ("/clients/admin", "/clients/admin/pipelines"):
        assert world.helen.get(path).status_code == 403
    assert world.helen.form("/clients/admin/reasons", {"kind": "lost", "name": "X"}).status_code == 403
    assert world.helen.form("/clients/admin/forms", {"name": "X"}).status_code == 403
    assert 'href="/clients/admin"' not in text(world.helen.get("/clients/"))
    assert 'href="/clients/admin"' in text(world.boss.get("/clients/"))


def test_lead_settings_and_reasons(world, db):
    bad = world.boss.form("/clients/admin/settings", {"lead_minutes": "0", "lead_post_id": ""})
    assert bad.status_code == 422 and 'value="0"' in text(bad) and "whole number" in text(bad)
    ok = world.boss.form("/clients/admin/settings", {"lead_minutes": "30",
                                                     "lead_post_id": str(world.office.seller.id)})
    assert ok.status_code == 302
    assert clients.settings() == {"lead_minutes": 30, "lead_post_id": world.office.seller.id}
    assert world.boss.form("/clients/admin/reasons", {"kind": "lost", "name": "No budget"}).status_code == 302
    dup = world.boss.form("/clients/admin/reasons", {"kind": "lost", "name": "No budget"})
    assert dup.status_code == 422 and "already on the list" in text(dup)
    page = text(world.boss.get("/clients/admin"))
    assert "No budget" in page.split('data-testid="reasons-lost"')[1][:400]
    assert db.session.scalar(select(func.count(Reason.id)).where(Reason.name == "No budget")) == 1


def test_a_web_form_shows_its_key_once_with_the_html(world, db):
    resp = world.boss.form("/clients/admin/forms", {"name": "Main site"})
    assert resp.status_code == 200 and resp.headers["Cache-Control"] == "no-store"
    page = text(resp)
    key = re.search(r'value="([^"]+)" data-testid="web-form-key"', page).group(1)
    assert clients.form_for_key(key).name == "Main site"
    snippet = page.split('data-testid="web-form-snippet">')[1].split("</textarea>")[0]
    assert "/clients/forms/lead" in snippet and key in snippet and "&lt;form" in snippet
    again = text(world.boss.get("/clients/admin"))
    assert key not in again and "Main site" in again and key[-4:] in again
    bad = world.boss.form("/clients/admin/forms", {"name": ""})
    assert bad.status_code == 422
    assert db.session.scalar(select(func.count(WebForm.id))) == 1


def test_hand_over_moves_everything_a_person_keeps(world, db):
    bad = world.boss.form("/clients/admin/hand-over", {"from_user_id": str(world.office.Sam.id),
                                                       "to_user_id": str(world.office.Sam.id)})
    assert bad.status_code == 422 and "someone else" in text(bad)
    ok = world.boss.form("/clients/admin/hand-over", {"from_user_id": str(world.office.Sam.id),
                                                      "to_user_id": str(world.office.Sara.id)})
    assert ok.status_code == 302
    assert db.session.scalar(select(func.count(Company.id)).where(
        Company.responsible_id == world.office.Sara.id)) == 4
    assert db.session.scalar(select(func.count(Notification.id)).where(
        Notification.user_id == world.office.Sara.id, Notification.kind == "clients")) == 1


def test_pipelines_are_set_up_and_edited(world, db):
    page = text(world.boss.get("/clients/admin/pipelines"))
    assert 'value="Offer"' in page
    bad = world.boss.form("/clients/admin/pipelines", {
        "name": "Service", "rows": "2", "name-0": "Open", "kind-0": "open", "probability-0": "10",
        "name-1": "Closed", "kind-1": "won", "probability-1": "100"})
    assert bad.status_code == 422
    assert "one won stage and one lost" in text(bad) and 'value="Closed"' in text(bad)
    ok = world.boss.form("/clients/admin/pipelines", {
        "name": "Service", "rows": "3", "name-0": "Open", "kind-0": "open", "probability-0": "10",
        "order-0": "10", "name-1": "Closed", "kind-1": "won", "probability-1": "100", "order-1": "30",
        "name-2": "Dropped", "kind-2": "lost", "order-2": "20"})
    assert ok.status_code == 302
    service = db.session.scalar(select(Pipeline).where(Pipeline.name == "Service"))
    assert [s.name for s in service.stages] == ["Open", "Dropped", "Closed"]
    # Rename a stage and add one before it, keeping the others.
    stages = {s.name: s for s in world.pipeline.stages}
    data = {"name": "Sales", "rows": "5"}
    for i, (sid, name, kind, order) in enumerate([(stages["New"].id, "Inbound", "open", 10),
                                                  (None, "Measuring", "open", 15),
                                                  (stages["Offer"].id, "Offer", "open", 20),
                                                  (stages["Won"].id, "Won", "won", 30),
                                                  (stages["Lost"].id, "Lost", "lost", 40)]):
        data.update({f"name-{i}": name, f"kind-{i}": kind, f"order-{i}": str(order),
                     f"probability-{i}": "20"})
        if sid:
            data[f"id-{i}"] = str(sid)
    assert world.boss.form(f"/clients/admin/pipelines/{world.pipeline.id}", data).status_code == 302
    db.session.expire_all()
    names = [s.name for s in db.session.get(Pipeline, world.pipeline.id).stages if s.archived_at is None]
    assert names == ["Inbound", "Measuring", "Offer", "Won", "Lost"]
    assert db.session.get(Deal, world.deal.id).stage.name == "Inbound"
    assert world.boss.form("/clients/admin/pipelines/999999", data).status_code == 404
