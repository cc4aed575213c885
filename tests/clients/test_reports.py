"""Reports of the client base on a small known data set: the funnel with its conversion,
sales by manager, client and segment per week and month (currencies apart), reasons, manager
activity; scoped by the chart; as pages, XLSX and pictures."""

from __future__ import annotations

import io
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import openpyxl
import pytest

from app.clients import charts, reports
from app.clients import services as clients
from app.core import clock
from app.core.errors import NotFound, ValidationError

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)  # a Monday
PERIOD = {"start": "2026-03-02", "end": "2026-03-29"}  # four weeks from Monday


def at(days: float, hours: float = 0) -> None:
    clock.freeze(T0 + timedelta(days=days, hours=hours))


@pytest.fixture
def data(office, admin):
    """Sam: D1 won (1,000.00 RUB, week 1, via every stage), D2 lost at Offer, D3 still New,
    D4 won straight from New (500.50 RUB, week 3); Sara: D5 won (200 EUR, week 3); Fred,
    outside the sales division: D6 won (999 RUB, week 3). Sam's contacts and leads too."""
    at(-1)
    pipeline = clients.save_pipeline(admin, {"name": "Sales", "stages": [
        {"name": "New", "probability": 10}, {"name": "Offer", "probability": 40},
        {"name": "Contract", "probability": 80}, {"name": "Won", "kind": "won", "probability": 100},
        {"name": "Lost", "kind": "lost"}]})
    other = clients.save_pipeline(admin, {"name": "Service", "stages": [
        {"name": "Asked"}, {"name": "Done", "kind": "won"}, {"name": "Dropped", "kind": "lost"}]})
    new, offer, contract, won, lost = pipeline.stages
    too_dear = clients.add_reason(admin, {"kind": "refusal", "name": "Too expensive"})
    competitor = clients.add_reason(admin, {"kind": "lost", "name": "Went to a competitor"})
    late = clients.add_reason(admin, {"kind": "complaint", "name": "Late delivery"})
    a = clients.create_company(office.Sam, {"legal_name": "=Alpha LLC", "short_name": "=Alpha",
                                            "categories": ["Retail", "Wholesale"],
                                            "industry": "Trade"})
    b = clients.create_company(office.Sam, {"legal_name": "Beta", "industry": "Trade"})
    c = clients.create_company(office.Sara, {"legal_name": "Gamma", "categories": ["Retail"],
                                             "industry": "Building"})
    f = clients.create_company(office.Fred, {"legal_name": "Delta"})
    at(0)

    def deal(who, company, title, amount, currency="RUB"):
        return clients.create_deal(who, {"title": title, "company_id": company.id,
                                         "pipeline_id": pipeline.id, "amount": amount,
                                         "currency": currency})

    d1 = deal(office.Sam, a, "D1", "1000.00")
    d2 = deal(office.Sam, b, "D2", "300")
    d3 = deal(office.Sam, b, "D3", "50")
    d4 = deal(office.Sam, b, "D4", "500.50")
    d5 = deal(office.Sara, c, "D5", "200", "EUR")
    d6 = deal(office.Fred, f, "D6", "999")
    move = clients.move_deal
    at(1)
    move(office.Sam, d1.id, {"stage_id": offer.id})
    move(office.Sam, d2.id, {"stage_id": offer.id})
    move(office.Sara, d5.id, {"stage_id": offer.id})
    at(2)
    move(office.Sam, d1.id, {"stage_id": contract.id})
    move(office.Sam, d1.id, {"stage_id": won.id})  # week 1
    at(8)
    move(office.Sam, d2.id, {"stage_id": lost.id, "reason_id": competitor.id})  # week 2
    at(14)
    move(office.Sam, d4.id, {"stage_id": won.id})  # week 3, New -> Won
    move(office.Sara, d5.id, {"stage_id": won.id})
    move(office.Fred, d6.id, {"stage_id": won.id})
    # Sam's contacts: two calls and a meeting in the period, a call after it
    at(3)
    log = clients.log_interaction
    log(office.Sam, {"company_id": a.id, "kind": "call"})
    log(office.Sam, {"company_id": b.id, "kind": "call"})
    log(office.Sam, {"company_id": a.id, "kind": "meeting"})
    log(office.Sam, {"company_id": a.id, "kind": "complaint", "reason_id": late.id})
    log(office.Sam, {"company_id": b.id, "kind": "complaint"})
    log(office.Sam, {"company_id": b.id, "kind": "refusal", "reason_id": too_dear.id})
    log(office.Fred, {"company_id": f.id, "kind": "complaint", "reason_id": late.id})
    # leads: two to Sam in the period, one converted later
    at(1)
    l1 = clients.create_lead(office.Sam, {"name": "Lead one", "responsible_id": office.Sam.id})
    clients.create_lead(office.Sam, {"name": "Lead two", "responsible_id": office.Sam.id})
    at(40)
    log(office.Sam, {"company_id": a.id, "kind": "call"})
    log(office.Sam, {"company_id": a.id, "kind": "complaint", "reason_id": late.id})
    clients.convert_lead(office.Sam, l1.id, {"pipeline_id": other.id})
    return {"pipeline": pipeline, "other": other, "deals": [d1, d2, d3, d4, d5, d6]}


