"""The demo company's chart: seven divisions, some forty people, a few holding two posts,
some posts vacant (held from above), capabilities on the usual posts."""

from __future__ import annotations

from sqlalchemy import select

from app.core.demo import demo_loader, ensure_user
from app.core.models import User
from app.extensions import db
from app.orgchart import chart as charts
from app.orgchart import services, template
from app.orgchart.models import Unit

COMPANY = "Demo Company"
# Posts left vacant on purpose, to show holding from above.
VACANT = {"Head of Publications", "Editor", "Correction officer", "Head of Correction",
          "Partnership manager", "Quality controller"}
# (post title, e-mail) for the people who already have demo accounts.
KEY_PEOPLE = {
    "Executive director": "ceo@demo.crm",
    "Owner": "admin@demo.crm",
    "Head of Sales": "sales@demo.crm",
    "Head of the Finance division": "finance@demo.crm",
    "Sales manager": "staff@demo.crm",
}
SECOND_POSTS = {  # one person, two posts
    "Head of Income": "finance@demo.crm",
    "Marketer": "sales@demo.crm",
    "Assistant": "staff@demo.crm",
}
FIRST = ["Alexei", "Maria", "Dmitry", "Elena", "Sergei", "Olga", "Ivan", "Natalia", "Pavel",
         "Tatiana", "Mikhail", "Irina", "Andrei", "Yulia", "Nikolai", "Ekaterina", "Roman",
         "Anastasia", "Viktor", "Ksenia", "Oleg", "Daria", "Artem", "Polina", "Kirill",
         "Vera", "Maxim", "Sofia", "Egor", "Alina", "Ilya", "Galina", "Denis", "Marina",
         "Stepan", "Larisa", "Gleb"]
LAST = ["Ivanov", "Smirnova", "Kuznetsov", "Popova", "Vasiliev", "Petrova", "Sokolov",
        "Mikhailova", "Novikov", "Fedorova", "Morozov", "Volkova", "Alekseev", "Lebedeva",
        "Semenov", "Egorova", "Pavlov", "Kozlova", "Stepanov", "Nikolaeva", "Orlov",
        "Andreeva", "Makarov", "Zakharova", "Zaitsev", "Solovieva", "Borisov", "Yakovleva",
        "Grigoriev", "Romanova", "Vorobiev", "Sergeeva", "Kuzmin", "Frolova", "Titov",
        "Belova", "Komarov"]
CAPABILITIES = [
    ("Executive director", {"name": "approve_expenses", "amount": 1_000_000, "currency": "RUB"}),
    ("Head of the Finance division", {"name": "approve_expenses", "amount": 200_000,
                                      "currency": "RUB"}),
    ("Head of the Finance division", {"name": "pay"}),
    ("Cashier", {"name": "pay"}),
    ("HR officer", {"name": "manage_chart"}),
    ("Head of Sales", {"name": "see_all_clients"}),
    ("Executive director", {"name": "broadcast"}),
]


@demo_loader(10, "organisation chart")
def load_chart() -> None:
    if db.session.scalar(select(Unit.id).where(Unit.name == COMPANY, Unit.kind == "company")):
        return
    admin = db.session.scalar(select(User).where(User.email == "admin@demo.crm"))
    template.apply(admin, {"company": COMPANY, "language": "en"})
    chart = charts.load()
    posts = sorted(chart.posts.values(), key=lambda p: p.id)
    by_title = {p.title: p for p in posts}
    emails = {**KEY_PEOPLE}
    names = iter(zip(FIRST, LAST, strict=True))
    for post in posts:
        if post.title in VACANT or post.title in emails:
            continue
        first, last = next(names, (None, None))
        if first is None:
            break
        emails[post.title] = f"{first}.{last}@demo.crm".lower()
        ensure_user(emails[post.title], f"{first} {last}")
    for title, email in [*emails.items(), *SECOND_POSTS.items()]:
        user = db.session.scalar(select(User).where(User.email == email))
        services.assign(admin, {"post_id": by_title[title].id, "user_id": user.id})
    for title, cap in CAPABILITIES:
        services.set_capability(admin, by_title[title].id, cap)
