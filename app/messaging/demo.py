"""The demo company's mail: some eight weeks of messages of every kind, with replies,
read and unread, confirmed directives, answered and overdue requests, drafts, scheduled
and snoozed messages, stars, labels and two mailing lists. Sent through the services at
past times (the clock is moved), so every row is what real use would leave."""

from __future__ import annotations

import random
from datetime import timedelta

from sqlalchemy import select

from app.core import clock
from app.core.demo import demo_loader
from app.core.models import User
from app.extensions import db
from app.messaging import services
from app.messaging.models import Message
from app.orgchart import chart as charts

WEEKS = 8
MESSAGES = 320
KEY = ["ceo@demo.crm", "sales@demo.crm", "finance@demo.crm", "staff@demo.crm", "admin@demo.crm"]

TOPICS = [
    ("Weekly report: sales", "Sales for the week: **42** calls, 9 meetings, 3 contracts signed.\n\n"
     "- New clients: 2\n- Invoices issued: 5"),
    ("Счета за ноябрь", "Коллеги, прошу до пятницы сверить счета поставщиков за ноябрь. "
     "Два счёта ещё не оплачены."),
    ("Client visit on Tuesday", "The client asked to move the meeting to Tuesday 11:00. "
     "Please confirm who will attend."),
    ("Отчёт о закупках", "Закупки за неделю: канцелярия, картриджи, бумага. "
     "Итого в пределах плана."),
    ("Price list update", "The new price list is attached to the shared folder. "
     "Prices change from the first of the month."),
    ("Статистика отдела", "Статистика выросла третью неделю подряд: условие *изобилие*. "
     "Продолжаем в том же духе."),
    ("Contract renewal", "The service contract ends next month. Should we renew on the same terms?"),
    ("Новый сотрудник", "С понедельника выходит новый менеджер. Нужно подготовить рабочее место "
     "и учётную запись."),
    ("Invoice overdue", "The invoice for the installation is 12 days overdue. "
     "I have called twice; the client promises to pay this week."),
    ("Планёрка в четверг", "Планёрка в четверг в 14:00 после закрытия недели. "
     "Принесите статистику и планы."),
    ("Supplier quote", "Two quotes received for the printers; the cheaper one has a longer delivery."),
    ("Жалоба клиента", "Клиент недоволен сроками доставки. Прошу разобраться и ответить ему сегодня."),
]
REQUESTS = [
    ("Please send the figures for the week", "I need your post's statistics before the close."),
    ("Нужен отчёт по дебиторке", "Пришлите, пожалуйста, отчёт по дебиторской задолженности."),
    ("Approve the purchase of chairs?", "Six chairs for the meeting room, quote attached in the "
     "purchase request."),
]
DIRECTIVES = [
    ("Order: closing the week", "From this week statistics are entered by **Thursday 14:00**. "
     "Confirm that you have read this and will follow it."),
    ("Распоряжение: порядок оплаты счетов", "Все счета оплачиваются только после согласования "
     "на финансовом планировании."),
]
BROADCASTS = [
    ("Office closed on Monday", "The office is closed on Monday for maintenance. Work from home."),
    ("Поздравляем с рекордной неделей!", "Компания выполнила недельный план продаж на 130%. "
     "Спасибо всем!"),
]


@demo_loader(20, "mail")
def load_mail() -> None:
    if db.session.scalar(select(Message.id).limit(1)) is not None:
        return
    chart = charts.load()
    people = sorted(chart.people().values(), key=lambda u: u.id)
    if len(people) < 3:
        return
    key = {u.email: u for u in db.session.scalars(select(User).where(User.email.in_(KEY)))}
    rng = random.Random(2026)
    real_now = clock.utcnow()
    start = real_now - timedelta(weeks=WEEKS)
    try:
        _lists(key, chart)
        times = sorted(start + timedelta(minutes=rng.randrange(WEEKS * 7 * 24 * 60 - 600))
                       for _ in range(MESSAGES))
        sent: list[tuple[Message, list[User]]] = []
        for i, at in enumerate(times):
            clock.freeze(at)
            sender = key[KEY[i % 4]] if i % 3 == 0 else rng.choice(people)
            msg = _write(sender, people, chart, rng, real_now, i)
            if msg is not None:
                sent.append((msg, [b.user for b in services.receipts(sender, msg.id)]))
                _follow_up(msg, sent[-1][1], rng, real_now)
        clock.freeze(real_now)
        _personal(key, people, chart, rng, real_now)
    finally:
        clock.release()


def _lists(key: dict[str, User], chart) -> None:
    heads = [f"post:{p.id}" for p in chart.head.values()
             if chart.units[p.unit_id].kind in ("company", "division")]
    services.create_list(key["ceo@demo.crm"], {"name": "Heads of divisions", "shared": True,
                                               "members": heads})
    sales_unit = next((u for u in chart.units.values() if "Sales" in u.name), None)
    if sales_unit is not None:
        services.create_list(key["sales@demo.crm"], {"name": "Sales team", "shared": False,
                                                     "members": [f"unit:{sales_unit.id}"]})


