"""Import of 100,000 companies from an XLSX file (PostgreSQL): the CRM's import against a
bare baseline in the same run.

    DATABASE_URL=postgresql://postgres@127.0.0.1:5432/test .venv/bin/python -m bench.clients_import

(TEST_DATABASE_URL is used when DATABASE_URL is not set; without either, or on SQLite, the
benchmark says so and is skipped: it is about PostgreSQL.) Everything happens in a new
schema, with the shared schema where pg_trgm is behind it on the search path
(app.core.pgschema); it is dropped at the end (BENCH_KEEP=1 keeps it). BENCH_COMPANIES
changes the number of rows, BENCH_ROUNDS the number of timed rounds (the two ways
alternate who goes first; the best round of each is compared).

The file is written with openpyxl write_only: legal and short names in Cyrillic and Latin,
tax numbers, phones, e-mails, status, roles, industry, tags, two categories out of twelve,
website and address. Both ways start from the same bytes and an empty table with its indexes
(the trigram index included):

- bare: openpyxl read_only reads the rows, each becomes the dict of columns (lists split,
  search text lower-cased), and SQLAlchemy Core inserts them with executemany (psycopg's
  insertmanyvalues, RETURNING the ids), then the category links; one commit.
- CRM: app.clients.imports.import_file, what the import page does with the file: the
  safety checks of the upload, the headers mapped, every row read, validated with the
  CompanyIn schema and matched against the stored companies (one query), then written in
  bulk through the services and audited; one commit.

Then the CRM imports the same file again: nothing changes (it is checked and said so).
"""

from __future__ import annotations

import io
import os
import random
import sys
import tempfile
import time
import uuid
from pathlib import Path

import sqlalchemy as sa

from app.core import pgschema

ROOT = Path(__file__).resolve().parent.parent
COMPANIES = int(os.environ.get("BENCH_COMPANIES", "100000"))
ROUNDS = int(os.environ.get("BENCH_ROUNDS", "2"))

FORMS_RU = ["ООО", "АО", "ПАО", "ЗАО", "ИП"]
FORMS_EN = ["LLC", "Ltd", "GmbH", "Inc.", "PLC"]
STEMS_RU = ["Альфа", "Вектор", "Гранит", "Дельта", "Зенит", "Импульс", "Кристалл", "Лидер",
            "Меридиан", "Норд", "Омега", "Прогресс", "Ресурс", "Сигма", "Техно", "Фаворит",
            "Эталон", "Орион", "Атлант", "Северный", "Южный", "Волга", "Урал", "Сибирь",
            "Байкал", "Рассвет", "Спутник", "Восход", "Монолит", "Престиж"]
TAILS_RU = ["строй", "торг", "снаб", "пром", "трейд", "сервис", "лог", "маркет", "инвест",
            "групп", "тех", "мед", "агро", "энерго", "транс"]
STEMS_EN = ["Acme", "Global", "Nord", "Blue", "Silver", "Green", "Prime", "Apex", "Vertex",
            "Summit", "Pioneer", "Atlas", "Quantum", "Stellar", "Harbor"]
TAILS_EN = ["Trading", "Logistics", "Systems", "Foods", "Motors", "Software", "Partners",
            "Industries", "Supply", "Media"]
CATEGORIES = ["Опт", "Розница", "Дистрибьютор", "Производитель", "Госсектор", "HoReCa",
              "Retail", "Wholesale", "Export", "Key account", "Startup", "Маркетплейс"]
INDUSTRIES = ["Строительство", "Торговля", "Логистика", "IT", "Медицина", "Агро", "Energy",
              "Food", "Finance", "Manufacturing"]
CITIES = ["Москва", "Казань", "Самара", "Тверь", "Пермь", "Омск", "Томск", "Уфа", "Сочи",
          "Тула", "Ростов", "Воронеж", "Новосибирск", "Екатеринбург", "Челябинск"]
