"""Mail search on 1,000,000 messages (PostgreSQL): p50/p95 of the app's search_query against
the bare SQL of the same query sent through psycopg, in the same run, for a person with
200,000 mailbox rows and 50 different queries; then the plan of one query.

    DATABASE_URL=postgresql://postgres@127.0.0.1:5432/test .venv/bin/python -m bench.mail_search

(TEST_DATABASE_URL is used when DATABASE_URL is not set.) Everything happens in a new
schema that is dropped at the end (BENCH_KEEP=1 keeps it). BENCH_MESSAGES changes the
number of messages (the heavy mailbox stays a fifth of them), BENCH_ROUNDS the number of
timed passes over the 50 queries, BENCH_REUSE=<schema> measures a kept schema again without
generating it. SQLite is refused: the figure is about PostgreSQL's full-text index.

Generating 1,000,000 messages takes under a minute on two cores and the GIN index under
two; the timed part (600 searches, half of them with a count) a further ten minutes or so.
"""

from __future__ import annotations

import os
import random
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

import sqlalchemy as sa

from app.core import pgschema

ROOT = Path(__file__).resolve().parent.parent
MESSAGES = int(os.environ.get("BENCH_MESSAGES", "1000000"))
ROUNDS = int(os.environ.get("BENCH_ROUNDS", "2"))
PEOPLE = 100  # person 1 is the heavy mailbox
PAGE = 25

RUSSIAN = [
    "счёт", "счета", "счетов", "счету", "договор", "договора", "договоров", "оплата", "оплаты",
    "оплату", "поставка", "поставки", "поставок", "клиент", "клиента", "клиентов", "сделка", "сделки",
    "сделок", "отчёт", "отчёта", "отчётов", "задача", "задачи", "задач", "встреча", "встречи", "встреч",
    "проект", "проекта", "проектов", "бюджет", "бюджета", "расход", "расходы", "расходов", "доход",
    "доходы", "платёж", "платежи", "платежей", "заказ", "заказа", "заказов", "склад", "склада", "товар",
    "товары", "товаров", "цена", "цены", "цен", "скидка", "скидки", "срок", "сроки", "сроков", "акт",
    "акты", "актов", "сверка", "сверки", "накладная", "накладные", "претензия", "претензии", "компания",
    "компании", "компаний", "директор", "директора", "бухгалтерия", "бухгалтерии", "отдел", "отдела",
    "продажи", "продаж", "план", "плана", "планов", "неделя", "недели", "месяц", "месяца", "квартал",
    "квартала", "срочно", "срочный", "важный", "новый", "новые", "согласовать", "согласование",
    "согласования", "подписать", "подписан", "подписания", "отправить", "отправлен", "получить",
    "получен", "проверить", "проверка", "проверки", "утвердить", "утверждение", "исправить",
    "исправление", "перенести", "перенос", "звонок", "звонка", "письмо", "письма", "писем", "вопрос",
    "вопросы", "вопросов", "ответ", "ответа", "ответы", "запрос", "запроса", "запросов", "документ",
    "документы", "документов", "файл", "файлы", "таблица", "таблицы", "презентация", "презентации",
    "обучение", "обучения", "сотрудник", "сотрудники", "сотрудников", "зарплата", "зарплаты", "премия",
    "премии", "отпуск", "отпуска", "командировка", "командировки", "офис", "офиса", "ремонт", "ремонта",
    "оборудование", "оборудования", "счётчик", "расчёт", "расчёты", "налог", "налоги", "налогов",
    "банк", "банка", "кредит", "кредита", "аренда", "аренды", "доставка", "доставки", "маршрут",
    "водитель", "рекламация"
]
ENGLISH = [
    "invoice", "invoices", "contract", "contracts", "payment", "payments", "delivery", "deliveries",
    "order", "orders", "client", "clients", "deal", "deals", "report", "reports", "meeting", "meetings",
    "budget", "budgets", "expense", "expenses", "income", "price", "prices", "discount", "discounts",
    "deadline", "deadlines", "shipment", "shipments", "warehouse", "supplier", "suppliers", "approval",
    "approve", "approved", "sign", "signed", "send", "review", "reviewed", "urgent", "important",
    "update", "updates", "schedule", "scheduled", "project", "projects", "task", "tasks", "quarter",
    "quarterly", "weekly", "monthly", "annual", "audit", "tax", "taxes", "bank", "loan", "rent",
    "training", "salary", "bonus", "vacation", "travel", "office", "repair", "equipment", "question",
    "questions", "answer", "file", "files", "presentation", "customer", "customers", "sales",
    "marketing", "campaign", "lead", "leads", "pipeline"
]
FIRST = [
    "Иван", "Пётр", "Анна", "Мария", "Ольга", "Сергей", "Дмитрий", "Елена", "Наталья", "Алексей",
    "John", "Mary", "Peter", "Susan", "David", "Laura", "Mark", "Emma", "Paul", "Kate"
]
LAST = [
    "Петров", "Иванов", "Смирнова", "Кузнецов", "Попова", "Соколов", "Лебедева", "Козлов", "Новикова",
    "Морозов", "Smith", "Brown", "Taylor", "Wilson", "Clark", "Lewis", "Walker", "Young", "Allen",
    "King"
]

