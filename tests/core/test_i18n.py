"""Every user-facing string is in the Russian catalogue, translated."""

from __future__ import annotations

import subprocess
import sys

from babel.messages.pofile import read_po

from tests.conftest import ROOT

PO = ROOT / "app" / "translations" / "ru" / "LC_MESSAGES" / "messages.po"


def test_catalogue_is_complete_and_current(tmp_path):
    pot = tmp_path / "messages.pot"
    subprocess.run([sys.executable, "-m", "babel.messages.frontend", "-q", "extract", "-F",
                    str(ROOT / "babel.cfg"), "-k", "_l", "-k", "lazy_gettext",
                    "-k", "lazy_pgettext:1c,2", "-o", str(pot), "."], check=True, cwd=ROOT)
    with pot.open("rb") as f:
        wanted = {m.id for m in read_po(f) if m.id}
    with PO.open("rb") as f:
        catalogue = read_po(f)
    have = {m.id: m for m in catalogue if m.id}
    missing = [w for w in wanted if w not in have]
    assert not missing, f"not in the Russian catalogue (make extract-messages): {missing[:10]}"
    untranslated = [m.id for m in have.values() if not m.string or
                    (isinstance(m.string, tuple) and not all(m.string)) or m.fuzzy]
    assert not untranslated, f"untranslated: {untranslated[:10]}"


def test_error_pages_speak_russian(client):
    client.form("/language", {"language": "ru", "next": "/login"})
    resp = client.get("/no-such-page")
    assert resp.status_code in (302, 404)
    page = client.get("/login").get_data(as_text=True)
    assert "Войти" in page and "Пароль" in page
    resp = client.form("/login", {"email": "nobody@example.test", "password": "x" * 12})
    assert "Неверный" in resp.get_data(as_text=True)
