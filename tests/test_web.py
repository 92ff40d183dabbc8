"""Dashboard pages render real data from both databases and escape what users typed."""

from __future__ import annotations

from datetime import date, timedelta
from decimal import Decimal

from sqlalchemy import Engine
from starlette.testclient import TestClient

from cobro.db import transaction
from cobro.models import Customer, Invoice, TimelineEvent
from cobro.settings import Settings
from cobro.web.app import create_app
from cobro.web.queries import portfolio

AS_OF = date(2026, 6, 30)


def _seed(engine: Engine) -> None:
    with transaction(engine) as s:
        c = Customer(
            account="C<1>",
            name="<script>alert(1)</script> SA",
            country="FR",
            language="fr",
            timezone="Europe/Paris",
        )
        s.add(c)
        s.flush()
        for number, days_late, open_amount in [
            ("F1", -5, "100.00"),  # not due
            ("F2", 10, "200.00"),  # 1-30
            ("F3", 45, "300.00"),  # 31-60
            ("F4", 200, "400.00"),  # >120
            ("F5", 20, "0.00"),  # paid
        ]:
            s.add(
                Invoice(
                    number=number,
                    customer_id=c.id,
                    issue_date=AS_OF - timedelta(days=days_late + 30),
                    due_date=AS_OF - timedelta(days=days_late),
                    currency="EUR",
                    amount=Decimal("500.00"),
                    open_amount=Decimal(open_amount),
                )
            )
        s.add(TimelineEvent(customer_id=c.id, kind="note", summary="<b>hello</b>"))


def test_portfolio_aging_buckets(engine: Engine) -> None:
    _seed(engine)
    p = portfolio(engine, AS_OF)
    assert p.customers == 1 and p.open_invoices == 4
    assert p.open_by_currency == {"EUR": Decimal("1000.0000")}
    assert p.overdue_by_currency == {"EUR": Decimal("900.0000")}
    assert p.aging["EUR"] == {
        "not due": Decimal("100.0000"),
        "1-30": Decimal("200.0000"),
        "31-60": Decimal("300.0000"),
        ">120": Decimal("400.0000"),
    }


def test_pages_render_and_escape(engine: Engine, db_url: str) -> None:
    _seed(engine)
    client = TestClient(create_app(Settings(database_url=db_url), engine))
    home = client.get(f"/?as_of={AS_OF}")
    assert home.status_code == 200 and "€1,000.00" in home.text
    listing = client.get("/customers?q=script")
    assert listing.status_code == 200
    assert "<script>alert" not in listing.text and "&lt;script&gt;" in listing.text
    page = client.get("/customers/C%3C1%3E")
    assert page.status_code == 200
    assert "<b>hello</b>" not in page.text and "&lt;b&gt;hello" in page.text
    assert "CobroCustomerId" in page.text
    assert client.get("/customers/nobody").status_code == 404
    data = client.get(f"/api/portfolio?as_of={AS_OF}").json()
    assert data["overdue_by_currency"] == {"EUR": "900.0000"}
