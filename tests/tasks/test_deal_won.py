"""A won deal starts the programmes set to start then, for that deal."""

from __future__ import annotations

from sqlalchemy import func, select

from app.clients import services as clients
from app.core.models import Notification
from app.extensions import db
from app.orgchart import services as org
from app.orgchart.models import Assignment
from app.tasks import services as tasks
from app.tasks.models import Run


def _pipeline(admin):
    return clients.save_pipeline(admin, {"name": "Sales", "stages": [
        {"name": "New"}, {"name": "Won", "kind": "won", "probability": 100},
        {"name": "Lost", "kind": "lost"}]})


def _deal(office, pipeline):
    company = clients.create_company(office.Sam, {"legal_name": "Acme"})
    return clients.create_deal(office.Sam, {"title": "Windows", "company_id": company.id,
                                            "pipeline_id": pipeline.id})


def test_winning_a_deal_starts_the_programme_for_it(office, admin):
    pipeline = _pipeline(admin)
    other = _pipeline(admin)
    install = tasks.create_programme(office.Helen, {
        "theme": "installation", "name": "Install", "start_on_deal_won": True,
        "won_pipeline_id": pipeline.id, "stages": [{"title": "Measure", "post_id": office.seller.id}]})
    tasks.create_programme(office.Helen, {
        "theme": "installation", "name": "Elsewhere", "start_on_deal_won": True,
        "won_pipeline_id": other.id, "stages": [{"title": "X", "post_id": office.seller.id}]})
    tasks.create_programme(office.Helen, {
        "theme": "hiring", "name": "By hand", "stages": [{"title": "Y", "post_id": office.seller.id}]})
    deal = _deal(office, pipeline)

    clients.move_deal(office.Sam, deal.id, {"stage_id": pipeline.stages[1].id})

    runs = db.session.scalars(select(Run)).all()
    assert [(r.version.programme_id, r.link_kind, r.link_id) for r in runs] == [
        (install.id, "deal", deal.id)]
    assert runs[0].stages[0].status == "open" and runs[0].title == "Install: Windows (Acme)"


def test_a_programme_that_cannot_start_does_not_stop_the_deal(office, admin):
    pipeline = _pipeline(admin)
    tasks.create_programme(office.Helen, {
        "theme": "finance", "name": "Nobody there", "start_on_deal_won": True,
        "stages": [{"title": "Pay", "post_id": office.cashier.id}]})
    # Nobody holds the cashier's post, nor any post above it.
    for gone in db.session.scalars(select(Assignment).where(
            Assignment.user_id.in_([office.Fred.id, office.Dora.id]))).all():
        org.end_assignment(admin, gone.id)
    deal = _deal(office, pipeline)
    before = db.session.scalar(select(func.count()).select_from(Notification).where(
        Notification.user_id == office.Sam.id))

    clients.move_deal(office.Sam, deal.id, {"stage_id": pipeline.stages[1].id})

    assert deal.status == "won"
    assert db.session.scalar(select(func.count()).select_from(Run)) == 0
    told = db.session.scalars(select(Notification.title).where(
        Notification.user_id == office.Sam.id).order_by(Notification.id)).all()
    assert len(told) == before + 1 and "Nobody there" in told[-1]


def test_tasks_and_runs_about_a_client_are_in_its_history(office, admin):
    pipeline = _pipeline(admin)
    tasks.create_programme(office.Helen, {
        "theme": "installation", "name": "Install", "start_on_deal_won": True,
        "stages": [{"title": "Measure", "post_id": office.seller.id}]})
    deal = _deal(office, pipeline)
    call = tasks.create_task(office.Helen, {"title": "Call the director", "assignee": f"user:{office.Sam.id}",
                                            "link": f"client:{deal.company_id}"})
    tasks.create_task(office.Fred, {"title": "Fred's own note", "link": None})
    clients.move_deal(office.Sam, deal.id, {"stage_id": pipeline.stages[1].id})

    seen = {(i["kind"], i["title"], i.get("url")) for i in clients.history(office.Sam, deal.company_id)}
    assert ("task", "Call the director", f"/tasks/{call.id}") in seen
    assert any(kind == "run" and title.startswith("Install") for kind, title, _url in seen)
    # Fred may not see the company at all; a task he cannot see is not in Sam's history either.
    clients.share(office.Sam, deal.company_id, {"user_ids": [office.Fred.id]})
    fred_sees = {i["title"] for i in clients.history(office.Fred, deal.company_id)}
    assert "Call the director" not in fred_sees


def test_a_programme_names_a_pipeline_that_exists(office, admin, client):
    import pytest

    from app.core.errors import ValidationError
    from app.core.links import parse

    pipeline = _pipeline(admin)
    with pytest.raises(ValidationError):
        tasks.create_programme(office.Helen, {
            "theme": "x", "name": "Ghost", "start_on_deal_won": True, "won_pipeline_id": 999_999,
            "stages": [{"title": "A", "post_id": office.seller.id}]})
    with pytest.raises(ValidationError):  # a pipeline is named, never linked to
        parse(office.Helen, f"pipeline:{pipeline.id}")
    made = tasks.create_programme(office.Helen, {
        "theme": "x", "name": "Real", "start_on_deal_won": True, "won_pipeline_id": pipeline.id,
        "stages": [{"title": "A", "post_id": office.seller.id}]})
    db.session.commit()
    client.sign_in(office.Helen.email)
    page = client.get(f"/tasks/programmes/{made.id}").get_data(as_text=True)
    assert "Only for deals of the pipeline Sales." in page
    form = client.get(f"/tasks/programmes/{made.id}/edit").get_data(as_text=True)
    assert f'<option value="{pipeline.id}" selected>Sales</option>' in form
