"""Search of companies on 100,000 (PostgreSQL): p50/p95 of services.search_companies against
the bare SQL of the same query (the same WHERE, ORDER BY and LIMIT) sent through psycopg, in
the same run (both with the service's word-similarity threshold, set for the transaction);
then the plan of one search, which must use the trigram index.

    DATABASE_URL=postgresql://postgres@127.0.0.1:5432/test .venv/bin/python -m bench.clients_search

A schema of its own (the shared "extensions" schema, where pg_trgm is, behind it on the
search path), dropped at the end (BENCH_KEEP=1 keeps it). BENCH_COMPANIES changes the
number of companies, BENCH_ROUNDS the number of timed passes over the queries. The
companies are those of bench.clients_import
(names in Cyrillic and Latin, phones, e-mails, tax numbers), written straight into the table
with the search text the services compute, the trigram index built after. The queries are
names with typos, names being typed, phones typed in other formats, parts of e-mails and of
tax numbers; the searcher sees every company (an administrator).
"""

from __future__ import annotations

import os
import random
import statistics
import time

from bench.clients_import import COMPANIES, Schema, actor, company

ROUNDS = int(os.environ.get("BENCH_ROUNDS", "5"))
QUERIES = [
    # names with typos or run together
    "рогакопыта", "рога и копта", "Рога и копыта", "копыта и рога", "векторстрй", "гранитторг",
    "омегалог", "сигмасервис 12", "Horns and hoves", "acme tradng", "global logistcs",
    # names being typed
    "рога", "вектор", "зенитпр", "байкал", "Северныйэнерго", "acm", "nord sof", "quantum med",
    "ООО «Альфа",
    # phones typed as people type them
    "8 (900) 123-45-67", "+7 900 1234567", "+7 (901) 765-43-21", "8 900 123", "900 12",
    "+44 20 7946 0018", "7946",
    # e-mails and their parts
    "info@roga-kopyta.ru", "roga-kopyta", "info12345@", "sales4321@e4321.com", "hornshooves",
    # tax numbers and their parts
    "7700000000", "770000", "7700370", "77000037",
    # short and common
    "ооо", "ltd", "строй", "trading",
]


def load(schema: Schema, db) -> None:
    """COMPANIES companies as the services store them, the trigram index built after."""
    from sqlalchemy import insert, text

    from app.clients import services
    from app.clients.models import Company
    from app.core.clock import utcnow

    rnd = random.Random(7)
    user = actor(db)
    now = utcnow()
    indexes = dict(db.session.execute(text(
        "SELECT indexname, indexdef FROM pg_indexes WHERE schemaname = current_schema() "
        "AND tablename = 'client_company' AND indexname LIKE '%trgm%'")).all())
    assert "ix_client_company_search_trgm" in indexes, indexes
    for name in indexes:
        db.session.execute(text(f'DROP INDEX "{name}"'))
    t0 = time.perf_counter()
    batch = []
    users = [user.id]
    for i in range(COMPANIES):
        (legal, short, tax, phone, email, status, roles, industry, tags, _cats, website,
         address) = company(i, rnd)
        values = services.company_fields({
            "legal_name": legal, "short_name": short, "tax_number": tax, "phones": [phone],
            "emails": [email], "status": status, "is_client": "client" in roles,
            "is_supplier": "supplier" in roles, "is_partner": "partner" in roles,
            "industry": industry, "tags": tags.split(", ") if tags else [], "website": website,
            "addresses": [{"kind": "office", "text": address}], "notes": "", "next_step": "",
            "next_step_at": None})
        batch.append({**values, "responsible_id": users[0], "parent_id": None,
                      "search_text": services.company_search_text(legal, short, tax, [phone],
                                                                  [email]),
                      "created_at": now, "updated_at": now})
        if len(batch) == 10_000:
            db.session.execute(insert(Company.__table__), batch)
            batch = []
    if batch:
        db.session.execute(insert(Company.__table__), batch)
    db.session.commit()
    t1 = time.perf_counter()
    for definition in indexes.values():
        db.session.execute(text(definition))
    db.session.commit()
    t2 = time.perf_counter()
    with db.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(text("VACUUM ANALYZE client_company"))
    print(f"{COMPANIES:,} companies: rows {t1 - t0:.0f} s, trigram index {t2 - t1:.0f} s")


def pct(values: list[float], p: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, round(p / 100 * (len(values) - 1)))]


def bare_sql(q: str) -> tuple[str, dict]:
    """The search written by hand: the same normalising, WHERE, ORDER BY and LIMIT."""
    import re

    from app.clients import services

    q = " ".join(q.lower().split())[:200]
    needle = services.digits(q) if re.fullmatch(r"[\d\s()+\-]{5,}", q) else q
    like = "%" + needle.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
    # similarity for words, not for numbers and e-mails
    words = bool(re.search(r"[^\W\d_]", needle)) and "@" not in needle
    return (BARE_WORDS if words else BARE_NUMBERS), {"like": like, "needle": needle, "words": words}