def _recipients(sender: User, people: list[User], chart, rng) -> list[str]:
    roll = rng.random()
    if roll < 0.5:
        others = [u for u in people if u.id != sender.id]
        return [f"user:{u.id}" for u in rng.sample(others, rng.choice((1, 1, 2, 3)))]
    if roll < 0.8:
        posts = [p for p in chart.posts.values() if chart.holding(p).users]
        return [f"post:{rng.choice(posts).id}"]
    below = chart.subordinates_of(sender.id)
    if below:
        return [f"user:{u.id}" for u in below[:4]]
    superiors = chart.superiors_of(sender.id)
    return [f"user:{superiors[0].id}"] if superiors else [f"user:{people[0].id}"]


def _write(sender: User, people, chart, rng, real_now, i: int) -> Message | None:
    from app.core.errors import DomainError

    roll = rng.random()
    to = _recipients(sender, people, chart, rng)
    data = {"to": to, "local_id": f"demo-{i}", "importance": rng.choice(
        ("normal", "normal", "normal", "high", "low"))}
    if roll < 0.2:
        subject, body = rng.choice(REQUESTS)
        due = clock.utcnow() + timedelta(hours=rng.choice((4, 24, 48)))
        data.update(kind="request", reply_due_at=due.isoformat())
    elif roll < 0.3:
        subject, body = rng.choice(DIRECTIVES)
        data["kind"] = "directive"
        if below := chart.subordinates_of(sender.id):
            data["to"] = [f"user:{u.id}" for u in below[:6]]
    elif roll < 0.45:
        subject, body = rng.choice(TOPICS[:1] + TOPICS[3:4] + TOPICS[5:6])
        data["kind"] = "report"
        superiors = chart.superiors_of(sender.id)
        if superiors:
            data["to"] = [f"user:{superiors[0].id}"]
    elif roll < 0.47 and sender.email == "ceo@demo.crm":
        subject, body = rng.choice(BROADCASTS)
        data.update(kind="broadcast", to=["all"])
    else:
        subject, body = rng.choice(TOPICS)
    data.update(subject=subject, body=body)
    try:
        with db.session.begin_nested():
            return services.send(sender, data)
    except DomainError:  # e.g. a post nobody holds: the demo simply skips it
        return None


def _follow_up(msg: Message, recipients: list[User], rng, real_now) -> None:
    """Recipients read, confirm and reply as people do; the newest stay unread."""
    sent_at = msg.sent_at
    fresh = real_now - sent_at < timedelta(days=2)
    for user in recipients:
        if fresh and rng.random() < 0.6:
            continue
        clock.freeze(sent_at + timedelta(minutes=rng.randrange(5, 600)))
        services.mark_read(user, {"ids": [msg.id]})
        if msg.kind == "directive" and rng.random() < 0.75:
            services.confirm(user, msg.id)
    if msg.kind in ("request", "ordinary") and recipients and rng.random() < 0.45:
        replier = rng.choice(recipients)
        late = msg.kind == "request" and rng.random() < 0.3
        delay = timedelta(hours=rng.randrange(30, 60)) if late else timedelta(minutes=rng.randrange(
            10, 240))
        at = sent_at + delay
        if at >= real_now:
            return
        clock.freeze(at)
        services.mark_read(replier, {"ids": [msg.id]})  # no-op when already read
        template = services.reply_template(replier, msg.id)
        services.send(replier, {**template, "body": rng.choice((
            "Done, see the figures above.", "Принято, сделаю до конца дня.",
            "Agreed. I will call the client tomorrow.", "Готово, отчёт отправил."))})
    clock.freeze(sent_at)


def _personal(key: dict[str, User], people, chart, rng, real_now) -> None:
    """Drafts, scheduled and snoozed messages, stars, labels, the archive, an edit and a
    correction for the demo accounts, so every folder and feature has something in it."""
    ceo = key["ceo@demo.crm"]
    mine = db.session.scalars(select(Message).where(Message.sender_id == ceo.id,
                                                    Message.state == "sent")
                              .order_by(Message.sent_at.desc())
                              .execution_options(populate_existing=True)).all()
    unread = next((m for m in mine if m.first_read_at is None), None)
    if unread is not None:
        services.edit(ceo, unread.id, {"body": unread.body + "\n\n(Edited: details added.)"})
    read = next((m for m in mine if m.first_read_at is not None), None)
    if read is not None:
        services.correct(ceo, read.id, {"body": "Correction: the deadline is **Friday**, not Thursday."})
    for user in key.values():
        boxes = db.session.scalars(services.folder_query(user, "inbox")).all()
        if boxes:
            services.star(user, {"ids": [b.message_id for b in boxes[:3]], "starred": True})
            services.move(user, {"ids": [b.message_id for b in boxes[-5:]], "folder": "archive"})
            if len(boxes) > 6:
                services.snooze(user, boxes[5].message_id,
                                {"until": (real_now + timedelta(days=1)).isoformat()})
            urgent = services.create_label(user, {"name": "Urgent", "color": "danger"})
            clients = services.create_label(user, {"name": "Clients", "color": "primary"})
            for b in boxes[:6]:
                services.set_labels(user, b.message_id,
                                    {"label_ids": [urgent.id] if b.message.importance == "high"
                                     else [clients.id]})
        colleague = next(u for u in people if u.id != user.id)
        services.save_draft(user, {"to": [f"user:{colleague.id}"], "subject": "Plan for next week",
                                   "body": "Draft: goals for the week, to finish on Monday."})
        services.send(user, {"to": [f"user:{colleague.id}"], "subject": "Reminder: statistics",
                             "body": "Please enter your statistics before Thursday 14:00.",
                             "send_at": (real_now + timedelta(days=2)).isoformat()})
