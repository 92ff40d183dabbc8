"""Dashboard pages render real data from both databases and escape what users typed."""

from __future__ import annotations

from datetime import date, timedelta
from decimal import Decimal

import pytest
from sqlalchemy import Engine, func, select
from starlette.testclient import TestClient

from cobro.db import transaction
from cobro.models import Customer, DunningPause, Invoice, TimelineEvent
from cobro.settings import Settings
from cobro.users import create_user
from cobro.web.app import create_app
from cobro.web.queries import portfolio
from tests.helpers.web import csrf_of, logged_in

pytestmark = pytest.mark.usefixtures("cheap_password_hashing")

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


def test_pages_need_a_login(engine: Engine, db_url: str) -> None:
    client = TestClient(create_app(Settings(database_url=db_url, web_secret_key="k" * 32), engine))
    page = client.get("/customers?q=x", follow_redirects=False)
    assert page.status_code == 303 and page.headers["location"] == "/login?next=/customers%3Fq%3Dx"
    assert client.get("/api/portfolio").status_code == 401
    assert client.get("/static/cobro.css").status_code == 200
    bad = client.post("/login", data={"username": "x", "password": "y", "csrf_token": "z"})
    assert bad.status_code == 403, "a login form without its CSRF cookie is refused"
    token = client.get("/login").cookies.get("cobro_login_csrf") or client.cookies.get(
        "cobro_login_csrf"
    )
    nul = client.post("/login", data={"username": "a\x00", "password": "y", "csrf_token": token})
    assert nul.status_code == 401


def test_wrong_password_and_open_redirect(engine: Engine, db_url: str) -> None:
    create_user(engine, "ann", "correct horse battery", "viewer")
    client = TestClient(create_app(Settings(database_url=db_url, web_secret_key="k" * 32), engine))
    form = client.get("/login")
    token = client.cookies.get("cobro_login_csrf")
    wrong = client.post("/login", data={"username": "ann", "password": "nope", "csrf_token": token})
    assert wrong.status_code == 401 and "Wrong user name or password" in wrong.text
    ok = client.post(
        "/login",
        data={
            "username": "ann",
            "password": "correct horse battery",
            "csrf_token": token,
            "next": "//evil.example/",
        },
        follow_redirects=False,
    )
    assert ok.status_code == 303 and ok.headers["location"] == "/"
    assert form.status_code == 200


def test_pages_render_and_escape(engine: Engine, db_url: str) -> None:
    _seed(engine)
    client = logged_in(engine, db_url)
    home = client.get(f"/?as_of={AS_OF}")
    assert home.status_code == 200 and "€1,000.00" in home.text
    assert "<svg" in home.text and "Aging balance" in home.text
    listing = client.get("/customers?q=script")
    assert listing.status_code == 200
    assert "<script>alert" not in listing.text and "&lt;script&gt;" in listing.text
    page = client.get("/customers/C%3C1%3E")
    assert page.status_code == 200
    assert "<b>hello</b>" not in page.text and "&lt;b&gt;hello" in page.text
    assert "CobroCustomerId" in page.text
    assert 'id="exposure"' in page.text and "Authorised" in page.text
    assert client.get("/customers/nobody").status_code == 404
    for path in ("/alerts", "/tasks", "/reports", f"/reports?as_of={AS_OF}"):
        assert client.get(path).status_code == 200, path
    assert client.get("/reports?as_of=0001-01-01").status_code == 422
    data = client.get(f"/api/portfolio?as_of={AS_OF}").json()
    assert data["overdue_by_currency"] == {"EUR": "900.0000"}


def test_pause_from_the_customer_file_is_on_the_timeline(engine: Engine, db_url: str) -> None:
    _seed(engine)
    client = logged_in(engine, db_url)
    token = csrf_of(client, "/customers/C%3C1%3E")
    forged = client.post(
        "/customers/C%3C1%3E/pause", data={"reason": "forged"}, follow_redirects=False
    )
    assert forged.status_code == 403
    done = client.post(
        "/customers/C%3C1%3E/pause",
        data={"reason": "dispute <call> Monday", "csrf_token": token},
        follow_redirects=False,
    )
    assert done.status_code == 303
    assert "?notice=paused&notice=unreachable&n.address=" in done.headers["location"]
    assert "dispute" not in done.headers["location"], "keys in the URL, never the text"
    page = client.get(done.headers["location"])
    assert '<p class="notice" role="status">dunning paused (recorded; the' in page.text
    assert "Paused" in page.text and "dispute &lt;call&gt; Monday" in page.text
    with engine.connect() as conn:
        actor = conn.scalar(
            select(TimelineEvent.actor).where(TimelineEvent.kind == "dunning.paused")
        )
    assert actor == "collector1"
    resumed = client.post(
        "/customers/C%3C1%3E/resume", data={"csrf_token": token}, follow_redirects=False
    )
    assert resumed.status_code == 303
    assert "Active" in client.get("/customers/C%3C1%3E").text