STREETS = ["Ленина", "Мира", "Садовая", "Победы", "Гагарина", "Lenina", "Tverskaya"]
HEADER = ["Наименование", "Краткое наименование", "ИНН", "Телефон", "E-mail", "Статус", "Роли",
          "Отрасль", "Теги", "Категории", "Сайт", "Адрес"]
TAGS = ["vip", "new", "north", "south", "b2b", "b2c", "tender", "partner-program"]
NAMED = [  # companies the search benchmark looks for
    ("ООО «Рога и копыта»", "Рога и копыта", "+7 900 1234567", "info@roga-kopyta.ru"),
    ("ООО «Рога и копыта Плюс»", "Рога и копыта+", "+7 900 1234500", "plus@roga-kopyta.ru"),
    ("АО «Копыта и рога»", "Копыта", "+7 901 7654321", "office@kopyta.ru"),
    ("Horns and Hooves Ltd", "Horns & Hooves", "+44 20 7946 0018", "hello@hornshooves.co.uk"),
]


def company(i: int, rnd: random.Random) -> tuple[str, ...]:
    """Row i of the file: the same for every run."""
    if i < len(NAMED):
        legal, short, phone, email = NAMED[i]
        stem = "roga"
    elif rnd.random() < 0.7:
        stem_ru = rnd.choice(STEMS_RU) + rnd.choice(TAILS_RU)
        short = f"{stem_ru} {i}" if rnd.random() < 0.5 else f"{stem_ru}-{rnd.choice(CITIES)} {i}"
        legal = f"{rnd.choice(FORMS_RU)} «{short}»"
        stem = f"c{i}"
        phone = f"+7 9{rnd.randint(0, 99):02d} {rnd.randint(0, 999):03d}-{rnd.randint(0, 99):02d}-" \
                f"{rnd.randint(0, 99):02d}"
        email = f"info{i}@{stem}.ru"
    else:
        short = f"{rnd.choice(STEMS_EN)} {rnd.choice(TAILS_EN)} {i}"
        legal = f"{short} {rnd.choice(FORMS_EN)}"
        stem = f"e{i}"
        phone = f"+44 20 {rnd.randint(1000, 9999)} {rnd.randint(1000, 9999)}"
        email = f"sales{i}@{stem}.com"
    tax = str(7700000000 + i * 37 % 2_000_000_000)
    status = rnd.choice(["active", "active", "prospect", "former"])
    roles = rnd.choice(["client", "client", "client, partner", "supplier"])
    tags = ", ".join(rnd.sample(TAGS, rnd.randint(0, 2)))
    categories = "; ".join(rnd.sample(CATEGORIES, 2))
    address = f"{rnd.choice(CITIES)}, ул. {rnd.choice(STREETS)}, д. {rnd.randint(1, 150)}"
    return (legal, short, tax, phone, email, status, roles, rnd.choice(INDUSTRIES), tags,
            categories, f"https://{stem}.example", address)


def workbook(n: int) -> bytes:
    import openpyxl

    rnd = random.Random(7)
    wb = openpyxl.Workbook(write_only=True)
    ws = wb.create_sheet("Companies")
    ws.append(HEADER)
    for i in range(n):
        ws.append(company(i, rnd))
    out = io.BytesIO()
    wb.save(out)
    return out.getvalue()


def skip(message: str) -> None:
    """Not on PostgreSQL: said, and skipped (make bench goes on with the others)."""
    print(f"bench.clients: skipped: {message}", file=sys.stderr)
    raise SystemExit(0)


def database_url() -> str:
    url = os.environ.get("DATABASE_URL") or os.environ.get("TEST_DATABASE_URL")
    if not url:
        skip("set DATABASE_URL (or TEST_DATABASE_URL) to a PostgreSQL database, e.g. "
             "DATABASE_URL=postgresql://postgres@127.0.0.1:5432/test")
    if not url.startswith(("postgresql://", "postgresql+psycopg://", "postgres://")):
        skip(f"it runs on PostgreSQL only, not on {url.split(':')[0]}")
    return url.replace("postgresql+psycopg://", "postgresql://", 1).replace(
        "postgres://", "postgresql://", 1)