def rows(table) -> dict:
    return {r[next(iter(r))]: r for r in table.rows}


def test_the_funnel_counts_each_deal_at_its_furthest_stage(office, admin, data):
    rep = reports.build(admin, "funnel", {**PERIOD, "pipeline_id": data["pipeline"].id})
    funnel = rows(rep.tables[0])
    assert [r["stage"] for r in rep.tables[0].rows] == ["New", "Offer", "Contract", "Won"]
    assert [funnel[s]["reached"] for s in ("New", "Offer", "Contract", "Won")] == [6, 5, 4, 4]
    assert funnel["New"]["went_on"] == 5 and funnel["New"]["conversion"] == pytest.approx(5 / 6)
    assert funnel["Offer"]["conversion"] == pytest.approx(4 / 5)
    assert funnel["Contract"]["conversion"] == 1.0
    assert funnel["Offer"]["lost"] == 1 and funnel["New"]["open"] == 1
    assert rep.tables[0].total["reached"] == 6 and rep.tables[0].total["lost"] == 1
    # the manager of sales sees her people's deals, not Fred's; Sam only his own
    helen = rows(reports.build(office.Helen, "funnel", PERIOD).tables[0])
    assert [helen[s]["reached"] for s in ("New", "Offer", "Contract", "Won")] == [5, 4, 3, 3]
    sam = rows(reports.build(office.Sam, "funnel", PERIOD).tables[0])
    assert [sam[s]["reached"] for s in ("New", "Offer", "Contract", "Won")] == [4, 3, 2, 2]
    # deals opened outside the period are not in it; the other pipeline has the lead's deal
    later = reports.build(admin, "funnel", {"start": "2026-03-03", "end": "2026-03-29"})
    assert later.tables[0].total["reached"] == 0
    service = reports.build(admin, "funnel", {"start": "2026-03-02", "end": "2026-04-30",
                                              "pipeline_id": data["other"].id})
    assert rows(service.tables[0])["Asked"]["reached"] == 1


def test_sales_by_manager_per_week_keep_currencies_apart(office, admin, data):
    rep = reports.build(admin, "sales", {**PERIOD, "group": "manager"})
    dynamics, groups = rep.tables
    assert [c.label for c in dynamics.columns[3:]] == ["2 Mar", "9 Mar", "16 Mar", "23 Mar"]
    totals = {r["currency"]: r for r in dynamics.rows}
    assert totals["RUB"]["deals"] == 3 and totals["RUB"]["amount"] == 100000 + 50050 + 99900
    assert [totals["RUB"][f"b{i}"] for i in range(4)] == [100000, 0, 149950, 0]
    assert totals["EUR"]["amount"] == 20000 and totals["EUR"]["b2"] == 20000
    by = {(r["group"], r["currency"]): r for r in groups.rows}
    assert by[("Sam", "RUB")]["amount"] == 150050 and by[("Sam", "RUB")]["deals"] == 2
    assert by[("Sara", "EUR")]["amount"] == 20000 and ("Sara", "RUB") not in by
    assert by[("Fred", "RUB")]["amount"] == 99900
    assert rep.currencies == ["EUR", "RUB"] and rep.currency == "RUB"
    # Helen: her division only
    helen = reports.build(office.Helen, "sales", {**PERIOD, "group": "manager"})
    assert {r["group"] for r in helen.tables[1].rows} == {"Sam", "Sara"}