# Clients: 200 company names and 50 cities; a message names one of each (rare words).
COMPANIES = [p + s for p in ("Альфа", "Вектор", "Гранит", "Дельта", "Евро", "Зенит", "Импульс",
                             "Кристалл", "Лидер", "Меридиан", "Норд", "Омега", "Прогресс",
                             "Ресурс", "Сигма", "Техно", "Фаворит", "Эталон", "Орион", "Атлант")
             for s in ("строй", "торг", "снаб", "пром", "трейд", "сервис", "лог", "маркет",
                       "инвест", "групп")]
CITIES = [
    "Москва", "Казань", "Самара", "Тверь", "Пермь", "Омск", "Томск", "Уфа", "Сочи", "Тула",
    "Курск", "Орёл", "Псков", "Рязань", "Калуга", "Липецк", "Вологда", "Иваново", "Брянск",
    "Чита", "Киров", "Пенза", "Саратов", "Тамбов", "Ярославль", "Владимир", "Смоленск", "Кострома",
    "Новгород", "Мурманск", "Архангельск", "Сургут", "Тюмень", "Барнаул", "Иркутск", "Хабаровск",
    "Магадан", "Анапа", "Ростов", "Воронеж", "Белгород", "Астрахань", "Волгоград", "Ижевск",
    "Чебоксары", "Саранск", "Ульяновск", "Оренбург", "Челябинск", "Екатеринбург",
]

# 50 queries: common and less common words (and their forms), two words, words being typed,
# client companies and cities, people, order numbers, websearch syntax (a phrase, or, an
# excluded word).
QUERIES = [
    "счета", "договор", "оплату", "поставок", "клиента", "отчёты", "invoice", "contracts",
    "payment", "delivery", "meeting", "budget",
    "рекламация", "маршрут", "водитель", "кредита", "pipeline", "campaign", "salary", "equipment",
    "счёт поставка", "договор подписан", "invoice payment", "срочно оплата", "сверка актов",
    "approval budget",
    "догов", "invoi", "накладн", "командир", "счёт постав", "presentat",
    "Векторстрой", "Гранитторг", "Омегалог Казань", "Зенитпром Самара", "Сигмасервис",
    "Техноснаб Тверь", "Лидермаркет", "Нординвест",
    "Петров", "Smith", "Иван Петров", "Laura Walker",
    "ЗК-104729", "ЗК-550127", "ЗК-777777",
    '"счёт оплата"', "invoice or счёт", "договор -срочно",
]
assert len(QUERIES) == 50


def refuse(message: str) -> None:
    print(f"bench.mail_search: {message}", file=sys.stderr)
    raise SystemExit(2)


def database_url() -> str:
    url = os.environ.get("DATABASE_URL") or os.environ.get("TEST_DATABASE_URL")
    if not url:
        refuse("set DATABASE_URL (or TEST_DATABASE_URL) to a PostgreSQL database, e.g. "
               "DATABASE_URL=postgresql://postgres@127.0.0.1:5432/test")
    if not url.startswith(("postgresql://", "postgresql+psycopg://", "postgres://")):
        refuse(f"this benchmark runs on PostgreSQL only (full-text index), not on {url.split(':')[0]}")
    return url.replace("postgresql+psycopg://", "postgresql://", 1).replace(
        "postgres://", "postgresql://", 1)


