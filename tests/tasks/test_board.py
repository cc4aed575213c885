"""The team board's columns as the indexes read them: open work by due time with undated work
last, done work of the last two weeks newest first, counts that match the lists, and a fixed
number of statements however big the team."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from app.core import clock
from app.tasks import services as tasks

T0 = datetime(2026, 5, 6, 9, 0, tzinfo=UTC)


def _task(db, setter, who, title, **extra):
    data = {"title": title, "assignee": f"user:{who.id}",
            **{k: v.isoformat() for k, v in extra.items()}}
    task = tasks.create_task(setter, data)
    db.session.commit()
    return task


def _done(db, who, task, at):
    clock.freeze(at)
    tasks.set_status(who, task.id, {"action": "done"})
    db.session.commit()


def test_columns_and_counts_of_a_heads_board(office, db):
    clock.freeze(T0 - timedelta(days=30))
    helen, sam, sara = office.Helen, office.Sam, office.Sara
    undated = _task(db, helen, sam, "No due time")
    late = _task(db, helen, sara, "Due soon", due_at=T0 + timedelta(hours=2))
    early = _task(db, helen, sam, "Due first", due_at=T0 - timedelta(days=1))
    busy = _task(db, helen, sara, "Under way", due_at=T0 + timedelta(days=2))
    tasks.set_status(sara, busy.id, {"action": "start"})
    old = _task(db, helen, sam, "Done long ago")
    _done(db, sam, old, T0 - timedelta(days=20))
    same_time = [_task(db, helen, who, f"Done {n}") for n, who in enumerate((sam, sara, sam))]
    for task in same_time:
        _done(db, task.assignee, task, T0 - timedelta(days=1))
    newest = _task(db, helen, sara, "Done just now")
    _done(db, sara, newest, T0 - timedelta(hours=1))
    cancelled = _task(db, helen, sam, "Not needed")
    tasks.set_status(helen, cancelled.id, {"action": "cancel"})
    asked = tasks.create_task(office.Fred, {"title": "Check the bill",
                                            "assignee": f"user:{sam.id}"})
    outside = _task(db, office.Fred, office.Fred, "Fred's own")
    db.session.commit()
    assert asked.status == "requested"

    board = tasks.board(helen, now=T0)
    ids = {k: [t.id for t in c["tasks"]] for k, c in board.items()}
    assert ids["open"] == [early.id, late.id, undated.id]  # by due time, undated last
    assert ids["in_progress"] == [busy.id]
    assert ids["requested"] == [asked.id]
    # Newest first; done at the same moment: the later task first. Old done work is gone.
    assert ids["done"] == [newest.id, *sorted((t.id for t in same_time), reverse=True)]
    assert {k: c["total"] for k, c in board.items()} == {
        "requested": 1, "open": 3, "in_progress": 1, "done": 4}
    shown = {i for column in ids.values() for i in column}
    assert not shown & {old.id, cancelled.id, outside.id}

    mine = tasks.board(helen, person_id=sara.id, now=T0)
    assert {k: c["total"] for k, c in mine.items()} == {
        "requested": 0, "open": 1, "in_progress": 1, "done": 2}

    small = tasks.board(helen, now=T0, limit=2)
    assert [t.id for t in small["open"]["tasks"]] == [early.id, late.id]
    assert small["open"]["total"] == 3


def test_the_board_takes_a_fixed_number_of_statements(office, admin, make_user, db,
                                                       count_queries):
    from app.orgchart import services as org

    clock.freeze(T0)
    _task(db, office.Helen, office.Sam, "First")
    tasks.board(office.Helen, now=T0)
    with count_queries() as before:
        tasks.board(office.Helen, now=T0)
    for i in range(4):
        seller = make_user(f"Seller {i}")
        org.assign(admin, {"post_id": office.seller.id, "user_id": seller.id})
        db.session.commit()
        for n in range(3):
            task = _task(db, office.Helen, seller, f"Lead {i}.{n}",
                         due_at=T0 + timedelta(days=n))
            if n == 2:
                _done(db, seller, task, T0 - timedelta(hours=1))
                clock.freeze(T0)
    tasks.board(office.Helen, now=T0)
    with count_queries() as after:
        board = tasks.board(office.Helen, now=T0)
    assert len(after) == len(before)
    assert board["open"]["total"] == 1 + 8 and board["done"]["total"] == 4