def test_sales_by_client_segment_and_month(office, admin, data):
    by_client = reports.build(admin, "sales", {**PERIOD, "group": "client"}).tables[1]
    assert {(r["group"], r["amount"]) for r in by_client.rows} == {
        ("=Alpha", 100000), ("Beta", 50050), ("Gamma", 20000), ("Delta", 99900)}
    by_category = reports.build(admin, "sales", {**PERIOD, "group": "category"}).tables[1]
    cat = {(r["group"], r["currency"]): r["amount"] for r in by_category.rows}
    assert cat == {("Retail", "RUB"): 100000, ("Wholesale", "RUB"): 100000,
                   ("Retail", "EUR"): 20000, ("No category", "RUB"): 50050 + 99900}
    by_industry = reports.build(admin, "sales", {**PERIOD, "group": "industry"}).tables[1]
    assert {(r["group"], r["currency"]): r["amount"] for r in by_industry.rows} == {
        ("Trade", "RUB"): 150050, ("Building", "EUR"): 20000, ("No industry", "RUB"): 99900}
    months = reports.build(admin, "sales", {"start": "2026-02-15", "end": "2026-04-30",
                                            "step": "month", "group": "manager"})
    dynamics = months.tables[0]
    assert [c.label for c in dynamics.columns[3:]] == ["Feb 2026", "Mar 2026", "Apr 2026"]
    rub = next(r for r in dynamics.rows if r["currency"] == "RUB")
    assert [rub["b0"], rub["b1"], rub["b2"]] == [0, 249950, 0]
    # a pipeline filter leaves the other pipeline out
    other = reports.build(admin, "sales", {**PERIOD, "pipeline_id": data["other"].id})
    assert other.tables[0].rows == []


def test_reasons_over_the_period(office, admin, data):
    rep = reports.build(admin, "reasons", PERIOD)
    refusal, complaint, lost = rep.tables
    assert [(r["reason"], r["count"]) for r in refusal.rows] == [("Too expensive", 1)]
    assert [(r["reason"], r["count"]) for r in complaint.rows] == [
        ("Late delivery", 2), ("No reason given", 1)]
    assert complaint.rows[0]["share"] == pytest.approx(2 / 3)
    assert [(r["reason"], r["count"]) for r in lost.rows] == [("Went to a competitor", 1)]
    # Sam's clients only: Fred's complaint is not his; a wider period takes April's in
    sam = reports.build(office.Sam, "reasons", PERIOD).tables[1]
    assert sam.total["count"] == 2
    wider = reports.build(office.Sam, "reasons", {"start": "2026-03-02", "end": "2026-04-30"})
    assert wider.tables[1].total["count"] == 3


def test_manager_activity_with_conversion(office, admin, data):
    rep = reports.build(office.Helen, "activity", PERIOD)
    people = rows(rep.tables[0])
    assert set(people) == {"Helen", "Sam", "Sara"}  # her division, zeros included
    sam = people["Sam"]
    assert (sam["calls"], sam["meetings"], sam["complaints"], sam["refusals"]) == (2, 1, 2, 1)
    assert (sam["leads"], sam["converted"], sam["lead_conversion"]) == (2, 1, 0.5)
    assert (sam["deals"], sam["won"], sam["lost"], sam["deal_conversion"]) == (4, 2, 1, 0.5)
    assert people["Sara"]["deal_conversion"] == 1.0 and people["Helen"]["calls"] == 0
    assert people["Helen"]["lead_conversion"] is None
    assert rep.tables[0].total["deals"] == 5


def test_each_report_is_a_few_queries_whatever_the_rows(office, admin, data, count_queries):
    for kind in reports.KINDS:
        reports.build(admin, kind, PERIOD)  # warm the chart and pipelines
        with count_queries() as statements:
            reports.build(admin, kind, PERIOD)
        assert len(statements) <= 8, (kind, statements)


def test_the_period_defaults_to_twelve_weeks_up_to_today(office, admin, data):
    at(30)  # 1 April 2026
    f = reports.filters(admin, {})
    assert (f.start.isoformat(), f.end.isoformat()) == ("2026-01-08", "2026-04-01")
    f = reports.filters(admin, {"start": "2026-03-02"})
    assert (f.start.isoformat(), f.end.isoformat()) == ("2026-03-02", "2026-04-01")
    f = reports.filters(admin, {"end": "2026-03-29"})
    assert f.start.isoformat() == "2026-01-05"
    assert [label for _at, label in reports.buckets(f)][:2] == ["5 Jan", "12 Jan"]


def test_scope_and_bad_filters(office, admin, data):
    with pytest.raises(NotFound):
        reports.build(office.Sam, "sales", {**PERIOD, "user_id": office.Sara.id})
    with pytest.raises(NotFound):
        reports.build(office.Helen, "sales", {**PERIOD, "user_id": office.Fred.id})
    only_sam = reports.build(office.Helen, "sales", {**PERIOD, "user_id": office.Sam.id})
    assert {r["group"] for r in only_sam.tables[1].rows} == {"Sam"}
    with pytest.raises(NotFound):
        reports.build(admin, "funnel", {**PERIOD, "pipeline_id": 999999})
    with pytest.raises(NotFound):
        reports.build(admin, "nonsense", PERIOD)
    for bad in ({"start": "2026-03-10", "end": "2026-03-01"}, {"start": "2020-01-01",
                                                                "end": "2026-01-01"},
                {"step": "day"}, {"group": "colour"}, {"start": "yesterday"},
                {"currency": "rubles"}):
        with pytest.raises(ValidationError):
            reports.build(admin, "sales", bad)


