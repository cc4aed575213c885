"""The demo company's tasks: programmes of several themes on the demo chart's posts (one
edited to a second version, with runs on both), runs in progress, done and cancelled,
projects, and tasks in every state with steps, watchers, comments, reminders and links to
demo mail, overdue and due today for the demo accounts. Runs are for demo clients and deals
when the client base is there (it loads first), else for named clients.

Everything goes through the services at past times (the clock is moved), so the rows, the
audit log and the notifications are what real use would leave. Loading twice changes
nothing: the loader stops when any programme or task exists.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from io import BytesIO
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from sqlalchemy import func, select
from werkzeug.datastructures import FileStorage

from app.core import attachments, clock, links
from app.core.demo import demo_loader
from app.core.errors import DomainError
from app.core.models import User
from app.extensions import db
from app.orgchart import chart as charts
from app.tasks import services
from app.tasks.models import Programme, Run, Task

ACCOUNTS = {"anna": "admin@demo.crm", "boris": "ceo@demo.crm", "svetlana": "sales@demo.crm",
            "fyodor": "finance@demo.crm", "olga": "staff@demo.crm"}
# Who else takes part, by the post they hold on the demo chart.
BY_POST = {
    "nikolai": "Head of the Dissemination division", "roman": "Marketer",
    "dmitry": "Head of Executive director's office", "viktor": "Invoicing officer",
    "anastasia": "Head of Income", "ksenia": "Head of Disbursements", "oleg": "Cashier",
    "artem": "Accountant", "tatiana": "HR officer", "pavel": "Head of Routing and personnel",
    "irina": "Office manager", "marina": "Trainer", "sofia": "Production specialist",
    "vera": "Buyer", "polina": "Head of the Production division", "gleb": "PR manager",
    "stepan": "Head of the Public relations division",
}
PDF = b"%PDF-1.4\n1 0 obj << /Type /Catalog >> endobj\ntrailer << /Root 1 0 R >>\n%%EOF\n"

NEW_CLIENT = [  # version 1; version 2 adds the payment and lengthens the meeting
    {"key": "qualify", "title": "Qualify the lead", "post": "Client acquisition manager",
     "duration_hours": 8, "checklist": ["Call within 15 minutes", "Record the client's needs",
                                        "Create the contact card"],
     "instructions": "Call the lead **within 15 minutes** of the request. Ask about the "
                     "budget, the deadline and who decides."},
    {"key": "offer", "title": "Meeting and offer", "post": "Sales manager", "duration_hours": 48,
     "checklist": ["Meet the client", "Send the offer"],
     "instructions": "Meet the client, agree the scope and send the offer from the template."},
    {"key": "contract", "title": "Signed contract", "post": "Head of Sales",
     "duration_hours": 24, "needs_attachment": True,
     "instructions": "Attach the contract **signed by both sides** before closing this stage."},
    {"key": "invoice", "title": "First invoice", "post": "Invoicing officer",
     "duration_hours": 8, "checklist": ["Issue the invoice", "Send it to the client"]},
    {"key": "welcome", "title": "Welcome call", "post": "PR manager", "duration_hours": 24,
     "instructions": "Thank the client, introduce their manager, ask how they found us."},
]
PAYMENT = {"key": "payment", "title": "Payment received", "post": "Cashier",
           "duration_hours": 72, "after": ["invoice"],
           "instructions": "Check the bank statement; remind the client on day two."}
INSTALLATION = [
    {"key": "measure", "title": "Measure the site", "post": "Production specialist",
     "duration_hours": 24, "checklist": ["Visit the site", "Photos and measurements"]},
    {"key": "order", "title": "Order the materials", "post": "Buyer", "duration_hours": 48,
     "after": ["measure"], "checklist": ["Two quotes", "Order placed"]},
    {"key": "prepay", "title": "Take the prepayment", "post": "Cashier", "duration_hours": 24,
     "after": ["measure"]},
    {"key": "install", "title": "Install", "post": "Production specialist",
     "duration_hours": 24, "after": ["order", "prepay"]},
    {"key": "quality", "title": "Quality check and acceptance act", "post": "Quality controller",
     "duration_hours": 8, "needs_attachment": True,
     "instructions": "Check the work with the client and attach the **signed acceptance act**."},
    {"key": "report", "title": "Report to the head of sales", "post": "Sales manager",
     "duration_hours": 4},
]
HIRING = [
    {"key": "vacancy", "title": "Publish the vacancy", "post": "HR officer", "duration_hours": 24,
     "checklist": ["Job description agreed", "Posted on two job sites"]},
    {"key": "interviews", "title": "Interviews", "post": "Head of Routing and personnel",
     "duration_hours": 72, "checklist": ["Shortlist", "Interviews held", "Candidate chosen"]},
    {"key": "offer", "title": "Offer and contract", "post": "HR officer", "duration_hours": 24},
    {"key": "workplace", "title": "Workplace and accounts", "post": "Office manager",
     "duration_hours": 24, "checklist": ["Desk and chair", "Computer", "CRM account"]},
    {"key": "induction", "title": "Induction training", "post": "Trainer", "duration_hours": 40,
     "checklist": ["The company and its chart", "The post's duties", "Statistics of the post"]},
]
PURCHASE = [
    {"key": "quotes", "title": "Collect quotes", "post": "Buyer", "duration_hours": 48,
     "checklist": ["Three suppliers asked"]},
    {"key": "approve", "title": "Approve the purchase", "post": "Head of the Finance division",
     "duration_hours": 24},
    {"key": "pay", "title": "Pay the supplier", "post": "Cashier", "duration_hours": 24},
    {"key": "record", "title": "Receive and record the assets", "post": "Accountant",
     "duration_hours": 24, "checklist": ["Goods received", "Entered in the asset register"]},
]

# Everyday work heads give their people (title, priority, with steps?).
ROUTINE = [
    ("Enter the week's statistics", "normal", False),
    ("Prepare the report for the planning round", "high", True),
    ("Check the post's hat and update the checklist", "low", False),
    ("Call the three oldest unpaid clients", "high", True),
    ("Send the supplier the signed order", "normal", False),
    ("Sort the incoming documents", "low", False),
    ("Plan next week's work", "normal", True),
    ("Fix the complaint from the last order", "urgent", True),
    ("Update the price list in the shared folder", "normal", False),
    ("Train the new colleague on the CRM", "normal", True),
]
ROUTINE_STEPS = ["Gather what is needed", "Do it", "Report back"]


@demo_loader(50, "tasks")  # after the mail and the clients, so runs and tasks can link to them
def load_tasks() -> None:
    if db.session.scalar(select(Programme.id).limit(1)) is not None or \
            db.session.scalar(select(Task.id).limit(1)) is not None:
        return
    chart = charts.load()
    people = _people(chart)
    if people is None:  # the demo chart is not there: nothing to hang tasks on
        return
    real_now = clock.utcnow()
    try:
        Demo(chart, people, real_now).load()
    finally:
        clock.release()


def _people(chart) -> dict[str, User] | None:
    accounts = {u.email: u for u in db.session.scalars(
        select(User).where(User.email.in_(ACCOUNTS.values())))}
    posts = {p.title: p for p in chart.posts.values()}
    found = {key: accounts.get(email) for key, email in ACCOUNTS.items()}
    for key, title in BY_POST.items():
        holders = chart.holding(posts[title]).users if title in posts else ()
        others = [u for u in holders if u.email not in ACCOUNTS.values()]
        found[key] = (others or list(holders) or [None])[0]
    return found if all(found.values()) else None


class Demo:
    def __init__(self, chart, people: dict[str, User], now: datetime):
        self.chart, self.p, self.now = chart, people, now
        self.posts = {p.title: p for p in chart.posts.values()}
        self.rng = random.Random(2026)
        try:
            self.zone = ZoneInfo(people["olga"].timezone or "UTC")
        except (ZoneInfoNotFoundError, ValueError):
            self.zone = ZoneInfo("UTC")

    # --- time -----------------------------------------------------------------------------

    def ago(self, days: float = 0, hours: float = 0) -> datetime:
        return self.now - timedelta(days=days, hours=hours)

    def ahead(self, days: float = 0, hours: float = 0) -> datetime:
        return self.now + timedelta(days=days, hours=hours)

    def today_at(self, hour: int, minute: int = 0) -> datetime:
        """Today at this local hour if it is still to come; late in the day, a time between
        now and midnight, so "due today" always has something."""
        local = self.now.astimezone(self.zone)
        midnight = local.replace(hour=0, minute=0, second=0, microsecond=0) + timedelta(days=1)
        target = local.replace(hour=hour, minute=minute, second=0, microsecond=0)
        if target <= local + timedelta(minutes=30):
            target = local + (midnight - local) * (0.5 + hour / 100)
        return target.astimezone(UTC)

    def at(self, when: datetime, fn: Callable, *args, **kwargs):
        clock.freeze(min(when, self.now))
        return fn(*args, **kwargs)

    # --- helpers over the services --------------------------------------------------------

    def task(self, setter: str, title: str, who: str | None = None, *, created: datetime,
             due: datetime | None = None, start: datetime | None = None, priority="normal",
             description: str = "", steps=(), watchers=(), link: str | None = None,
             post: str | None = None) -> Task:
        data = {"title": title, "priority": priority, "description": description,
                "steps": [s if isinstance(s, dict) else {"title": s} for s in steps],
                "watchers": [self.p[w].id for w in watchers], "link": link,
                "due_at": due.isoformat() if due else None,
                "start_at": start.isoformat() if start else None}
        if post is not None:
            data["assignee"] = f"post:{self.posts[post].id}"
        elif who is not None:
            data["assignee"] = f"user:{self.p[who].id}"
        return self.at(created, services.create_task, self.p[setter], data)

    def steps_done(self, task: Task, when: datetime, count: int | None = None) -> None:
        doer = self._doer(task)
        for step in task.steps[:count]:
            who = step.assignee if step.assignee_id else doer
            self.at(when, services.update_step, who, task.id, step.id, {"done": True})

    def _doer(self, task: Task) -> User:
        return db.session.get(User, task.assignee_id)

    def start(self, task: Task, when: datetime) -> None:
        self.at(when, services.set_status, self._doer(task), task.id, {"action": "start"})

    def done(self, task: Task, when: datetime) -> None:
        self.steps_done(task, when)
        if task.needs_attachment:
            self.at(when, attachments.store, self._doer(task), services.OWNER, task.id,
                    FileStorage(BytesIO(PDF), filename=f"signed-{task.stage_key}-{task.id}.pdf",
                                content_type="application/pdf"))
        self.at(when, services.set_status, self._doer(task), task.id, {"action": "done"})

    def comment(self, who: str, task: Task, when: datetime, body: str) -> None:
        self.at(when, services.add_comment, self.p[who], task.id, {"body": body})

    def remind(self, who: str, task: Task, when: datetime, at: datetime, note: str = "") -> None:
        self.at(when, services.add_reminder, self.p[who], task.id,
                {"remind_at": at.isoformat(), "note": note})

    def message_link(self, people: tuple[str, ...], *words: str) -> str | None:
        """A demo message in the mailboxes of all these people (the first one links it),
        preferring one whose subject has one of the words; None when the mail is not
        installed or they share no message."""
        box, message = db.metadata.tables.get("mail_box"), db.metadata.tables.get("mail_message")
        if box is None or message is None:
            return None
        ids = [self.p[who].id for who in people]
        shared = (select(box.c.message_id).where(box.c.user_id.in_(ids))
                  .group_by(box.c.message_id)
                  .having(func.count(func.distinct(box.c.user_id)) == len(ids)))
        rows = db.session.execute(
            select(message.c.id, message.c.subject).where(message.c.id.in_(shared))
            .order_by(message.c.id.desc()).limit(200)).all()
        picked = next((mid for mid, subject in rows
                       if any(w.lower() in (subject or "").lower() for w in words)),
                      rows[0][0] if rows else None)
        if picked is None or links.resolve(self.p[people[0]], "message", picked) is None:
            return None
        return f"message:{picked}"

    def records(self, who: str, kind: str, table: str, count: int) -> list[links.Link]:
        """Records of another module (clients, deals) this person may see, to run programmes
        for; none when that module is not installed."""
        rows = db.metadata.tables.get(table)
        if rows is None or kind not in links.kinds():
            return []
        found = []
        for (record_id,) in db.session.execute(select(rows.c.id).order_by(rows.c.id).limit(40)):
            link = links.resolve(self.p[who], kind, record_id)
            if link is not None:
                found.append(link)
            if len(found) == count:
                break
        return found

    @staticmethod
    def about(records: list, index: int, fallback: str) -> tuple[str, str | None]:
        """A run's subject: the linked record's title, or a name when there is none."""
        if index < len(records):
            return records[index].title[:200], f"{records[index].kind}:{records[index].id}"
        return fallback, None

    def stages(self, spec: list[dict], **changes) -> list[dict]:
        out = []
        for stage in spec:
            row = {k: v for k, v in stage.items() if k != "post"}
            row["post_id"] = self.posts[stage["post"]].id
            row.update(changes.get(stage["key"], {}))
            out.append(row)
        return out

    def run(self, who: str, programme: Programme, when: datetime, title: str,
            link: str | None = None) -> Run:
        return self.at(when, services.start_run, self.p[who],
                       {"programme_id": programme.id, "title": title, "link": link})

    def stage(self, run: Run, key: str) -> Task:
        return next(s for s in run.stages if s.stage_key == key)

    # --- the whole demo -------------------------------------------------------------------

    def load(self) -> None:
        projects = self.projects()
        self.programmes_and_runs(projects)
        self.work_of_the_demo_accounts(projects)
        self.requests()
        self.routine()
        clock.freeze(self.now)

    def projects(self) -> dict[str, str]:
        made = {}
        for who, name, description, days in (
                ("polina", "Warehouse fit-out", "Shelving, lighting and the loading bay of the "
                 "new warehouse.", 30),
                ("svetlana", "Sales team equipment", "Laptops and headsets for the sales team.", 12),
                ("boris", "New office in Kazan", "Premises, staff and the first clients of the "
                 "Kazan branch.", 45),
                ("anna", "CRM roll-out", "Everyone on the CRM: accounts, training, old data "
                 "imported.", 60)):
            project = self.at(self.ago(days), services.create_project, self.p[who],
                              {"name": name, "description": description})
            made[name] = f"project:{project.id}"
        return made

    def programmes_and_runs(self, projects: dict[str, str]) -> None:
        boris, polina = self.p["boris"], self.p["polina"]
        new_client = self.at(self.ago(60), services.create_programme, boris, {
            "theme": "new client", "name": "New client onboarding",
            "description": "From the first call to the welcome call: every new client goes "
                           "through these stages.",
            "stages": self.stages(NEW_CLIENT)})
        installation = self.at(self.ago(58), services.create_programme, polina, {
            "theme": "installation", "name": "Installation at the client's site",
            "description": "Measuring, ordering and prepayment run side by side; the install "
                           "waits for both.",
            "stages": self.stages(INSTALLATION)})
        hiring = self.at(self.ago(50), services.create_programme, self.p["pavel"], {
            "theme": "hiring", "name": "Hiring a new employee",
            "description": "From the vacancy to the first week on the post.",
            "stages": self.stages(HIRING)})
        purchase = self.at(self.ago(40), services.create_programme, self.p["fyodor"], {
            "theme": "purchase", "name": "Purchase of equipment",
            "description": "Quotes, approval on the planning round, payment, the asset "
                           "register.",
            "stages": self.stages(PURCHASE)})

        # New client, version 1: one run finished, one still going.
        clients = self.records("svetlana", "client", "client_company", 3)
        title, link = self.about(clients, 0, "Romashka LLC")
        romashka = self.run("svetlana", new_client, self.ago(35), f"Onboarding: {title}", link)
        t = self.ago(35)
        for key, hours in (("qualify", 3), ("offer", 30), ("contract", 20), ("invoice", 5),
                           ("welcome", 20)):
            t += timedelta(hours=hours)
            self.done(self.stage(romashka, key), t)
        title, link = self.about(clients, 1, "Vector Ltd")
        vector = self.run("svetlana", new_client, self.ago(22), f"Onboarding: {title}",
                          link=link or self.message_link(("svetlana",), "contract", "client"))
        self.done(self.stage(vector, "qualify"), self.ago(21, 20))
        self.done(self.stage(vector, "offer"), self.ago(20, 2))
        self.comment("svetlana", self.stage(vector, "contract"), self.ago(19),
                     "The client's lawyer is still reading the contract.")

        # Version 2: the payment is followed up too, and meetings get three days.
        self.at(self.ago(18), services.update_programme, boris, new_client.id, {
            "theme": "new client", "name": "New client onboarding",
            "description": "From the first call to the payment and the welcome call.",
            "stages": self.stages(NEW_CLIENT + [PAYMENT],
                                  offer={"duration_hours": 72},
                                  welcome={"after": ["payment"]})})
        title, link = self.about(clients, 2, "Granit Trade")
        granit = self.run("svetlana", new_client, self.ago(3), f"Onboarding: {title}",
                          link=link or self.message_link(("svetlana",), "visit", "client"))
        self.done(self.stage(granit, "qualify"), self.ago(2, 22))
        offer = self.stage(granit, "offer")
        self.steps_done(offer, self.ago(2), count=1)
        self.comment("olga", offer, self.ago(1, 4), "Meeting moved to Friday at the client's "
                                                    "request; the offer is ready.")
        self.run("nikolai", new_client, self.ago(0, 2), "Onboarding: Omega Log")

        # Installation: measuring done, ordering and prepayment side by side.
        title, link = self.about(self.records("svetlana", "deal", "client_deal", 1), 0,
                                 "Cafe Sirena")
        sirena = self.run("svetlana", installation, self.ago(6), f"Installation: {title}", link)
        self.done(self.stage(sirena, "measure"), self.ago(5, 4))
        self.done(self.stage(sirena, "order"), self.ago(3, 1))
        self.comment("oleg", self.stage(sirena, "prepay"), self.ago(2),
                     "The client promises to pay on Monday.")
        self.run("polina", installation, self.ago(0, 5), "Installation: warehouse shelving",
                 link=projects["Warehouse fit-out"])
        clinic = self.run("polina", installation, self.ago(30), "Installation: Ulybka clinic")
        t = self.ago(30)
        for key, hours in (("measure", 20), ("order", 30), ("prepay", 2), ("install", 40),
                           ("quality", 6), ("report", 2)):
            t += timedelta(hours=hours)
            self.done(self.stage(clinic, key), t)

        # Hiring: one run cancelled, one overdue at the interviews.
        frozen = self.run("svetlana", hiring, self.ago(9), "Hiring: sales manager")
        self.done(self.stage(frozen, "vacancy"), self.ago(8, 2))
        self.at(self.ago(2), services.cancel_run, self.p["svetlana"], frozen.id)
        kazan = self.run("fyodor", hiring, self.ago(8), "Hiring: accountant for Kazan",
                         link=projects["New office in Kazan"])
        self.done(self.stage(kazan, "vacancy"), self.ago(7, 3))
        self.steps_done(self.stage(kazan, "interviews"), self.ago(5), count=1)

        # Purchase: waiting for the finance head's approval today.
        laptops = self.run("svetlana", purchase, self.ago(2, 10), "Purchase: laptops for sales",
                           link=projects["Sales team equipment"])
        self.done(self.stage(laptops, "quotes"), self.ago(0, 3))

    def work_of_the_demo_accounts(self, projects: dict[str, str]) -> None:
        # Olga (staff@): a sales manager and the director's assistant.
        call = self.task(
            "svetlana", "Call back Romashka about the offer", "olga", created=self.ago(3),
            due=self.ago(0, 20), priority="high",
            description="They asked for a **10% discount** on the second order. Agree on "
                        "no more than 5%.",
            steps=["Check the price list", "Call the client", "Write a short summary"],
            watchers=["boris"], link=self.message_link(("svetlana", "olga"), "price", "client"))
        self.steps_done(call, self.ago(2, 20), count=1)
        self.comment("svetlana", call, self.ago(0, 10), "Any news from Romashka?")
        self.comment("olga", call, self.ago(0, 8), "They did not pick up; I will try again "
                                                   "after lunch.")
        report = self.task("svetlana", "Weekly sales report", "olga", created=self.ago(2),
                           due=self.today_at(17), steps=["Collect the figures",
                                                         "Compare with last week",
                                                         "Send to the head of sales"],
                           link=self.message_link(("svetlana", "olga"), "report",
                                                         "statistics"))
        self.steps_done(report, self.ago(0, 6), count=2)
        self.task("svetlana", "Update the contact cards of new clients", "olga",
                  created=self.ago(1), due=self.today_at(19))
        meeting = self.task("svetlana", "Meeting with Vector Ltd", "olga", created=self.ago(1),
                            start=self.ahead(2), due=self.ahead(2, 2),
                            steps=["Print the offer", "Bring the samples"])
        self.remind("olga", meeting, self.ago(0, 12), self.ahead(1, 8), "Print the offer tonight")
        self.task("svetlana", "Prepare the offer for Omega Log", "olga", created=self.ago(0, 9),
                  due=self.ahead(1, 3), priority="urgent", watchers=["nikolai"],
                  link=self.message_link(("svetlana", "olga"), "quote", "supplier"))
        self.task("svetlana", "Tidy the shared sales folder", "olga", created=self.ago(5),
                  priority="low")
        sent = self.task("svetlana", "Send the catalogue to Granit Trade", "olga",
                         created=self.ago(6), due=self.ago(4))
        self.done(sent, self.ago(4, 3))
        self.comment("olga", sent, self.ago(4, 3), "Sent with the new prices.")
        flyers = self.task("svetlana", "Print flyers for the exhibition", "olga",
                           created=self.ago(7), due=self.ago(3))
        self.at(self.ago(5), services.set_status, self.p["svetlana"], flyers.id,
                {"action": "cancel"})
        self.comment("svetlana", flyers, self.ago(5), "The exhibition is cancelled, no flyers.")
        self.task("dmitry", "Order the office supplies", "olga", created=self.ago(4),
                  due=self.ago(2), steps=["Ask who needs what", "Order"])
        certificate = self.task("olga", "Renew my product training certificate",
                                created=self.ago(1), due=self.ahead(7))
        self.remind("olga", certificate, self.ago(1), self.ahead(5), "Book the exam")

        # Svetlana (sales@): head of sales.
        plan = self.task("nikolai", "Sales plan for the next quarter", "svetlana",
                         created=self.ago(4), due=self.today_at(18), priority="high",
                         steps=["Last quarter's figures", "Targets per manager",
                                "Agree with the division head"], watchers=["boris"])
        self.steps_done(plan, self.ago(1), count=1)
        lost = self.task("boris", "Review the lost deals of April", "svetlana",
                         created=self.ago(6), due=self.ago(1), priority="high",
                         watchers=["nikolai"])
        self.comment("boris", lost, self.ago(0, 5), "I need this before the planning round.")
        self.task("svetlana", "Call the key clients", created=self.ago(0, 6),
                  due=self.today_at(16))
        stand = self.task("nikolai", "Prepare the exhibition stand", "svetlana",
                          created=self.ago(2), due=self.ahead(4),
                          steps=[{"title": "Design of the banner", "assignee_id": self.p["roman"].id,
                                  "parallel": True},
                                 {"title": "Brochures", "parallel": True},
                                 {"title": "Book the transport"}])
        self.remind("svetlana", stand, self.ago(2), self.ahead(3), "Check the banner")
        self.task("svetlana", "Ideas for the spring campaign", created=self.ago(9),
                  priority="low")
        interns = self.task("nikolai", "Interview plan for sales interns", "svetlana",
                            created=self.ago(12), due=self.ago(8))
        self.done(interns, self.ago(8, 4))

        # Fyodor (finance@): head of the finance division.
        self.task("boris", "Cash minus bills for the week", "fyodor", created=self.ago(1),
                  due=self.today_at(16), priority="high")
        funds = self.task("boris", "Allocate this week's income to the funds", "fyodor",
                          created=self.ago(3), due=self.ago(0, 6), priority="high",
                          steps=["Income of the week", "Percentages to the funds",
                                 "Approve on the planning round"])
        self.steps_done(funds, self.ago(1), count=1)
        self.task("fyodor", "Check the bank statement", created=self.ago(0, 7),
                  due=self.today_at(18, 30))
        tax = self.task("fyodor", "Quarterly tax return", created=self.ago(6),
                        due=self.ahead(10), steps=["Collect the acts", "Fill in the return",
                                                   "Submit"])
        self.remind("fyodor", tax, self.ago(6), self.ahead(8), "Ask Daria for the acts")
        self.task("fyodor", "Choose a new accounting system", created=self.ago(20), priority="low")
        invoices = self.task(
            "fyodor", "Issue invoices for the week", "viktor", created=self.ago(1),
            due=self.today_at(17),
            steps=[{"title": "Collect the signed acts", "parallel": True},
                   {"title": "Confirm the clients' bank details",
                    "assignee_id": self.p["olga"].id, "due_at": self.today_at(15).isoformat(),
                    "parallel": True},
                   {"title": "Issue the invoices"}],
            watchers=["olga"])
        self.comment("viktor", invoices, self.ago(0, 4), "Olga, please confirm the details of "
                                                         "Granit Trade.")
        reconcile = self.task("fyodor", "Reconcile April receipts", "anastasia",
                              created=self.ago(5), due=self.ago(1))
        self.start(reconcile, self.ago(3))
        self.task("fyodor", "Pay the rent", "oleg", created=self.ago(1), due=self.ahead(1),
                  priority="high", link=projects["New office in Kazan"])
        inventory = self.task("fyodor", "Inventory of the office equipment", "artem",
                              created=self.ago(10), due=self.ago(4))
        self.done(inventory, self.ago(5))

        # Boris (ceo@): the executive director.
        self.task("boris", "Prepare the planning round", created=self.ago(1),
                  due=self.today_at(15), priority="high",
                  steps=["Fund balances", "Requests of the divisions"])
        lease = self.task("anna", "Sign the new lease", "boris", created=self.ago(5),
                          due=self.ago(1), watchers=["fyodor"], link=projects["New office in Kazan"])
        self.comment("anna", lease, self.ago(2), "The landlord has sent the final version.")
        self.task("boris", "Call the bank about the credit line", created=self.ago(0, 3),
                  due=self.today_at(19), link=projects["New office in Kazan"])
        self.task("boris", "Weekly meeting with the division heads", created=self.ago(2),
                  due=self.ahead(1, 2))
        self.task("boris", "Think over the expansion plan", created=self.ago(15), priority="low")
        self.task("boris", "Statistics of the divisions for the month", "nikolai",
                  created=self.ago(2), due=self.ahead(3), watchers=["polina"])

        # Anna (admin@): the owner, who runs the CRM.
        self.task("boris", "Review the year's budget", "anna", created=self.ago(1),
                  due=self.today_at(17), priority="high")
        domain = self.task("boris", "Renew the company's domain name", "anna",
                           created=self.ago(10), due=self.ago(2))
        self.comment("boris", domain, self.ago(1), "The registrar wrote again today.")
        rollout = self.task("anna", "Set up CRM accounts for the new staff", created=self.ago(2),
                            due=self.ahead(2), steps=["Accounts", "Posts on the chart",
                                                      "First sign-in with each"],
                            link=projects["CRM roll-out"])
        self.remind("anna", rollout, self.ago(2), self.ahead(1, 6))
        self.task("anna", "Check the backups", created=self.ago(8))
        self.task("anna", "Train the division heads on programmes", "anna", created=self.ago(3),
                  due=self.today_at(20), link=projects["CRM roll-out"])

    def requests(self) -> None:
        """Work asked of other departments: waiting, accepted and declined."""
        self.task("olga", "Check Vector Ltd's payment history", post="Head of Income",
                  created=self.ago(0, 20), due=self.ahead(1))
        self.task("viktor", "Send the bank details of Granit Trade", post="Sales manager",
                  created=self.ago(0, 7), due=self.today_at(18))
        self.task("fyodor", "Approve the fund percentages for May", "boris",
                  created=self.ago(1), due=self.ahead(2), priority="high")
        declined = self.task("gleb", "Collect three client testimonials", post="Sales manager",
                             created=self.ago(6), due=self.ahead(5))
        self.at(self.ago(5), services.decide, self.p["svetlana"], declined.id,
                {"accept": False, "reason": "Not this month: the sales team is at the exhibition."})
        training = self.task("tatiana", "Fill in the training plan for the sales team",
                             post="Sales manager", created=self.ago(4), due=self.ahead(3))
        self.at(self.ago(3), services.decide, self.p["svetlana"], training.id,
                {"accept": True, "assignee_id": self.p["olga"].id})
        room = self.task("irina", "Book the meeting room for the client visit", "olga",
                         created=self.ago(2), due=self.ahead(2))
        self.at(self.ago(1, 20), services.decide, self.p["svetlana"], room.id, {"accept": True})

    def routine(self) -> None:
        """Everyday work from every head to the people directly below them, in every state."""
        chart = self.chart
        heads = sorted((p for p in chart.posts.values() if p.is_head and chart.own[p.id]),
                       key=lambda p: p.id)
        for head in heads:
            setter = chart.own[head.id][0].user
            team = {a.user_id: a.user for post in chart.direct_reports(head)
                    for a in chart.own[post.id] if a.user_id != setter.id}
            for user in sorted(team.values(), key=lambda u: u.id)[:3]:
                for _n in range(self.rng.choice((1, 1, 2))):
                    self._routine_task(setter, user)

    def _routine_task(self, setter: User, user: User) -> None:
        title, priority, with_steps = self.rng.choice(ROUTINE)
        created = self.ago(self.rng.uniform(1, 20))
        due = created + timedelta(hours=self.rng.choice((8, 24, 48, 96, 240))) \
            if self.rng.random() < 0.85 else None
        state = self.rng.choices(("open", "in_progress", "done", "cancelled"), (4, 3, 4, 1))[0]
        data = {"title": title, "priority": priority, "assignee": f"user:{user.id}",
                "steps": [{"title": s} for s in ROUTINE_STEPS] if with_steps else [],
                "due_at": due.isoformat() if due else None}
        try:
            with db.session.begin_nested():
                task = self.at(created, services.create_task, setter, data)
                later = min(created + timedelta(hours=self.rng.uniform(1, 30)), self.now)
                if state == "in_progress":
                    if with_steps:
                        self.steps_done(task, later, count=1)
                    else:
                        self.at(later, services.set_status, user, task.id, {"action": "start"})
                elif state == "done":
                    self.steps_done(task, later)
                    self.at(later, services.set_status, user, task.id, {"action": "done"})
                elif state == "cancelled":
                    self.at(later, services.set_status, setter, task.id, {"action": "cancel"})
        except DomainError:  # e.g. someone the chart no longer lets this head direct
            pass
