"""The demo company's client base: some three hundred companies with Russian and English
names (clients, suppliers, partners; categories, tags, industries), one holding of four
companies (a parent, two subsidiaries and one under a subsidiary), contacts (some at two
companies, with birthdays and consent), eight weeks of calls, meetings, e-mails, notes,
complaints and refusals with their reasons, next steps (some overdue, some missing), leads
from every source including the public web form (new, overdue, contacted, converted,
rejected), two pipelines with their stages and deals across them (won with amounts, lost
with reasons), significant dates, greeting templates, and the lead settings pointing at the
sales manager's post.

The responsible managers are the demo chart's sales people. Everything goes through the
services at past times (the clock is moved), in the order it happened, so the rows, the audit
log and the notifications are what real use would leave. Loading twice changes nothing: the
loader stops when any company or pipeline exists.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from datetime import date, datetime, timedelta

from sqlalchemy import select

from app.clients import exports, imports, services
from app.clients.models import Company, Contact, ContactLink, Lead, Pipeline
from app.core import clock
from app.core.demo import demo_loader
from app.core.models import User
from app.extensions import db
from app.orgchart import chart as charts

ADMIN = "admin@demo.crm"
# Who keeps clients, by the post they hold on the demo chart, with how many clients each gets.
MANAGERS = [("Sales manager", 5), ("Head of Sales", 3), ("Marketer", 2),
            ("Client acquisition manager", 2), ("Head of the Dissemination division", 1)]
LEAD_POST = "Sales manager"  # new leads go to its holder; its head hears of overdue ones
SHARE_WITH = ["Invoicing officer", "PR manager", "Head of Income"]
WEEKS = 8

RU_A = ["Северный", "Южный", "Восточный", "Западный", "Новый", "Первый", "Сибирский",
        "Уральский", "Волжский", "Балтийский", "Центральный", "Столичный", "Донской",
        "Невский", "Приморский"]
RU_B = ["Альянс", "Вектор", "Гранд", "Дом", "Капитал", "Квадрат", "Мастер", "Партнёр",
        "Профиль", "Ресурс", "Сервис", "Стандарт", "Стиль", "Терминал", "Формат", "Контур"]
RU_FORMS = ["ООО", "ООО", "ООО", "АО", "ПАО"]
EN_A = ["Northwind", "Blue River", "Silver Oak", "Redwood", "Bright Star", "Green Valley",
        "Iron Bridge", "Summit", "Harbor", "Golden Gate", "Maple", "Atlas", "Cedar", "Falcon"]
EN_B = [("Trading", "Retail"), ("Logistics", "Logistics"), ("Construction", "Construction"),
        ("Foods", "Food"), ("Systems", "IT"), ("Clinic", "Healthcare"), ("Hotels", "Hospitality"),
        ("Windows", "Construction"), ("Energy", "Energy"), ("Motors", "Manufacturing"),
        ("Media", "Media"), ("Consulting", "Consulting")]
EN_FORMS = ["Ltd", "Inc", "LLC", "GmbH", "plc"]
INDUSTRIES = ["Construction", "Retail", "Manufacturing", "Logistics", "IT", "Healthcare",
              "Hospitality", "Agriculture", "Energy", "Education", "Real estate", "Food"]
CATEGORIES = ["Key accounts", "Small business", "Retail chains", "Public sector", "Dealers",
              "Дилеры"]
TAGS = ["vip", "windows", "doors", "installation", "service", "export", "tender", "рассрочка",
        "new"]
RU_MEN = [("Иван", "Петров"), ("Алексей", "Смирнов"), ("Дмитрий", "Кузнецов"),
          ("Сергей", "Попов"), ("Андрей", "Соколов"), ("Михаил", "Лебедев"),
          ("Николай", "Козлов"), ("Павел", "Новиков"), ("Виктор", "Морозов"),
          ("Олег", "Волков"), ("Артём", "Зайцев"), ("Максим", "Павлов"), ("Егор", "Семёнов"),
          ("Роман", "Голубев"), ("Денис", "Виноградов")]
RU_WOMEN = [("Анна", "Иванова"), ("Мария", "Смирнова"), ("Елена", "Кузнецова"),
            ("Ольга", "Попова"), ("Татьяна", "Васильева"), ("Наталья", "Петрова"),
            ("Ирина", "Соколова"), ("Светлана", "Михайлова"), ("Юлия", "Новикова"),
            ("Екатерина", "Фёдорова"), ("Дарья", "Морозова"), ("Ксения", "Волкова"),
            ("Полина", "Алексеева"), ("Вера", "Лебедева")]
EN_PEOPLE = [("John", "Smith"), ("Emma", "Johnson"), ("Oliver", "Brown"), ("Sophie", "Taylor"),
             ("James", "Wilson"), ("Lucy", "Davies"), ("Thomas", "Evans"), ("Grace", "Walker"),
             ("Daniel", "Wright"), ("Chloe", "Hughes"), ("Henry", "Clarke"), ("Isla", "Green"),
             ("Jack", "Hall"), ("Amelia", "Wood"), ("Lukas", "Becker"), ("Anna", "Schmidt")]
RU_POSITIONS = ["Генеральный директор", "Коммерческий директор", "Главный бухгалтер",
                "Менеджер по закупкам", "Главный инженер", "Руководитель проекта",
                "Офис-менеджер"]
EN_POSITIONS = ["Managing director", "Purchasing manager", "CFO", "Office manager",
                "Project engineer", "Head of operations"]
TRANSLIT = dict(zip("абвгдеёжзийклмнопрстуфхцчшщъыьэюя",
                    ["a", "b", "v", "g", "d", "e", "e", "zh", "z", "i", "y", "k", "l", "m", "n",
                     "o", "p", "r", "s", "t", "u", "f", "kh", "ts", "ch", "sh", "sch", "", "y", "",
                     "e", "yu", "ya"], strict=True))

REASONS = {
    "refusal": ["Too expensive", "Chose a competitor", "No budget this year", "Not the right time",
                "Дорого", "Нет потребности"],
    "lost": ["Lost to a competitor on price", "Project cancelled", "No answer from the client",
             "Terms not accepted", "Проиграли тендер"],
    "complaint": ["Late delivery", "Installation quality", "Invoice errors",
                  "Rude staff", "Задержка монтажа"],
}
SALES_STAGES = [("New", "open", 10), ("Qualified", "open", 25), ("Measurement", "open", 40),
                ("Offer sent", "open", 60), ("Negotiation", "open", 80), ("Won", "won", 100),
                ("Lost", "lost", 0)]
SERVICE_STAGES = [("Request", "open", 20), ("Proposal", "open", 50),
                  ("Contract signing", "open", 80), ("Signed", "won", 100),
                  ("Dropped", "lost", 0)]
DEAL_TITLES = {
    "sales": ["Windows for the new office", "Entrance doors", "Glazing of the warehouse",
              "Остекление балконов", "Окна для коттеджа", "Фасадное остекление",
              "Replacement of old windows", "Winter garden"],
    "service": ["Annual maintenance contract", "Сервисное обслуживание", "Seal replacement",
                "Regulation of fittings", "Гарантийный ремонт"],
}
SUBJECTS = {
    "call": ["Discussed the offer", "Обсудили сроки", "Follow-up call", "Уточнили замеры",
             "Asked about the budget"],
    "meeting": ["Meeting at the client's office", "Встреча на объекте", "Showroom visit",
                "Презентация продукции"],
    "email": ["Sent the price list", "Отправили КП", "Sent the contract draft",
              "Answered questions"],
    "note": ["The client is comparing three suppliers", "Решение после праздников",
             "The director decides alone"],
    "complaint": ["Complaint about the installation", "Жалоба на сроки", "Invoice dispute"],
    "refusal": ["The client refused", "Клиент отказался"],
}
NEXT_STEPS = ["Call back", "Send the offer", "Meet at the site", "Agree the contract",
              "Перезвонить", "Согласовать договор", "Отправить счёт"]
LEAD_MESSAGES = ["Need windows for a country house", "Прошу рассчитать остекление балкона",
                 "Please call me about a service contract", "Нужна замена окон в офисе",
                 "Interested in your doors", "Сколько стоит монтаж?"]


@demo_loader(40, "clients")
def load_clients() -> None:
    if db.session.scalar(select(Company.id).limit(1)) is not None or \
            db.session.scalar(select(Pipeline.id).limit(1)) is not None:
        return
    chart = charts.load()
    people = _people(chart)
    if people is None:  # the demo chart is not there: nobody to keep the clients
        return
    real_now = clock.utcnow()
    try:
        Demo(chart, people, real_now).load()
    finally:
        clock.release()


def _people(chart) -> dict | None:
    admin = db.session.scalar(select(User).where(User.email == ADMIN))
    posts = {p.title: p for p in chart.posts.values()}
    managers: list[User] = []
    weights: list[int] = []
    for title, weight in MANAGERS:
        holders = chart.holding(posts[title]).users if title in posts else ()
        if holders and holders[0].id not in {m.id for m in managers}:
            managers.append(holders[0])
            weights.append(weight)
    if admin is None or len(managers) < 2 or LEAD_POST not in posts:
        return None
    head = chart.holding(posts["Head of Sales"]).users[0] if "Head of Sales" in posts and \
        chart.holding(posts["Head of Sales"]).users else admin
    colleagues = [chart.holding(posts[t]).users[0] for t in SHARE_WITH
                  if t in posts and chart.holding(posts[t]).users]
    return {"admin": admin, "managers": managers, "weights": weights, "head": head,
            "seller": chart.holding(posts[LEAD_POST]).users[0], "lead_post": posts[LEAD_POST],
            "colleagues": colleagues}


def _slug(text: str) -> str:
    out = "".join(TRANSLIT.get(ch, ch) for ch in text.lower())
    return "-".join("".join(ch if ch.isalnum() and ch.isascii() else " " for ch in out).split())


class Demo:
    def __init__(self, chart, people: dict, now: datetime):
        self.chart, self.now = chart, now
        self.admin: User = people["admin"]
        self.managers: list[User] = people["managers"]
        self.weights: list[int] = people["weights"]
        self.head: User = people["head"]
        self.seller: User = people["seller"]
        self.lead_post = people["lead_post"]
        self.colleagues: list[User] = people["colleagues"]
        self.rng = random.Random(2026)
        self.events: list[tuple[datetime, int, Callable]] = []
        self.companies: list[dict] = []  # {"row", "lang", "domain", "contacts": [Contact]}
        self.reasons: dict[str, list[int]] = {}
        self.pipelines: dict[str, Pipeline] = {}
        self.used_names: set[str] = set()
        self.used_numbers: set[str] = set()

    # --- time -----------------------------------------------------------------------------

    def ago(self, days: float = 0, hours: float = 0) -> datetime:
        return self.now - timedelta(days=days, hours=hours)

    def work_time(self, day_ago: float) -> datetime:
        """A moment in Moscow working hours (06:00 to 15:00 UTC) about `day_ago` days ago."""
        day = (self.now - timedelta(days=day_ago)).replace(hour=6, minute=0, second=0,
                                                           microsecond=0)
        return min(day + timedelta(minutes=self.rng.randrange(9 * 60)),
                   self.now - timedelta(minutes=30))

    def at(self, when: datetime, fn: Callable, *args, **kwargs):
        clock.freeze(min(when, self.now))
        return fn(*args, **kwargs)

    def later(self, when: datetime, fn: Callable) -> None:
        """Something that happens at `when`, run with the rest in the order of time."""
        self.events.append((min(when, self.now), len(self.events), fn))

    def run_events(self) -> None:
        for when, _seq, fn in sorted(self.events, key=lambda e: (e[0], e[1])):
            clock.freeze(when)
            fn()
        self.events.clear()

    # --- the whole demo -------------------------------------------------------------------

    def load(self) -> None:
        self.setup()
        self.holding()
        self.base()
        self.deals()
        self.history()
        self.leads()
        self.run_events()
        clock.freeze(self.now)
        self.dates()
        self.overdue_leads()

    def setup(self) -> None:
        admin, start = self.admin, self.ago(7 * 13)
        self.at(start, services.set_settings, admin, {"lead_minutes": 15,
                                                       "lead_post_id": self.lead_post.id})
        for kind, names in REASONS.items():
            self.reasons[kind] = [self.at(start, services.add_reason, admin,
                                          {"kind": kind, "name": n}).id for n in names]
        for key, name, stages in (("sales", "Sales: windows and doors", SALES_STAGES),
                                  ("service", "Service contracts", SERVICE_STAGES)):
            self.pipelines[key] = self.at(start, services.save_pipeline, admin, {
                "name": name, "stages": [{"name": n, "kind": k, "probability": p}
                                         for n, k, p in stages]})
        self.form, _key = self.at(start, services.create_web_form, admin, "Website: request a call")
        self.at(start, services.save_greeting_template, admin, {
            "name": "Birthday (English)", "subject": "Happy birthday, {name}!",
            "body": "Dear {name},\n\nall of us wish you a happy birthday, good health and "
                    "success. Thank you and {company} for working with us.\n\nBest regards,\n"
                    "{sender}"})
        self.at(start, services.save_greeting_template, admin, {
            "name": "День рождения", "subject": "{name}, с днём рождения!",
            "body": "Уважаемый(ая) {name}!\n\nПоздравляем вас с днём рождения! Спасибо вам и "
                    "компании {company} за сотрудничество.\n\nС уважением,\n{sender}"})
        self.at(start, services.save_greeting_template, admin, {
            "name": "Company anniversary", "subject": "Congratulations, {company}!",
            "body": "Dear {name},\n\ncongratulations to {company} on its anniversary!\n\n{sender}"})

    # --- companies and contacts -----------------------------------------------------------

    def manager(self) -> User:
        return self.rng.choices(self.managers, weights=self.weights)[0]

    def tax_number(self, lang: str) -> str | None:
        if lang == "en":
            if self.rng.random() < 0.4:
                return None
            number = "GB" + "".join(self.rng.choice("0123456789") for _ in range(9))
        else:
            number = str(self.rng.randrange(10**9, 10**10))
        if number in self.used_numbers:
            return self.tax_number(lang)
        self.used_numbers.add(number)
        return number

    def phone(self, lang: str) -> str:
        n = self.rng.randrange(10**6, 10**7)
        if lang == "en":
            return f"+44 20 {n // 10000:03d} {n % 10000:04d}"
        code = self.rng.choice(("495", "499", "812", "343", "383"))
        return f"+7 ({code}) {n // 10000:03d}-{n // 100 % 100:02d}-{n % 100:02d}"

    def name(self, lang: str) -> tuple[str, str, str, str]:
        """(legal name, short name, industry, domain) not used before."""
        while True:
            if lang == "en":
                a, (b, industry) = self.rng.choice(EN_A), self.rng.choice(EN_B)
                short = f"{a} {b}"
                legal = f"{short} {self.rng.choice(EN_FORMS)}"
            else:
                a, b = self.rng.choice(RU_A), self.rng.choice(RU_B)
                short = f"{a} {b}"
                legal = f"{self.rng.choice(RU_FORMS)} «{short}»"
                industry = self.rng.choice(INDUSTRIES)
            if short not in self.used_names:
                self.used_names.add(short)
                tld = ".com" if lang == "en" else ".ru"
                return legal, short, industry, _slug(short) + tld

    def company_data(self, lang: str, created: datetime, **extra) -> dict:
        legal, short, industry, domain = self.name(lang)
        roll = self.rng.random()
        roles = {"is_client": roll < 0.84, "is_supplier": 0.78 < roll < 0.92,
                 "is_partner": roll >= 0.92 or 0.72 < roll < 0.78}
        status = self.rng.choices(("active", "prospect", "former"), (55, 35, 10))[0]
        data = {"legal_name": legal, "short_name": short, "tax_number": self.tax_number(lang),
                **roles, "industry": industry, "status": status,
                "categories": self.rng.sample(CATEGORIES, self.rng.choice((0, 1, 1, 1, 2))),
                "tags": self.rng.sample(TAGS, self.rng.choice((0, 0, 1, 1, 2, 3))),
                "phones": [self.phone(lang)], "emails": [f"info@{domain}"],
                "website": f"https://{domain}",
                "addresses": [{"kind": "office", "text": self.rng.choice((
                    "Москва, ул. Тверская, 12", "Санкт-Петербург, Невский пр., 48",
                    "Екатеринбург, ул. Ленина, 5", "Новосибирск, Красный пр., 20"))
                    if lang == "ru" else self.rng.choice((
                        "221B Baker Street, London", "10 Market Square, Manchester",
                        "Friedrichstraße 45, Berlin"))}]}
        if status != "former" and self.rng.random() < 0.8:  # the rest have none
            data["next_step"] = self.rng.choice(NEXT_STEPS)
            data["next_step_at"] = (created + timedelta(days=self.rng.randrange(20, 90))).isoformat()
        data.update(extra)
        return data

    def add_company(self, actor: User, lang: str, created: datetime, **extra) -> dict:
        data = self.company_data(lang, created, **extra)
        row = self.at(created, services.create_company, actor, data)
        entry = {"row": row, "lang": lang, "domain": data["emails"][0].split("@")[1],
                 "contacts": [], "created": created}
        self.companies.append(entry)
        return entry

    def person(self, lang: str) -> tuple[str, str]:
        if lang == "en":
            first, last = self.rng.choice(EN_PEOPLE)
            return f"{first} {last}", f"{first[0]}.{last}".lower()
        first, last = self.rng.choice(RU_MEN + RU_WOMEN)
        return f"{first} {last}", _slug(f"{first[0]}.{last}").replace("-", ".")

    def contact_data(self, lang: str, domain: str) -> dict:
        name, login = self.person(lang)
        data = {"name": name, "phones": [self.phone(lang)], "emails": [f"{login}@{domain}"],
                "consent": self.rng.random() < 0.65,
                "position": self.rng.choice(EN_POSITIONS if lang == "en" else RU_POSITIONS)}
        if self.rng.random() < 0.5:
            data["birthday"] = date(self.rng.randrange(1960, 2000), self.rng.randrange(1, 13),
                                    self.rng.randrange(1, 29)).isoformat()
        if self.rng.random() < 0.2:
            data["messengers"] = [{"kind": "Telegram", "handle": "@" + login.replace(".", "_")}]
        return data

    def add_contact(self, actor: User, entries: list[dict], when: datetime) -> Contact:
        data = self.contact_data(entries[0]["lang"], entries[0]["domain"])
        position = data.pop("position")
        data["companies"] = [{"company_id": e["row"].id, "position": position} for e in entries]
        contact = self.at(when, services.create_contact, actor, data)
        for e in entries:
            e["contacts"].append(contact)
        return contact

    def holding(self) -> None:
        """A group of four: the parent, two subsidiaries, one company under a subsidiary."""
        head, managers = self.head, self.managers
        when = self.work_time(7 * 12)
        parent = self.add_company(head, "ru", when, legal_name="АО «Гранит Групп»",
                                  short_name="Гранит Групп", status="active",
                                  industry="Construction", categories=["Key accounts"],
                                  tags=["vip"], is_client=True, is_supplier=False,
                                  is_partner=False, website="https://granit-group.ru",
                                  emails=["office@granit-group.ru"])
        children = []
        for name, industry, parent_entry, who in (
                ("Гранит Трейд", "Retail", parent, managers[0]),
                ("Гранит Логистика", "Logistics", parent, managers[0]),
                ("Гранит Логистика Север", "Logistics", None, managers[-1])):
            above = parent_entry or children[1]
            entry = self.add_company(head, "ru", when + timedelta(minutes=5 * (len(children) + 1)),
                                     legal_name=f"ООО «{name}»", short_name=name,
                                     status="active", industry=industry,
                                     categories=["Key accounts"], is_client=True,
                                     is_supplier=False, is_partner=False,
                                     parent_id=above["row"].id, responsible_id=who.id,
                                     emails=[f"info@{_slug(name)}.ru"])
            children.append(entry)
        self.holding_ids = [parent["row"].id] + [c["row"].id for c in children]
        # The group's director sits at the parent and at the first subsidiary.
        self.add_contact(head, [parent, children[0]], when + timedelta(minutes=30))
        for entry in [parent, *children]:
            self.add_contact(head, [entry], when + timedelta(minutes=40))

    def base(self) -> None:
        """The companies the company worked with before: its old client base, imported from
        a spreadsheet (companies, then their contacts, some at two companies) through the
        import the users have; then a few new companies since, typed in by hand."""
        when = self.ago(7 * (WEEKS + 1))
        importer = self.head
        emails = {u.id: u.email for u in self.managers}
        companies, contacts = [], []
        plans = ["ru"] * 205 + ["en"] * 75
        self.rng.shuffle(plans)
        for lang in plans:
            who = self.manager()
            data = self.company_data(lang, when)
            roles = [r for r, key in (("client", "is_client"), ("supplier", "is_supplier"),
                                      ("partner", "is_partner")) if data[key]]
            ref = data["tax_number"] or data["legal_name"]
            companies.append([data["legal_name"], data["short_name"], data["tax_number"] or "",
                              "; ".join(roles), data["status"], "; ".join(data["categories"]),
                              ", ".join(data["tags"]), data["industry"],
                              data["addresses"][0]["text"], "; ".join(data["phones"]),
                              "; ".join(data["emails"]), data["website"], emails[who.id], "",
                              ""])
            domain = data["emails"][0].split("@")[1]
            for _i in range(self.rng.choice((1, 1, 2, 2, 3))):
                person = self.contact_data(lang, domain)
                contacts.append([person["name"], ref, person["position"],
                                 "; ".join(person["phones"]), "; ".join(person["emails"]),
                                 "; ".join(f"{m['kind']}: {m['handle']}"
                                           for m in person.get("messengers", [])),
                                 person.get("birthday", ""), "yes" if person["consent"] else "no",
                                 ""])
        # a dozen people also at a second company (a consultant, a director of two firms)
        for n in range(12):
            first = contacts[n * 17]
            other = companies[n * 17 + 5]
            contacts.append([first[0], other[2] or other[0], "Consultant", *first[3:]])
        self.at(when, imports.import_file, importer, "companies",
                exports.to_csv(iter([exports.headers("companies"), *companies])),
                filename="old-client-base.csv")
        self.at(when + timedelta(minutes=10), imports.import_file, importer, "contacts",
                exports.to_csv(iter([exports.headers("contacts"), *contacts])),
                filename="old-client-contacts.csv")
        names = {row[0] for row in companies}
        by_id: dict[int, dict] = {}
        for company in db.session.scalars(select(Company).where(Company.legal_name.in_(names))
                                          .order_by(Company.id)):
            lang = "ru" if company.website.endswith(".ru") else "en"
            entry = {"row": company, "lang": lang, "domain": company.website.split("//")[-1],
                     "contacts": [], "created": when}
            self.companies.append(entry)
            by_id[company.id] = entry
        for link in db.session.scalars(select(ContactLink).where(
                ContactLink.company_id.in_(list(by_id))).order_by(ContactLink.contact_id)):
            by_id[link.company_id]["contacts"].append(link.contact)
        # the managers plan the next step with a good part of the active clients
        active = [e for e in self.companies if e["row"].status == "active"
                  and e["row"].id not in set(self.holding_ids)]
        for entry in self.rng.sample(active, len(active) * 2 // 5):
            company = entry["row"]
            self.at(when + timedelta(days=1), services.update_company,
                    db.session.get(User, company.responsible_id), company.id, {
                        "next_step": self.rng.choice(NEXT_STEPS),
                        "next_step_at": (self.now + timedelta(
                            days=self.rng.uniform(-15, 45))).isoformat()})
        # new companies since, one by one
        for when in sorted(self.work_time(self.rng.uniform(3, 7 * WEEKS - 1)) for _ in range(15)):
            who = self.manager()
            entry = self.add_company(who, self.rng.choice(("ru", "ru", "en")), when)
            for i in range(self.rng.choice((1, 2))):
                self.add_contact(who, [entry], when + timedelta(minutes=10 + i))
        # a few clients shared with colleagues beyond the chart's reach
        for entry in self.rng.sample(self.companies[4:], 6) if self.colleagues else []:
            who = db.session.get(User, entry["row"].responsible_id)
            self.at(max(entry["created"], when) + timedelta(days=1), services.share, who,
                    entry["row"].id, {"user_ids": [self.rng.choice(self.colleagues).id]})

    # --- deals ----------------------------------------------------------------------------

    def amount(self, entry: dict, pipeline: str) -> tuple[str, str]:
        if entry["lang"] == "en":
            low, high = (2, 80) if pipeline == "sales" else (1, 12)
            return str(self.rng.randrange(low, high) * 1000 + self.rng.choice((0, 500))), \
                self.rng.choice(("EUR", "USD", "EUR"))
        low, high = (60, 3000) if pipeline == "sales" else (20, 400)
        return str(self.rng.randrange(low, high) * 1000), "RUB"

    def deals(self) -> None:
        clients = [e for e in self.companies if e["row"].is_client and e["row"].status != "former"]
        picked = self.rng.sample(clients, min(len(clients), 170))
        holding = [e for e in self.companies if e["row"].id in set(self.holding_ids)]
        for entry in holding + picked:
            for _ in range(self.rng.choice((1, 1, 1, 2))):
                self.plan_deal(entry)

    def plan_deal(self, entry: dict) -> None:
        rng = self.rng
        key = "sales" if rng.random() < 0.65 else "service"
        pipeline = self.pipelines[key]
        stages = [s for s in pipeline.stages if s.kind == "open"]
        won = next(s for s in pipeline.stages if s.kind == "won")
        lost = next(s for s in pipeline.stages if s.kind == "lost")
        created = max(self.work_time(rng.uniform(2, 7 * WEEKS - 2)),
                      entry["created"] + timedelta(days=1))
        fate = rng.choices(("won", "lost", "refused", "open"), (32, 16, 6, 46))[0]
        amount, currency = self.amount(entry, key)
        company = entry["row"]
        who_id = company.responsible_id
        deal_ref: dict = {}

        def create():
            who = db.session.get(User, who_id)
            contact = entry["contacts"][0].id if entry["contacts"] else None
            data = {"title": rng.choice(DEAL_TITLES[key]), "company_id": company.id,
                    "contact_id": contact, "pipeline_id": pipeline.id, "amount": amount,
                    "currency": currency,
                    "expected_close": (created + timedelta(days=rng.randrange(14, 60))).date()
                    .isoformat()}
            if rng.random() < 0.85:
                data["next_step"] = rng.choice(NEXT_STEPS)
                data["next_step_at"] = (created + timedelta(days=rng.randrange(2, 8))).isoformat()
            deal_ref["deal"] = services.create_deal(who, data)

        self.later(created, create)
        t = created
        furthest = rng.randrange(1, len(stages) + 1) if fate != "won" else len(stages)
        for stage in stages[1:furthest]:
            if fate == "won" and rng.random() < 0.2:
                continue  # a step skipped
            t += timedelta(days=rng.uniform(1.5, 6))
            if t >= self.now - timedelta(hours=2):
                return
            self.later(t, self._move(deal_ref, who_id, stage.id))
            if rng.random() < 0.25:
                self.later(t + timedelta(minutes=20), self._deal_contact(entry, deal_ref, who_id))
        t += timedelta(days=rng.uniform(1.5, 8))
        if fate == "open" or t >= self.now - timedelta(hours=2):
            if rng.random() < 0.75:  # the rest keep whatever step they had, overdue or none
                self.later(min(t, self.now - timedelta(hours=3)),
                           self._deal_contact(entry, deal_ref, who_id, ahead=True))
            return
        if fate == "won":
            self.later(t, self._move(deal_ref, who_id, won.id))
        elif fate == "lost":
            reason = rng.choice(self.reasons["lost"])
            self.later(t, self._move(deal_ref, who_id, lost.id, reason,
                                     rng.choice(("", "They went with the cheapest offer.",
                                                 "Проект заморожен до весны."))))
        else:  # the client refuses on a call: the deal is lost with the refusal's reason
            self.later(t, self._refuse(entry, deal_ref, who_id))

    def _move(self, ref: dict, who_id: int, stage_id: int, reason_id: int | None = None,
              note: str = "") -> Callable:
        def move():
            services.move_deal(db.session.get(User, who_id), ref["deal"].id,
                               {"stage_id": stage_id, "reason_id": reason_id, "note": note})
        return move

    def _deal_contact(self, entry: dict, ref: dict, who_id: int, ahead: bool = False) -> Callable:
        """A call or meeting on the deal that moves its next step on (sometimes into what is
        now the past: overdue)."""
        rng = self.rng
        kind = rng.choice(("call", "call", "meeting", "email"))
        days = rng.uniform(1, 12) if ahead else rng.uniform(1, 5)
        step, reason = rng.choice(NEXT_STEPS), None

        def contact():
            deal = ref["deal"]
            if deal.status != "open":
                return
            data = {"company_id": entry["row"].id, "deal_id": deal.id, "kind": kind,
                    "subject": rng.choice(SUBJECTS[kind]), "outcome": "advance",
                    "next_step": step, "reason_id": reason,
                    "next_step_at": (clock.utcnow() + timedelta(days=days)).isoformat(),
                    "contact_id": entry["contacts"][0].id if entry["contacts"] else None}
            services.log_interaction(db.session.get(User, who_id), data)
        return contact

    def _refuse(self, entry: dict, ref: dict, who_id: int) -> Callable:
        reason = self.rng.choice(self.reasons["refusal"])

        def refuse():
            deal = ref["deal"]
            if deal.status != "open":
                return
            services.log_interaction(db.session.get(User, who_id), {
                "company_id": entry["row"].id, "deal_id": deal.id, "kind": "call",
                "subject": self.rng.choice(SUBJECTS["refusal"]), "outcome": "refuse",
                "reason_id": reason})
        return refuse

    # --- the history of the last eight weeks ----------------------------------------------

    def history(self) -> None:
        rng = self.rng
        kinds = ("call", "meeting", "email", "note", "complaint", "refusal")
        for entry in self.companies:
            company = entry["row"]
            if company.status == "former" and rng.random() < 0.7:
                continue
            count = rng.choice((0, 1, 1, 2, 2, 3, 4)) if company.is_client else rng.choice((0, 1))
            times = sorted(self.work_time(rng.uniform(0.1, 7 * WEEKS - 1)) for _ in range(count))
            for when in times:
                if when <= entry["created"]:
                    continue
                kind = rng.choices(kinds, (40, 14, 18, 10, 10, 8))[0]
                self.later(when, self._contact(entry, kind))

    def _contact(self, entry: dict, kind: str) -> Callable:
        rng = self.rng
        company = entry["row"]
        outcome = None
        if kind in ("call", "meeting", "email"):
            outcome = rng.choices((None, "advance", "postpone"), (35, 45, 20))[0]
        elif kind == "refusal":
            outcome = "refuse" if rng.random() < 0.3 else None
        reason = None
        if kind == "complaint" and rng.random() < 0.85:
            reason = rng.choice(self.reasons["complaint"])
        elif kind == "refusal":
            reason = rng.choice(self.reasons["refusal"])
        days = rng.uniform(2, 21)
        subject, step = rng.choice(SUBJECTS[kind]), rng.choice(NEXT_STEPS)
        body = rng.choice(("", "", "Подробности в письме.", "Details in the shared folder.",
                           "The client asked for a discount of 5%."))
        author = None if rng.random() < 0.85 else rng.choice(self.managers)

        def contact():
            who = author if author is not None and services.can_edit(author, company) else \
                db.session.get(User, company.responsible_id)
            data = {"company_id": company.id, "kind": kind, "subject": subject, "body": body,
                    "outcome": outcome, "reason_id": reason,
                    "contact_id": entry["contacts"][0].id if entry["contacts"] else None}
            if outcome == "advance":
                data.update(next_step=step,
                            next_step_at=(clock.utcnow() + timedelta(days=days)).isoformat())
            elif outcome == "postpone":
                data["next_step_at"] = (clock.utcnow() + timedelta(days=days)).isoformat()
            if outcome == "refuse" and company.status == "former":
                return
            services.log_interaction(who, data)
        return contact

    # --- leads ----------------------------------------------------------------------------

    def leads(self) -> None:
        rng = self.rng
        plan = (["converted"] * 12 + ["rejected"] * 6 + ["contacted"] * 10 + ["overdue"] * 7
                + ["fresh"] * 2)
        sources = ["web"] * 14 + ["form"] * 9 + ["call"] * 8 + ["referral"] * 6
        rng.shuffle(sources)
        existing = [e for e in self.companies if e["contacts"]]
        for i, (fate, source) in enumerate(zip(plan, sources, strict=True)):
            if fate == "fresh":
                when = self.now - timedelta(minutes=3 + 4 * i % 10)
            elif fate == "overdue":
                when = self.work_time(rng.uniform(0.05, 4))
            else:
                when = self.work_time(rng.uniform(0.5, 7 * WEEKS - 1))
            lang = rng.choice(("ru", "ru", "en"))
            name, login = self.person(lang)
            data = {"source": source, "name": name, "message": rng.choice(LEAD_MESSAGES),
                    "phone": self.phone(lang)}
            if rng.random() < 0.6:
                data["email"] = f"{login}{i}@{rng.choice(('mail.ru', 'gmail.com', 'yandex.ru'))}"
            if rng.random() < 0.5:
                legal, _short, _industry, _domain = self.name(lang)
                data["company_name"] = legal
            duplicate = None
            if fate == "converted" and i % 4 == 0 and existing:
                # someone from a client we know writes again: the lead joins that client
                duplicate = rng.choice(existing)
                known = duplicate["contacts"][0]
                data.update(name=known.name, email=known.emails[0] if known.emails else "",
                            company_name=duplicate["row"].legal_name)
            self.later(when, self._lead(data, fate, duplicate, when))

    def _lead(self, data: dict, fate: str, duplicate: dict | None, when: datetime) -> Callable:
        rng = self.rng
        delay = timedelta(minutes=rng.choice((4, 7, 11, 14, 25, 60)))

        def lead():
            form = self.form if data["source"] == "web" else None
            actor = None if form is not None else self.seller
            row = services.create_lead(actor, {k: v for k, v in data.items() if k != "source"}
                                       | ({} if form else {"source": data["source"]}), form=form)
            if fate in ("overdue", "fresh"):
                return
            clock.freeze(min(when + delay, self.now))
            if fate == "rejected":
                services.reject_lead(self.seller, row.id, rng.choice((
                    "Spam", "Не наш регион", "Wanted a product we do not sell",
                    "Duplicate of a call")))
                return
            services.mark_contacted(self.seller, row.id)
            if fate == "converted":
                clock.freeze(min(when + delay + timedelta(hours=rng.uniform(1, 30)),
                                 self.now - timedelta(minutes=5)))
                company_id = duplicate["row"].id if duplicate else None
                contact_id = duplicate["contacts"][0].id if duplicate else None
                # a client of another manager: the head of sales, who sees every client
                seller = self.seller if duplicate is None or services.can_edit(
                    self.seller, duplicate["row"]) else self.head
                services.convert_lead(seller, row.id, {
                    "company_id": company_id, "contact_id": contact_id,
                    "deal_title": row.message[:80], "pipeline_id": self.pipelines["sales"].id,
                    "amount": str(rng.randrange(60, 900) * 1000), "currency": "RUB"})
        return lead

    def overdue_leads(self) -> None:
        """The escalation job's work for the leads nobody called in time."""
        for lead in db.session.scalars(select(Lead).where(
                Lead.status == "new", Lead.escalated_at.is_(None),
                Lead.contact_due_at <= self.now).order_by(Lead.id)):
            services.escalate_lead(lead, self.now)

    # --- significant dates ----------------------------------------------------------------

    def dates(self) -> None:
        rng = self.rng
        today = self.now.date()
        contacts = db.session.scalars(select(Contact).where(
            Contact.birthday.is_not(None), Contact.consent.is_(True))
            .order_by(Contact.id).limit(70)).all()
        keepers = self.keepers(contacts)
        for n, contact in enumerate(contacts):
            who = keepers.get(contact.id)
            if who is None:
                continue
            birthday = contact.birthday
            if n < 6:  # a few birthdays in the coming days, for the reminder to find
                soon = today + timedelta(days=n * 2 + 1)
                birthday = birthday.replace(month=soon.month, day=min(soon.day, 28))
                services.update_contact(who, contact.id, {"birthday": birthday.isoformat()})
            services.add_date(who, {"contact_id": contact.id, "kind": "birthday",
                                    "on": birthday.isoformat(), "remind_days": 3})
        entries = [e for e in self.companies if e["row"].status == "active"]
        for entry in rng.sample(entries, min(25, len(entries))):
            company = entry["row"]
            who = db.session.get(User, company.responsible_id)
            founded = date(rng.randrange(1992, 2020), rng.randrange(1, 13), rng.randrange(1, 29))
            services.add_date(who, {"company_id": company.id, "kind": "founding",
                                    "on": founded.isoformat(), "remind_days": 7,
                                    "title": "Founding day"})
        for entry in rng.sample(entries, min(15, len(entries))):
            company = entry["row"]
            who = db.session.get(User, company.responsible_id)
            ends = today + timedelta(days=rng.randrange(2, 120))
            services.add_date(who, {"company_id": company.id, "kind": "contract_end",
                                    "on": ends.isoformat(), "yearly": False, "remind_days": 14,
                                    "title": rng.choice(("Service contract",
                                                         "Договор поставки",
                                                         "Framework agreement"))})

    def keepers(self, contacts: list[Contact]) -> dict[int, User]:
        """Who may write a contact's date: the manager of their first company, or who added
        them."""
        users = {u.id: u for u in db.session.scalars(select(User))}
        first: dict[int, int | None] = {}
        for contact_id, responsible_id in db.session.execute(
                select(ContactLink.contact_id, Company.responsible_id)
                .join(Company, Company.id == ContactLink.company_id)
                .order_by(ContactLink.contact_id, Company.id)):
            first.setdefault(contact_id, responsible_id)
        out = {}
        for contact in contacts:
            uid = first.get(contact.id, contact.created_by_id)
            if uid in users:
                out[contact.id] = users[uid]
        return out