SUBJECTS, BODIES = 5_000, 40_000  # pools of word runs that messages are assembled from


def generate(conn, vocabulary: list[str]) -> None:
    """People, MESSAGES messages and their mailbox rows, in INSERT ... SELECT statements.

    Word runs are drawn once from the vocabulary with a skew (random()^1.5: a few words are
    common, many rare); a message takes a random subject run and two random body runs (so
    bodies hardly repeat), a client (company and city) and an order number that is nearly
    unique. Message g is sent by
    the heavy person when g % 10 = 0 and received by them when g % 10 = 5; the others write
    to each other."""
    import psycopg

    heavy, others = 1, PEOPLE - 1
    names = [f"{FIRST[i % len(FIRST)]} {LAST[(i * 7) % len(LAST)]}" for i in range(PEOPLE)]
    with conn.cursor() as cur:
        try:  # no foreign-key triggers while loading (needs a superuser; else they run)
            cur.execute("SET session_replication_role = replica")
        except psycopg.errors.InsufficientPrivilege:
            conn.rollback()
        cur.execute("""
            INSERT INTO "user" (id, email, name, password_hash, language, timezone, active,
                                is_admin, session_version, created_at)
            SELECT g, 'p' || g || '@bench.test', (%(names)s::text[])[g], 'x', 'ru', 'UTC', true,
                   false, 1, now()
            FROM generate_series(1, %(n)s::int) g""", {"names": names, "n": PEOPLE})
        t_runs = time.perf_counter()
        cur.execute("SET synchronous_commit = off")
        cur.execute("CREATE TEMP TABLE bench_run (id int PRIMARY KEY, words text NOT NULL)")
        cur.execute("""
            INSERT INTO bench_run
            SELECT g, (SELECT string_agg((%(vocab)s::text[])[
                                 1 + floor(power(random(), 1.5) * %(nv)s)::int], ' ')
                       FROM generate_series(1, CASE WHEN g <= %(ns)s THEN 3 + g %% 4
                                                    ELSE 6 + g %% 7 END))
            FROM generate_series(1, %(ns)s + %(nb)s) g""",
                    {"vocab": vocabulary, "nv": len(vocabulary), "ns": SUBJECTS, "nb": BODIES})
        cur.execute("ANALYZE bench_run")
        print(f"  word runs: {time.perf_counter() - t_runs:5.1f} s", flush=True)
        chunk = 250_000
        for start in range(1, MESSAGES + 1, chunk):
            stop = min(start + chunk - 1, MESSAGES)
            t0 = time.perf_counter()
            cur.execute("""
                INSERT INTO mail_message (id, sender_id, kind, importance, subject, body, body_html,
                                          state, created_at, updated_at, sent_at, thread_id,
                                          search_text)
                SELECT r.g, r.sender, (ARRAY['ordinary','ordinary','ordinary','request','report',
                                             'directive'])[1 + r.g %% 6], 'normal', s.words,
                       r_body.body, '', 'sent', r.at, r.at, r.at, r.g,
                       (%(names)s::text[])[r.sender] || E'\\n' || (%(names)s::text[])[r.rcpt]
                       || E'\\n' || s.words || E'\\n' || r_body.body
                FROM (SELECT g, sender,
                             CASE WHEN g %% 10 = 5 THEN %(heavy)s
                                  ELSE 2 + (sender - 2 + 1 + g %% 50) %% %(others)s END AS rcpt,
                             timestamptz '2025-01-01 00:00+00' + g * interval '31 seconds' AS at,
                             1 + floor(random() * %(ns)s)::int AS si,
                             %(ns)s + 1 + floor(random() * %(nb)s)::int AS b1,
                             %(ns)s + 1 + floor(random() * %(nb)s)::int AS b2,
                             (100000 + floor(random() * 900000))::int AS code,
                             (%(companies)s::text[])[1 + floor(random() * %(nc)s)::int] || ' '
                             || (%(cities)s::text[])[1 + floor(random() * %(nt)s)::int] AS client
                      FROM (SELECT g, CASE WHEN g %% 10 = 0 THEN %(heavy)s
                                           ELSE 2 + (g * 7) %% %(others)s END AS sender
                            FROM generate_series(%(start)s::int, %(stop)s::int) g) p
                      OFFSET 0) r
                JOIN bench_run s ON s.id = r.si
                CROSS JOIN LATERAL (
                    SELECT b1.words || ' ' || r.client || ' ' || b2.words || ' ЗК-' || r.code
                    FROM bench_run b1, bench_run b2 WHERE b1.id = r.b1 AND b2.id = r.b2
                ) AS r_body(body)
                ORDER BY r.g""", {"start": start, "stop": stop, "names": names, "heavy": heavy,
                                  "others": others, "ns": SUBJECTS, "nb": BODIES,
                                  "companies": COMPANIES, "nc": len(COMPANIES),
                                  "cities": CITIES, "nt": len(CITIES)})
            t1 = time.perf_counter()
            cur.execute("""
                INSERT INTO mail_box (message_id, user_id, role, folder, starred, created_at,
                                      read_at)
                SELECT m.id, u.user_id, u.role, u.folder, u.role = 'recipient' AND m.id %% 13 = 0,
                       m.sent_at, CASE WHEN u.role = 'sender' OR m.id %% 3 > 0 THEN m.sent_at END
                FROM mail_message m
                CROSS JOIN LATERAL (VALUES
                    (m.sender_id, 'sender', 'sent'),
                    (CASE WHEN m.id %% 10 = 5 THEN %(heavy)s
                          ELSE 2 + (m.sender_id - 2 + 1 + m.id %% 50) %% %(others)s END,
                     'recipient', CASE WHEN m.id %% 7 = 0 THEN 'archive' ELSE 'inbox' END)
                ) AS u(user_id, role, folder)
                WHERE m.id BETWEEN %(start)s AND %(stop)s
                ORDER BY m.id""", {"start": start, "stop": stop, "heavy": heavy, "others": others})
            t2 = time.perf_counter()
            conn.commit()
            print(f"  messages {start:>9,}–{stop:>9,}: {t1 - t0:5.1f} s, mailbox rows "
                  f"{t2 - t1:5.1f} s", flush=True)
        cur.execute("RESET session_replication_role")
        cur.execute("SELECT setval(pg_get_serial_sequence('mail_message', 'id'), %s)", (MESSAGES,))
        cur.execute("SELECT setval(pg_get_serial_sequence('user', 'id'), %s)", (PEOPLE,))
    conn.commit()