BARE_WORDS = ("SELECT * FROM client_company WHERE id IS NOT NULL AND archived_at IS NULL "
              "AND (search_text LIKE %(like)s ESCAPE '\\' OR search_text %%> %(needle)s) "
              "ORDER BY word_similarity(%(needle)s, search_text) DESC, legal_name LIMIT 50")
BARE_NUMBERS = ("SELECT * FROM client_company WHERE id IS NOT NULL AND archived_at IS NULL "
                "AND (search_text LIKE %(like)s ESCAPE '\\') "
                "ORDER BY word_similarity(%(needle)s, search_text) DESC, legal_name LIMIT 50")


def main() -> None:
    schema = Schema("search")
    from app.clients import services
    from app.extensions import db

    try:
        with schema.app.app_context():
            if not schema.reused:
                load(schema, db)
            user = actor(db)
            db.session.expunge(user)
            total = db.session.scalar(db.text("SELECT count(*) FROM client_company"))
            conn = schema.connect()

            def bare(q: str) -> list[int]:
                sql, params = bare_sql(q)
                if params.pop("words"):  # the service's SET LOCAL, in its own round trip too
                    conn.execute("SELECT set_config('pg_trgm.word_similarity_threshold', %s, true)",
                                 (services.SEARCH_SIMILARITY,))
                rows = conn.execute(sql, params).fetchall()
                conn.rollback()
                return [r[0] for r in rows]

            def app_search(q: str) -> list[int]:
                rows = db.session.scalars(services.search_companies(user, q)).all()
                ids = [c.id for c in rows]
                db.session.rollback()
                return ids

            found = {}
            for q in QUERIES:  # warm up, and both find the same
                found[q] = app_search(q)
                assert found[q] == bare(q), q
            named = {q: found[q][:1] for q in ("рогакопыта", "8 (900) 123-45-67", "roga-kopyta",
                                                "770000")}
            t_app, t_bare = [], []
            per_query: dict[str, list[float]] = {q: [] for q in QUERIES}
            for n in range(ROUNDS):
                for i, q in enumerate(QUERIES):
                    pair = ((bare, t_bare), (app_search, t_app))
                    for fn, out in pair if (i + n) % 2 else pair[::-1]:
                        start = time.perf_counter()
                        fn(q)
                        out.append(time.perf_counter() - start)
                        if fn is app_search:
                            per_query[q].append(out[-1])
            sql, params = bare_sql("рогакопыта")
            params.pop("words")
            conn.execute("SELECT set_config('pg_trgm.word_similarity_threshold', %s, true)",
                         (services.SEARCH_SIMILARITY,))
            plan = [r[0] for r in conn.execute("EXPLAIN (ANALYZE, BUFFERS, COSTS OFF) " + sql,
                                                params).fetchall()]
            conn.rollback()
            conn.close()
        a50, a95 = pct(t_app, 50) * 1000, pct(t_app, 95) * 1000
        b50, b95 = pct(t_bare, 50) * 1000, pct(t_bare, 95) * 1000
        hits = [len(v) for v in found.values()]
        print(f"\ndatabase: postgresql; {total:,} companies; {len(QUERIES)} queries × {ROUNDS} "
              f"rounds; rows per query (limit 50): median {statistics.median(hits):.0f}, "
              f"{sum(h == 0 for h in hits)} with none")
        print(f"  bare SQL through psycopg      : p50 {b50:7.1f} ms   p95 {b95:7.1f} ms")
        print(f"  services.search_companies (ORM): p50 {a50:7.1f} ms   p95 {a95:7.1f} ms")
        print(f"  ratio app ÷ bare: p50 {a50 / b50:.2f}, p95 {a95 / b95:.2f}")
        slow = sorted(QUERIES, key=lambda q: -statistics.median(per_query[q]))[:5]
        print("  slowest queries (app, median): " + "; ".join(
            f"{q!r} {statistics.median(per_query[q]) * 1000:.0f} ms" for q in slow))
        rest = [t for q in QUERIES if q not in slow for t in per_query[q]]
        print(f"  the other {len(QUERIES) - len(slow)} queries (app): p50 {pct(rest, 50) * 1000:.1f} ms, "
              f"p95 {pct(rest, 95) * 1000:.1f} ms")
        print("  first hits: " + "; ".join(f"{q!r} → #{v[0] if v else '-'}" for q, v in named.items()))
        print("\nEXPLAIN ANALYZE of 'рогакопыта':")
        for line in plan:
            print(f"  {line}")
        assert any("ix_client_company_search_trgm" in line for line in plan), "no trigram index"
    finally:
        schema.close()


if __name__ == "__main__":
    main()