def test_pages_xlsx_and_pictures(app, office, data, client):
    assert client.sign_in(office.Helen.email).status_code == 302
    page = client.get("/clients/reports", query_string={**PERIOD, "kind": "funnel"})
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    assert 'data-testid="report-table-funnel"' in html and "80%" in html  # 4 of 5 went on
    sales = client.get("/clients/reports", query_string={**PERIOD, "kind": "sales",
                                                         "group": "client"})
    assert sales.status_code == 200 and "=Alpha" in sales.get_data(as_text=True)
    assert "Delta" not in sales.get_data(as_text=True)  # Fred's client
    assert "RUB1,000<" in sales.get_data(as_text=True)  # whole amounts without the kopecks
    assert "RUB500.50<" in sales.get_data(as_text=True)
    bad = client.get("/clients/reports", query_string={"kind": "sales", "start": "2026-03-10",
                                                       "end": "2026-03-01"})
    assert bad.status_code == 422 and "The end is before the start." in bad.get_data(as_text=True)
    assert client.get("/clients/reports/sales.xlsx",
                      query_string={"user_id": office.Fred.id}).status_code == 404

    xlsx = client.get("/clients/reports/sales.xlsx", query_string={**PERIOD, "group": "client"})
    assert xlsx.status_code == 200 and xlsx.mimetype == reports.XLSX_MIME
    wb = openpyxl.load_workbook(io.BytesIO(xlsx.data), read_only=True)
    assert len(wb.sheetnames) == 2
    sheet = list(wb[wb.sheetnames[1]].iter_rows(values_only=True))
    header = sheet[3]
    assert header[:4] == ("Client", "Currency", "Won deals", "Amount")
    body = {r[0]: r for r in sheet[4:] if r and r[0]}
    assert body["=Alpha"][1:4] == ("RUB", 1, Decimal("1000"))  # text, never a formula
    assert body["Beta"][3] == Decimal("500.5") and body["Beta"][6] == Decimal("500.5")
    assert body["Gamma"][1] == "EUR" and "Delta" not in body
    wb.close()

    funnel = client.get("/clients/reports/funnel.xlsx", query_string=PERIOD)
    sheet = list(openpyxl.load_workbook(io.BytesIO(funnel.data), read_only=True)
                 .active.iter_rows(values_only=True))
    assert [r[:2] for r in sheet[4:8]] == [("New", 5), ("Offer", 4), ("Contract", 3), ("Won", 3)]

    charts.clear_cache()
    png = client.get("/clients/reports/funnel/chart.png", query_string=PERIOD)
    assert png.status_code == 200 and png.mimetype == "image/png"
    assert png.data.startswith(b"\x89PNG\r\n\x1a\n")
    again = client.get("/clients/reports/funnel/chart.png", query_string=PERIOD,
                       headers={"If-None-Match": png.headers["ETag"]})
    assert again.status_code == 304
    for kind in ("sales", "reasons", "activity"):
        svg = client.get(f"/clients/reports/{kind}/chart.svg", query_string=PERIOD)
        assert svg.status_code == 200 and svg.mimetype == "image/svg+xml"
        assert b"<svg" in svg.data
    empty = client.get("/clients/reports/sales/chart.png", query_string={"start": "2020-01-01",
                                                                          "end": "2020-01-31"})
    assert empty.status_code == 200 and empty.data.startswith(b"\x89PNG")


def test_a_picture_is_the_same_for_the_same_data(office, admin, data):
    charts.clear_cache()
    first = charts.render(reports.build(admin, "sales", PERIOD).chart, "svg")
    assert charts.render(reports.build(admin, "sales", PERIOD).chart, "svg") == first
    assert charts.stats["hits"] >= 1
    tag = charts.etag(reports.build(admin, "sales", PERIOD).chart, "svg")
    at(21)  # D3 won in the fourth week: the picture changes
    clients.move_deal(admin, data["deals"][2].id, {"stage_id": data["pipeline"].stages[3].id})
    changed = reports.build(admin, "sales", PERIOD)
    assert next(r for r in changed.tables[0].rows if r["currency"] == "RUB")["b3"] == 5000
    assert charts.etag(changed.chart, "svg") != tag