def bare_sql(q: str, search) -> tuple[str, dict]:
    """The search written by hand: the same tsquery rule as the app (search.tsquery)."""
    words = list(search._WORD.finditer(q))
    last = words[-1] if words else None
    params = {"uid": 1, "q": q}
    tsq = "websearch_to_tsquery('russian', %(q)s)"
    if last is not None and last.end() == len(q) and len(last.group()) >= search.PREFIX_MIN \
            and search._is_plain(q):
        params.update(head=q[:last.start()], prefix=f"{last.group()}:*")
        tsq = (f"({tsq} || (websearch_to_tsquery('russian', %(head)s) "
               f"&& to_tsquery('russian', %(prefix)s)))")
    where = (f"FROM mail_box b JOIN mail_message m ON m.id = b.message_id "
             f"LEFT JOIN \"user\" u ON u.id = m.sender_id "
             f"WHERE b.user_id = %(uid)s AND to_tsvector('russian', m.search_text) @@ {tsq}")
    return where, params


def pct(values: list[float], p: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, round(p / 100 * (len(values) - 1)))]


def load(url: str, schema: str, app, vocabulary: list[str]) -> None:
    """The schema migrated, filled, indexed and analysed."""
    import psycopg
    from flask_migrate import upgrade

    from app.extensions import db

    with app.app_context():
        upgrade()
        db.session.remove()
    conn = psycopg.connect(url, options=f"-csearch_path={pgschema.search_path(schema)}")
    print(f"generating {MESSAGES:,} messages for {PEOPLE} people in schema {schema}")
    t0 = time.perf_counter()
    # Indexes are built after the load (as a restore does), from their own definitions;
    # those behind constraints (keys, unique) stay.
    indexes = conn.execute("""
        SELECT i.indexname, i.indexdef FROM pg_indexes i
        WHERE i.schemaname = current_schema() AND i.tablename IN ('mail_message', 'mail_box')
          AND NOT EXISTS (SELECT 1 FROM pg_constraint c
                          WHERE c.conname = i.indexname AND c.connamespace = (
                              SELECT oid FROM pg_namespace WHERE nspname = i.schemaname))
    """).fetchall()
    assert "ix_mail_message_search" in dict(indexes), indexes
    for name, _definition in indexes:
        conn.execute(f'DROP INDEX "{name}"')
    conn.commit()
    generate(conn, vocabulary)
    t_gen = time.perf_counter() - t0
    t0 = time.perf_counter()
    conn.execute("SET maintenance_work_mem = '1GB'")
    for name, definition in sorted(indexes, key=lambda i: i[0] == "ix_mail_message_search"):
        started = time.perf_counter()
        conn.execute(definition)
        conn.commit()
        if name == "ix_mail_message_search":
            print(f"  {definition}: {time.perf_counter() - started:.0f} s")
    t_index = time.perf_counter() - t0
    conn.autocommit = True
    conn.execute("VACUUM ANALYZE mail_message")
    conn.execute("VACUUM ANALYZE mail_box")
    conn.execute('ANALYZE "user"')
    size = conn.execute("SELECT pg_size_pretty(pg_relation_size('ix_mail_message_search'))"
                        ).fetchone()[0]
    print(f"data {t_gen:.0f} s, indexes {t_index:.0f} s (GIN {size})")
    conn.close()