class Schema:
    """A schema of its own for one run, migrated; the app and psycopg both use it first and
    the schema of the extensions (pg_trgm) after it."""

    def __init__(self, prefix: str):
        import psycopg

        self.url = database_url()
        sys.path.insert(0, str(ROOT))
        from app import create_app

        self.name = os.environ.get("BENCH_REUSE") or f"crm_bench_{prefix}_{uuid.uuid4().hex[:8]}"
        self.reused = bool(os.environ.get("BENCH_REUSE"))
        self.admin = psycopg.connect(self.url, autocommit=True)
        if not self.reused:
            with sa.create_engine(self.url.replace("postgresql://", "postgresql+psycopg://", 1)
                                  ).begin() as conn:
                pgschema.prepare(conn)
            self.admin.execute(f'CREATE SCHEMA "{self.name}"')
        self.options = f"-csearch_path={pgschema.search_path(self.name)}"
        self.app = create_app({
            "SQLALCHEMY_DATABASE_URI": self.url.replace("postgresql://", "postgresql+psycopg://", 1),
            "SECRET_KEY": "bench", "CRM_ENV": "production",
            "INSTANCE_DIR": Path(tempfile.mkdtemp(prefix="crm-bench-")),
            "SQLALCHEMY_ENGINE_OPTIONS": {"connect_args": {"options": self.options}},
        })
        if not self.reused:
            from flask_migrate import upgrade

            with self.app.app_context():
                upgrade()

    def connect(self):
        import psycopg

        return psycopg.connect(self.url, options=self.options)

    def close(self) -> None:
        from app.extensions import db

        with self.app.app_context():
            db.session.remove()
            db.engine.dispose()
        if os.environ.get("BENCH_KEEP") or self.reused:
            print(f"schema {self.name} kept")
        else:
            self.admin.execute(f'DROP SCHEMA "{self.name}" CASCADE')
        self.admin.close()


def actor(db):
    """The importer: an administrator, so every company is theirs to see."""
    from sqlalchemy import select

    from app.core.models import User

    user = db.session.scalar(select(User).where(User.email == "importer@bench.test"))
    if user is None:
        user = User(email="importer@bench.test", name="Importer", password_hash="-",  # noqa: S106
                    language="ru", timezone="UTC", is_admin=True)
        db.session.add(user)
        db.session.commit()
    return user


def empty(db) -> None:
    from sqlalchemy import text

    db.session.execute(text("TRUNCATE client_company_category, client_category, client_company "
                            "RESTART IDENTITY CASCADE"))
    db.session.commit()


def bare(db, content: bytes, user_id: int) -> tuple[int, dict[str, float]]:
    """openpyxl read_only and a Core executemany of the same rows: no checks, no matching."""
    import openpyxl
    from sqlalchemy import insert

    from app.clients.models import Category, Company, CompanyCategory
    from app.core.clock import utcnow

    start = time.perf_counter()
    now = utcnow()
    wb = openpyxl.load_workbook(io.BytesIO(content), read_only=True, data_only=True)
    rows, categories = [], []
    for values in wb.worksheets[0].iter_rows(min_row=2, values_only=True):
        (legal, short, tax, phone, email, status, roles, industry, tags, cats, website,
         address) = ("" if v is None else str(v) for v in values)
        rows.append({
            "legal_name": legal, "short_name": short, "tax_number": tax, "phones": [phone],
            "emails": [email], "status": status, "is_client": "client" in roles,
            "is_supplier": "supplier" in roles, "is_partner": "partner" in roles,
            "industry": industry, "tags": f",{tags.replace(', ', ',')}," if tags else "",
            "website": website, "addresses": [{"kind": "office", "text": address}], "notes": "",
            "next_step": "", "next_step_at": None, "responsible_id": user_id, "parent_id": None,
            "search_text": " ".join((legal.lower(), short.lower(), tax, phone, email.lower())),
            "created_at": now, "updated_at": now})
        categories.append(cats.split("; "))
    wb.close()
    read = time.perf_counter()
    table = Company.__table__
    names = sorted({c for cats in categories for c in cats})
    cat_table = Category.__table__
    cat_ids = dict(zip(names, db.session.scalars(
        insert(cat_table).returning(cat_table.c.id, sort_by_parameter_order=True),
        [{"name": n} for n in names]), strict=True))
    ids = db.session.scalars(insert(table).returning(table.c.id, sort_by_parameter_order=True),
                             rows).all()
    db.session.execute(insert(CompanyCategory.__table__),
                       [{"company_id": cid, "category_id": cat_ids[c]}
                        for cid, cats in zip(ids, categories, strict=True) for c in cats])
    db.session.commit()
    return len(ids), {"reading": read - start, "writing": time.perf_counter() - read}


