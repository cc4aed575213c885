"""The main paths of tasks and programmes, end to end through the services."""

from __future__ import annotations

from datetime import timedelta

import pytest

from app.core.clock import utcnow
from app.core.errors import Conflict, ValidationError
from app.tasks import services as tasks


def test_a_head_gives_work_down_and_a_seller_asks_another_unit(office):
    task = tasks.create_task(office.Helen, {"title": "Call Acme", "assignee": f"user:{office.Sam.id}",
                                            "steps": [{"title": "Prepare"}, {"title": "Call"}]})
    assert (task.status, task.assignee_id) == ("open", office.Sam.id)
    with pytest.raises(Conflict):
        tasks.update_step(office.Sam, task.id, task.steps[1].id, {"done": True})
    tasks.update_step(office.Sam, task.id, task.steps[0].id, {"done": True})
    assert task.status == "in_progress"
    with pytest.raises(Conflict):
        tasks.set_status(office.Sam, task.id, {"action": "done"})
    tasks.update_step(office.Sam, task.id, task.steps[1].id, {"done": True})
    tasks.set_status(office.Sam, task.id, {"action": "done"})
    assert task.status == "done"

    asked = tasks.create_task(office.Sam, {"title": "Pay the bill", "assignee": f"post:{office.cashier.id}"})
    assert (asked.status, asked.requested_of_id) == ("requested", office.Fred.id)
    tasks.decide(office.Fred, asked.id, {"accept": True})
    assert (asked.status, asked.assignee_id) == ("open", office.Fred.id)


def test_a_programme_opens_its_stages_one_after_another(office):
    programme = tasks.create_programme(office.Helen, {"theme": "new client", "name": "Onboarding",
        "stages": [{"title": "Sign", "post_id": office.seller.id, "needs_attachment": True},
                   {"title": "Invoice", "post_id": office.cashier.id, "checklist": ["Issue"]}]})
    run = tasks.start_run(office.Helen, {"programme_id": programme.id})
    first, second = run.stages
    assert (first.status, second.status) == ("open", "waiting")
    assert first.assignee_id in (office.Sam.id, office.Sara.id)
    with pytest.raises(Conflict):
        tasks.set_status(office.Sam, first.id, {"action": "done"})
    assert second.planned_start_at == first.planned_due_at


def test_a_cycle_is_refused(office):
    with pytest.raises(ValidationError):
        tasks.create_programme(office.Helen, {"theme": "x", "name": "Loop", "stages": [
            {"key": "a", "title": "A", "post_id": office.seller.id, "after": ["b"]},
            {"key": "b", "title": "B", "post_id": office.seller.id, "after": ["a"]}]})


def test_due_before_start_is_refused(office):
    now = utcnow()
    with pytest.raises(ValidationError):
        tasks.create_task(office.Helen, {"title": "x", "start_at": now.isoformat(),
                                         "due_at": (now - timedelta(hours=1)).isoformat()})


def test_an_optional_step_may_be_skipped(office):
    task = tasks.create_task(office.Helen, {"title": "Visit", "steps": [
        {"title": "Call ahead", "required": False}, {"title": "Go"}]})
    tasks.update_step(office.Helen, task.id, task.steps[1].id, {"done": True})
    tasks.set_status(office.Helen, task.id, {"action": "done"})
    assert task.status == "done" and task.steps[0].done_at is None


def test_saving_a_request_with_the_same_assignee_does_not_ask_again(office):
    from sqlalchemy import func, select

    from app.core.models import Notification
    from app.extensions import db

    asked = tasks.create_task(office.Sam, {"title": "Pay", "assignee": f"post:{office.cashier.id}"})

    def told() -> int:
        return db.session.scalar(select(func.count()).select_from(Notification).where(
            Notification.user_id == office.Fred.id))

    before = told()
    tasks.update_task(office.Sam, asked.id, {"assignee": f"post:{office.cashier.id}", "title": "Pay now"})
    assert (asked.status, asked.requested_of_id, told()) == ("requested", office.Fred.id, before)