def measure(url: str, schema: str, app) -> None:
    """Both ways of searching, timed in the same run, and the plan of one search."""
    import psycopg

    from app.core.models import User
    from app.extensions import db
    from app.messaging import search
    from app.messaging.models import Mailbox

    conn = psycopg.connect(url, options=f"-csearch_path={pgschema.search_path(schema)}")
    heavy_rows = conn.execute("SELECT count(*) FROM mail_box WHERE user_id = 1").fetchone()[0]
    messages = conn.execute("SELECT count(*) FROM mail_message").fetchone()[0]
    conn.rollback()
    # The bare queries run with the same transaction settings as the app's.
    settings = "SELECT " + ", ".join(f"set_config('{k}', '{v}', true)"
                                     for k, v in search.PG_SETTINGS.items())
    order = f"ORDER BY coalesce(m.sent_at, m.send_at, m.updated_at) DESC, m.id DESC LIMIT {PAGE}"

    def bare_page(q: str) -> list[int]:
        where, params = bare_sql(q, search)
        conn.execute(settings)
        rows = conn.execute(f"SELECT b.*, m.*, u.* {where} {order}", params).fetchall()
        conn.rollback()
        return [r[1] for r in rows]

    def bare_paginated(q: str) -> int:
        where, params = bare_sql(q, search)
        conn.execute(settings)
        rows = conn.execute(f"SELECT b.*, m.*, u.* {where} {order}", params).fetchall()
        total = conn.execute(f"SELECT count(*) {where}", params).fetchone()[0]
        conn.rollback()
        assert len(rows) == min(total, PAGE)
        return total

    with app.app_context():
        heavy = db.session.get(User, 1)
        db.session.expunge(heavy)

        def app_page(q: str) -> list[int]:
            rows = db.session.scalars(search.search_query(heavy, q).limit(PAGE)).unique().all()
            ids = [b.message_id for b in rows]
            assert all(isinstance(b, Mailbox) and b.message.sender for b in rows)
            db.session.rollback()
            return ids

        def app_paginated(q: str) -> int:  # what the page and the API do
            page = db.paginate(search.search_query(heavy, q), page=1, per_page=PAGE,
                               error_out=False)
            total = page.total
            db.session.rollback()
            return total

        # Warm up, and check that both find the same rows.
        totals = {}
        for q in QUERIES:
            assert app_page(q) == bare_page(q), q
            totals[q] = app_paginated(q)
            assert totals[q] == bare_paginated(q), q
        results = {}
        for label, app_fn, bare_fn in (("first page (25 rows)", app_page, bare_page),
                                       ("first page and the total (what the page does)",
                                        app_paginated, bare_paginated)):
            t_app, t_bare = [], []  # (query, seconds)
            for n in range(ROUNDS):
                for i, q in enumerate(QUERIES):
                    pair = ((bare_fn, t_bare), (app_fn, t_app))
                    # Who goes first alternates: the second finds the pages in the cache.
                    for fn, out in pair if (i + n) % 2 else pair[::-1]:
                        start = time.perf_counter()
                        fn(q)
                        out.append((q, time.perf_counter() - start))
            results[label] = (t_app, t_bare)

        q = "счета оплату"
        stmt = search.search_query(heavy, q).limit(PAGE)
        compiled = stmt.compile(dialect=db.engine.dialect)
        plan = db.session.connection().exec_driver_sql(
            f"EXPLAIN (ANALYZE, BUFFERS, COSTS OFF) {compiled}", compiled.params).all()
        db.session.rollback()
    conn.close()

    counts = sorted(totals.values())
    print(f"\ndatabase: postgresql; {messages:,} messages; {len(QUERIES)} queries for a person "
          f"with {heavy_rows:,} mailbox rows; {ROUNDS} rounds; matches per query: median "
          f"{statistics.median(counts):,.0f}, max {max(counts):,}; settings per search: "
          + ", ".join(f"{k}={v}" for k, v in search.PG_SETTINGS.items()))
    classes = (("under 1,000 matches", lambda n: n < 1_000),
               ("1,000 to 10,000", lambda n: 1_000 <= n < 10_000),
               ("10,000 and more", lambda n: n >= 10_000))
    for label, (t_app, t_bare) in results.items():
        a50, a95 = pct([t for _q, t in t_app], 50) * 1000, pct([t for _q, t in t_app], 95) * 1000
        b50, b95 = pct([t for _q, t in t_bare], 50) * 1000, pct([t for _q, t in t_bare], 95) * 1000
        print(f"\n{label}")
        print(f"  bare SQL through psycopg : p50 {b50:8.1f} ms   p95 {b95:8.1f} ms")
        print(f"  search_query (SQLAlchemy): p50 {a50:8.1f} ms   p95 {a95:8.1f} ms")
        print(f"  ratio app ÷ bare: p50 {a50 / b50:.2f}, p95 {a95 / b95:.2f}")
        for name, within in classes:
            picked = [t * 1000 for q, t in t_app if within(totals[q])]
            if picked:
                n = len({q for q in QUERIES if within(totals[q])})
                print(f"    app, {n:2d} queries with {name:<19}: p50 {pct(picked, 50):8.1f} ms"
                      f"   p95 {pct(picked, 95):8.1f} ms")
    print(f"\nEXPLAIN ANALYZE of the first page of {q!r}:")
    for (line,) in plan:
        print(f"  {line}")