def crm(db, content: bytes, user) -> tuple[dict, dict[str, float]]:
    from app.clients import imports

    marks = {}

    def progress(phase: str, done: int, total: int | None) -> None:
        if done == total:
            marks[phase] = time.perf_counter()

    start = time.perf_counter()
    plan, counts = imports.import_file(user, "companies", content, filename="companies.xlsx",
                                       progress=progress)
    db.session.commit()
    end = time.perf_counter()
    assert plan.ok, plan.error_rows[:3]
    return counts, {"reading": marks["reading"] - start,
                    "checking": marks["checking"] - marks["reading"],
                    "writing": end - marks["checking"]}


def main() -> None:
    from sqlalchemy import func, select

    schema = Schema("import")
    from app.clients.models import Company
    from app.extensions import db

    try:
        t0 = time.perf_counter()
        content = workbook(COMPANIES)
        print(f"{COMPANIES:,} companies written with openpyxl write_only: "
              f"{len(content) / 1e6:.1f} MB in {time.perf_counter() - t0:.1f} s")
        results = {"bare": [], "crm": []}
        with schema.app.app_context():
            user = actor(db)
            for n in range(ROUNDS):
                order = ("bare", "crm") if n % 2 == 0 else ("crm", "bare")
                for way in order:
                    empty(db)
                    start = time.perf_counter()
                    if way == "bare":
                        made, parts = bare(db, content, user.id)
                    else:
                        counts, parts = crm(db, content, user)
                        made = counts["created"]
                    seconds = time.perf_counter() - start
                    stored = db.session.scalar(select(func.count()).select_from(Company))
                    assert made == stored == COMPANIES, (way, made, stored)
                    results[way].append((seconds, parts))
                    print(f"  round {n + 1}: {way:4}: {seconds:6.1f} s ("
                          + ", ".join(f"{k} {v:.1f} s" for k, v in parts.items()) + ")", flush=True)
            start = time.perf_counter()
            counts, _reading = crm(db, content, user)
            again = time.perf_counter() - start
            assert counts == {"created": 0, "updated": 0, "unchanged": COMPANIES,
                              "duplicates": 0}, counts
        t_bare, p_bare = min(results["bare"], key=lambda r: r[0])
        t_crm, p_crm = min(results["crm"], key=lambda r: r[0])
        print(f"\ndatabase: postgresql; {COMPANIES:,} companies from one XLSX file "
              f"({len(content) / 1e6:.1f} MB, {len(HEADER)} columns); best of {ROUNDS} rounds")
        for label, t, parts in (("bare (openpyxl read_only + Core executemany)", t_bare, p_bare),
                                ("CRM import (checks, matching, bulk write)   ", t_crm, p_crm)):
            print(f"  {label}: {t:6.1f} s  {COMPANIES / t:8,.0f} rows/s   ("
                  + ", ".join(f"{k} {v:.1f} s" for k, v in parts.items()) + ")")
        print(f"  CRM speed ÷ bare speed = {t_bare / t_crm:.2f} (target ≥ 0.5); "
              f"CRM time ÷ bare time = {t_crm / t_bare:.2f}")
        print(f"  the same file imported again: {again:.1f} s, nothing changed "
              f"({COMPANIES:,} rows unchanged)")
    finally:
        schema.close()


if __name__ == "__main__":
    main()
