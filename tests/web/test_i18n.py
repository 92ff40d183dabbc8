"""The dashboard in the team's language: the browser's Accept-Language before login, the
user's own choice (the header's switch, stored on the user) after; amounts, numbers and dates
as the language writes them; English by default."""

from __future__ import annotations

from datetime import date, timedelta
from decimal import Decimal

import pytest
from sqlalchemy import Engine, select
from starlette.testclient import TestClient

from cobro.db import transaction
from cobro.models import Customer, Invoice, User
from cobro.settings import Settings
from cobro.web.app import create_app
from tests.helpers.web import csrf_of, logged_in

pytestmark = pytest.mark.usefixtures("cheap_password_hashing")

AS_OF = date(2026, 6, 30)


def text_of(response) -> str:  # type: ignore[no-untyped-def]
    """The page as a reader sees its spaces (CLDR puts no-break spaces in amounts)."""
    return response.text.replace("\xa0", " ").replace("\u202f", " ")


def _seed(engine: Engine) -> None:
    with transaction(engine) as s:
        c = Customer(
            account="N1",
            name="Ferretería Núñez",
            country="ES",
            language="es",
            timezone="Europe/Madrid",
        )
        s.add(c)
        s.flush()
        s.add(
            Invoice(
                number="F-1",
                customer_id=c.id,
                issue_date=AS_OF - timedelta(days=60),
                due_date=AS_OF - timedelta(days=30),
                currency="EUR",
                amount=Decimal("1359.36"),
                open_amount=Decimal("1359.36"),
            )
        )


def test_before_login_the_browser_language_decides(engine: Engine, db_url: str) -> None:
    client = TestClient(create_app(Settings(database_url=db_url, web_secret_key="k" * 32), engine))
    english = client.get("/login")
    assert '<html lang="en">' in english.text and "User name" in english.text
    spanish = client.get("/login", headers={"Accept-Language": "es-ES,es;q=0.9,en;q=0.8"})
    assert '<html lang="es">' in spanish.text and "Iniciar sesión" in spanish.text
    assert "Contraseña" in spanish.text
    german = client.get("/login", headers={"Accept-Language": "pt-BR, de-CH;q=0.7, fr;q=0.5"})
    assert '<html lang="de">' in german.text and "Anmelden" in german.text
    french = client.get("/login", headers={"Accept-Language": "fr-CA"})
    assert "Mot de passe" in french.text
    nothing = client.get("/login", headers={"Accept-Language": "ja, zh;q=0.9"})
    assert '<html lang="en">' in nothing.text
    # the switch works before login too: a cookie, stronger than the header
    switched = client.post(
        "/language", data={"language": "fr", "next": "/login"}, follow_redirects=False
    )
    assert switched.status_code == 303 and switched.headers["location"] == "/login"
    assert "Mot de passe" in client.get("/login", headers={"Accept-Language": "es"}).text
    assert client.post("/language", data={"language": "xx"}).status_code == 422


def test_the_user_language_is_stored_and_formats_money_and_dates(
    engine: Engine, db_url: str
) -> None:
    _seed(engine)
    client = logged_in(engine, db_url)
    page = client.get("/customers/N1")
    assert "€1,359.36" in page.text and "2026-05-31" in page.text and "Invoices" in page.text
    token = csrf_of(client)
    done = client.post(
        "/language",
        data={"language": "es", "next": "/customers/N1", "csrf_token": token},
        follow_redirects=False,
    )
    assert done.status_code == 303 and done.headers["location"] == "/customers/N1"
    with engine.connect() as conn:
        assert conn.scalar(select(User.language).where(User.username == "collector1")) == "es"
    client.cookies.delete("cobro_lang")  # the stored choice is enough, whatever the browser
    page = text_of(client.get("/customers/N1", headers={"Accept-Language": "de"}))
    assert '<html lang="es">' in page
    assert "Facturas" in page and "Reclamación" in page
    assert "1.359,36 €" in page
    assert "31/5/2026" in page  # the invoice's due date, day first
    late = (date.today() - (AS_OF - timedelta(days=30))).days
    assert f"{late} días de retraso" in page
    home = text_of(client.get(f"/?as_of={AS_OF}"))
    assert "Cartera" in home and "Antigüedad de saldos" in home
    assert "1 factura pendiente" in home and "Vencido" in home
    german = client.post(
        "/language",
        data={"language": "de", "next": "/", "csrf_token": token},
        follow_redirects=False,
    )
    assert german.status_code == 303
    home = text_of(client.get(f"/?as_of={AS_OF}"))
    assert "1.359,36 €" in home and "30.06.2026" in home and "Forderungen" in home


def test_a_language_change_needs_the_csrf_token_once_logged_in(engine: Engine, db_url: str) -> None:
    client = logged_in(engine, db_url)
    refused = client.post("/language", data={"language": "es", "next": "/"})
    assert refused.status_code == 403
    with engine.connect() as conn:
        assert conn.scalar(select(User.language).where(User.username == "collector1")) is None