def main() -> None:
    url = database_url()
    sys.path.insert(0, str(ROOT))
    import psycopg

    from app import create_app
    from app.extensions import db

    reuse = os.environ.get("BENCH_REUSE")  # a schema kept by an earlier run (BENCH_KEEP=1)
    schema = reuse or f"crm_bench_search_{uuid.uuid4().hex[:8]}"
    admin = psycopg.connect(url, autocommit=True)
    if not reuse:
        with sa.create_engine(url.replace("postgresql://", "postgresql+psycopg://", 1)
                              ).begin() as conn:
            pgschema.prepare(conn)
        admin.execute(f'CREATE SCHEMA "{schema}"')
    app = create_app({
        "SQLALCHEMY_DATABASE_URI": url, "SECRET_KEY": "bench", "CRM_ENV": "production",
        "INSTANCE_DIR": Path(tempfile.mkdtemp(prefix="crm-bench-")),
        "SQLALCHEMY_ENGINE_OPTIONS": {
            "connect_args": {"options": f"-csearch_path={pgschema.search_path(schema)}"}},
    })
    vocabulary = RUSSIAN + ENGLISH
    random.Random(5).shuffle(vocabulary)
    try:
        if not reuse:
            load(url, schema, app, vocabulary)
        measure(url, schema, app)
    finally:
        with app.app_context():
            db.session.remove()
            db.engine.dispose()
        if os.environ.get("BENCH_KEEP") or reuse:
            print(f"schema {schema} kept")
        else:
            admin.execute(f'DROP SCHEMA "{schema}" CASCADE')
        admin.close()


if __name__ == "__main__":
    main()
