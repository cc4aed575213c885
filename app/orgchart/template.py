"""The seven-division template of the method, in English and Russian."""

from __future__ import annotations

from collections.abc import Mapping

from app.core.models import User
from app.orgchart import services
from app.orgchart.schemas import TemplateIn

# (number, (en, ru), [(department en, ru, [(post en, ru), ...]), ...]); shown in this order.
DIVISIONS = [
    ("7", ("Executive", "Административное отделение"), [
        (("Owner's office", "Офис владельца"), [("Owner", "Владелец")]),
        (("Executive director's office", "Офис исполнительного директора"),
         [("Chief of staff", "Руководитель аппарата"), ("Assistant", "Помощник")]),
        (("Management of divisions", "Управление отделениями"),
         [("Deputy executive director", "Заместитель исполнительного директора")]),
    ]),
    ("1", ("Communications", "Отделение построения"), [
        (("Routing and personnel", "Отдел маршрутизации и персонала"), [("HR officer", "Менеджер по персоналу")]),
        (("Communications", "Отдел коммуникаций"), [("Office manager", "Офис-менеджер")]),
        (("Inspections and reports", "Отдел инспекций и отчётов"), [("Inspector", "Инспектор")]),
    ]),
    ("2", ("Dissemination", "Отделение распространения"), [
        (("Promotion and marketing", "Отдел продвижения и маркетинга"), [("Marketer", "Маркетолог")]),
        (("Publications", "Отдел публикаций"), [("Editor", "Редактор")]),
        (("Sales", "Отдел продаж"), [("Sales manager", "Менеджер по продажам")]),
    ]),
    ("3", ("Finance", "Финансовое отделение"), [
        (("Income", "Отдел доходов"), [("Invoicing officer", "Специалист по счетам")]),
        (("Disbursements", "Отдел выплат"), [("Cashier", "Кассир")]),
        (("Records and assets", "Отдел учёта и активов"), [("Accountant", "Бухгалтер")]),
    ]),
    ("4", ("Production", "Производственное отделение"), [
        (("Planning and supply", "Отдел планирования и снабжения"), [("Buyer", "Закупщик")]),
        (("Production", "Производственный отдел"), [("Production specialist", "Специалист производства")]),
        (("Quality of output", "Отдел качества продукции"), [("Quality controller", "Контролёр качества")]),
    ]),
    ("5", ("Qualifications", "Отделение квалификации"), [
        (("Inspection of product", "Отдел проверки продукта"), [("Product inspector", "Инспектор продукта")]),
        (("Training", "Отдел обучения"), [("Trainer", "Тренер")]),
        (("Correction", "Отдел исправлений"), [("Correction officer", "Специалист по исправлениям")]),
    ]),
    ("6", ("Public relations", "Отделение по работе с общественностью"), [
        (("Public relations", "Отдел по связям с общественностью"), [("PR manager", "PR-менеджер")]),
        (("New clients", "Отдел новых клиентов"), [("Client acquisition manager", "Менеджер по привлечению клиентов")]),
        (("Partners and branches", "Отдел партнёров и филиалов"), [("Partnership manager", "Менеджер по партнёрам")]),
    ]),
]
# The product (ЦКП) each division exists to produce, for its head post.
PRODUCTS = {
    "7": ("A viable, expanding company", "Жизнеспособная, расширяющаяся компания"),
    "1": ("Staff in place, trained, with communications that flow", "Укомплектованный, обученный персонал и работающие коммуникации"),
    "2": ("Products and services sold and paid for", "Проданные и оплаченные продукты и услуги"),
    "3": ("Income received, funds allocated, bills paid, assets kept", "Полученный доход, распределённые фонды, оплаченные счета, сохранённые активы"),
    "4": ("Products and services delivered on time and in quality", "Своевременно и качественно произведённые продукты и услуги"),
    "5": ("Product checked, staff qualified, errors corrected", "Проверенный продукт, квалифицированный персонал, исправленные ошибки"),
    "6": ("New clients and partners brought in", "Привлечённые новые клиенты и партнёры"),
}
HEAD = {"division": ("Head of the %s division", "Руководитель: %s"),
        "department": ("Head of %s", "Начальник: %s")}


def apply(actor: User, data: Mapping):
    """Create a company with the seven divisions, their departments, head posts and usual
    posts; names are in the chosen language and can all be edited afterwards."""
    values = services.load(TemplateIn(), data)
    i = 0 if values["language"] == "en" else 1
    company = services.create_unit(actor, {"kind": "company", "name": values["company"]})
    services.create_post(actor, {"unit_id": company.id, "is_head": True, "title": (
        "Executive director", "Исполнительный директор")[i], "product": PRODUCTS["7"][i]})
    for position, (number, names, departments) in enumerate(DIVISIONS):
        division = services.create_unit(actor, {
            "parent_id": company.id, "kind": "division", "name": names[i], "number": number,
            "position": position})
        services.create_post(actor, {"unit_id": division.id, "is_head": True,
                                     "title": HEAD["division"][i] % names[i],
                                     "product": PRODUCTS[number][i]})
        for dpos, (dnames, posts) in enumerate(departments):
            dept = services.create_unit(actor, {
                "parent_id": division.id, "kind": "department", "name": dnames[i],
                "position": dpos})
            services.create_post(actor, {"unit_id": dept.id, "is_head": True,
                                         "title": HEAD["department"][i] % dnames[i]})
            for ppos, ptitles in enumerate(posts):
                services.create_post(actor, {"unit_id": dept.id, "title": ptitles[i],
                                             "position": ppos + 1})
    return company
