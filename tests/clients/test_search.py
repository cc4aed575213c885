"""Search of companies by name, phone, e-mail and tax number: typos and partial input, and on
PostgreSQL the trigram index doing the work."""

from __future__ import annotations

import pytest
from sqlalchemy import text

from app.clients import services as clients


def on_postgresql(db) -> bool:
    return db.engine.dialect.name == "postgresql"


@pytest.fixture
def companies(office):
    make = clients.create_company
    return {
        "roga": make(office.Sam, {"legal_name": "ООО «Рога и копыта»", "tax_number": "7701234567",
                                  "phones": ["+7 900 1234567"], "emails": ["info@roga-kopyta.ru"]}),
        "vector": make(office.Sam, {"legal_name": "АО «Векторстрой»", "short_name": "Вектор",
                                    "tax_number": "5009876543", "phones": ["+7 495 111-22-33"],
                                    "emails": ["office@vector.ru"]}),
        "acme": make(office.Sam, {"legal_name": "Acme Trading Ltd", "phones": ["+44 20 7946 0018"],
                                  "emails": ["hello@acme.co.uk"]}),
        "freds": make(office.Fred, {"legal_name": "Рога и копыта Финанс", "tax_number": "7701234500"}),
    }


def found(actor, q: str) -> list[str]:
    from app.extensions import db

    return [c.legal_name for c in db.session.scalars(clients.search_companies(actor, q))]


def test_phones_typed_any_way_find_the_company(office, companies):
    for q in ("8 (900) 123-45-67", "+7 900 123 45 67", "79001234567", "900 123-45"):
        assert found(office.Sam, q) == ["ООО «Рога и копыта»"], q
    assert found(office.Sam, "7946 0018") == ["Acme Trading Ltd"]


def test_partial_tax_numbers_and_e_mails(office, companies):
    assert found(office.Sam, "7701234") == ["ООО «Рога и копыта»"]  # Fred's 7701234500 is not Sam's
    assert found(office.Dora, "7701234") == ["ООО «Рога и копыта»", "Рога и копыта Финанс"]
    assert found(office.Sam, "50098") == ["АО «Векторстрой»"]
    assert found(office.Sam, "info@roga") == ["ООО «Рога и копыта»"]
    assert found(office.Sam, "vector.ru") == ["АО «Векторстрой»"]
    assert found(office.Sam, "ACME.co") == ["Acme Trading Ltd"]


def test_names_being_typed_in_both_alphabets(office, companies):
    assert found(office.Sam, "вектор") == ["АО «Векторстрой»"]
    assert found(office.Sam, "acme tra") == ["Acme Trading Ltd"]
    assert found(office.Sam, "рога и") == ["ООО «Рога и копыта»"]
    assert found(office.Fred, "рога") == ["Рога и копыта Финанс"]  # only what Fred sees


def test_typos_find_the_company_on_postgresql(office, companies, db):
    if not on_postgresql(db):
        pytest.skip("typo tolerance is the trigram index of PostgreSQL")
    assert found(office.Sam, "Рогакопыта") == ["ООО «Рога и копыта»"]
    assert found(office.Sam, "рога и копта")[:1] == ["ООО «Рога и копыта»"]
    assert found(office.Sam, "векторсторй") == ["АО «Векторстрой»"]
    assert found(office.Sam, "acme tradng") == ["Acme Trading Ltd"]
    assert found(office.Sam, "совсем другое") == []
    # Numbers and e-mails match as typed: a wrong digit finds nothing rather than everything
    # with a seven in it.
    assert found(office.Sam, "7701234599") == [] and found(office.Sam, "8 (900) 123-45-99") == []
    assert found(office.Sam, "inf@roga-kopyta") == []


def test_the_plan_uses_the_trigram_index(office, admin, companies, db):
    if not on_postgresql(db):
        pytest.skip("the trigram index exists on PostgreSQL only")
    # Enough companies that reading them all would cost more than the index.
    db.session.execute(text("""
        INSERT INTO client_company (legal_name, short_name, tax_number, is_client, is_supplier,
            is_partner, tags, industry, addresses, phones, emails, website, responsible_id,
            status, notes, next_step, search_text, created_at, updated_at)
        SELECT 'ООО «Компания ' || g || '»', '', (8800000000 + g)::text, true, false, false, '',
               '', '[]', '[]', '[]', '', :uid, 'active', '', '',
               'ооо «компания ' || g || '» ' || (8800000000 + g) || ' 7999' || lpad(g::text, 7, '0')
               || ' mail' || g || '@firma' || (g % 97) || '.ru', now(), now()
        FROM generate_series(1, 10000) g"""), {"uid": office.Sam.id})
    db.session.execute(text("SELECT gin_clean_pending_list('ix_client_company_search_trgm')"))
    db.session.execute(text("ANALYZE client_company"))
    for actor, q in ((admin, "Рогакопыта"), (admin, "8 (900) 123-45-67"), (office.Sam, "info@roga"),
                     (admin, "7701234")):
        stmt = clients.search_companies(actor, q)
        compiled = stmt.compile(dialect=db.engine.dialect, compile_kwargs={"render_postcompile": True})
        plan = "\n".join(r[0] for r in db.session.connection().exec_driver_sql(
            f"EXPLAIN {compiled}", compiled.params))
        assert "ix_client_company_search_trgm" in plan, (q, plan)
    assert found(admin, "Рогакопыта")[0] == "ООО «Рога и копыта»"