def test_a_viewer_cannot_pause(engine: Engine, db_url: str) -> None:
    _seed(engine)
    client = logged_in(engine, db_url, "viewer")
    page = client.get("/customers/C%3C1%3E")
    assert "Pause dunning" not in page.text and "can look but not pause" in page.text
    token = csrf_of(client, "/customers/C%3C1%3E")
    refused = client.post("/customers/C%3C1%3E/pause", data={"reason": "x", "csrf_token": token})
    assert refused.status_code == 403
    with engine.connect() as conn:
        assert conn.scalar(select(func.count()).select_from(DunningPause)) == 0


def test_customer_list_filters(engine: Engine) -> None:
    from cobro.models import InsurerCover, RiskAssessment
    from cobro.web.queries import CustomerFilters, list_customers

    with transaction(engine) as s:
        rows = {}
        for account, country, segment, limit in [
            ("A", "FR", "retail", Decimal("100")),
            ("B", "ES", "retail", None),
            ("C", "FR", "industry", None),
        ]:
            c = Customer(
                account=account,
                name=f"Name {account}",
                country=country,
                segment=segment,
                language="fr",
                timezone="Europe/Paris",
                discretionary_limit=limit,
            )
            s.add(c)
            s.flush()
            rows[account] = c.id
            s.add(
                Invoice(
                    number=f"I-{account}",
                    customer_id=c.id,
                    issue_date=AS_OF - timedelta(days=40),
                    due_date=AS_OF - timedelta(days=10),
                    currency="EUR",
                    amount=Decimal("300.00"),
                    open_amount=Decimal("300.00"),
                )
            )
        s.add(
            InsurerCover(
                insurer="allianz_trade",
                cover_id="CV1",
                policy_id="P1",
                cover_type="permanent",
                customer_id=rows["B"],
                granted_amount=Decimal("1000"),
                currency="EUR",
                status="active",
                valid_from=AS_OF - timedelta(days=100),
            )
        )
        for cls in ("low", "high"):  # the latest assessment counts
            s.add(
                RiskAssessment(
                    customer_id=rows["A"], risk_class=cls, ruleset_hash="h", explanation={}
                )
            )

    from cobro.exposure import DEFAULT_RULES  # covers in force + the customer's own limit

    def listed(filters: CustomerFilters, page: int = 1, per_page: int = 50):  # type: ignore[no-untyped-def]
        return list_customers(engine, AS_OF, filters, page, per_page, DEFAULT_RULES)

    def accounts(**kw: object) -> list[str]:
        found, total = listed(CustomerFilters(**kw))  # type: ignore[arg-type]
        assert total == len(found)
        return [r.account for r in found]

    assert accounts() == ["A", "B", "C"]
    assert accounts(country="fr") == ["A", "C"]
    assert accounts(segment="retail") == ["A", "B"]
    assert accounts(risk_class="high") == ["A"]
    assert accounts(risk_class="low") == []
    # over limit: A (300 used, own limit 100) and C (no cover, no limit: 300 over nothing)
    assert accounts(over_limit=True) == ["A", "C"]
    assert accounts(over_limit=True, country="fr", segment="industry") == ["C"]
    # paged: the total counts every match; past the end, empty
    found, total = listed(CustomerFilters(over_limit=True), 2, 1)
    assert ([r.account for r in found], total) == (["C"], 2)
    assert listed(CustomerFilters(over_limit=True), 3, 1) == ([], 2)
    found, total = listed(CustomerFilters(), 2, 2)
    assert ([r.account for r in found], total) == (["C"], 3)
    assert accounts(q="name b") == ["B"]
    a, b, c = listed(CustomerFilters())[0]
    assert (a.currency, a.outstanding, a.total_limit, a.over_by) == (
        "EUR",
        Decimal("300.0000"),
        Decimal("100.0000"),
        Decimal("200.0000"),
    )
    assert (b.total_limit, b.over_by) == (Decimal("1000.0000"), None)
    assert (c.total_limit, c.over_by) == (Decimal(0), Decimal("300.0000"))


def test_forecast_one_chart_per_currency(engine: Engine, db_url: str) -> None:
    """The reports page draws one forecast chart per currency (EUR and USD never share an
    axis) and spreads an overdue invoice over the weeks (no history: the portfolio's)."""
    with transaction(engine) as s:
        for account, currency in (("E1", "EUR"), ("U1", "USD")):
            c = Customer(account=account, name=account, country="FR", language="fr", timezone="UTC")
            s.add(c)
            s.flush()
            for k, due_in in enumerate((-40, 5, 20)):
                s.add(
                    Invoice(
                        number=f"{account}-{k}",
                        customer_id=c.id,
                        issue_date=AS_OF - timedelta(days=70),
                        due_date=AS_OF + timedelta(days=due_in),
                        currency=currency,
                        amount=Decimal("100.00"),
                        open_amount=Decimal("100.00"),
                    )
                )
    client = logged_in(engine, db_url)
    page = client.get(f"/reports?as_of={AS_OF}")
    assert page.status_code == 200
    assert 'id="forecast-EUR"' in page.text and 'id="forecast-USD"' in page.text
    assert "Expected cash-in, EUR" in page.text and "not expected" in page.text
    data = client.get("/api/forecast", params={"as_of": AS_OF}).json()
    assert set(data["by_currency"]) == {"EUR", "USD"} and set(data["not_expected"]) == {
        "EUR",
        "USD",
    }
    assert data["week_starts"][0] == (AS_OF + timedelta(days=1)).isoformat()
