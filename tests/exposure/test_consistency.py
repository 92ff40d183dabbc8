"""One definition of "over limit" (issue 15): on SQLite and PostgreSQL, a portfolio with named
covers, discretionary limits (the customer's own and its segment's), unnamed-buyer ceilings
(met and not met), customers without any cover and two currencies gives the same count and
the same excess in the portfolio tile (`compute_kpis` and the rendered page), the customers
filter (query, page and API), the API's KPIs, the limit review (query and API), `cobro kpis
--json` and `cobro exposure --over-limit --json`. And the one-customer case of the issue:
no cover, 15,000 owed, over limit everywhere."""

from __future__ import annotations

import itertools
import json
import re
import shutil
from datetime import date, timedelta
from decimal import Decimal
from pathlib import Path

import pytest
from sqlalchemy import Engine
from typer.testing import CliRunner

from cobro.cli import app
from cobro.db import default_engine, transaction
from cobro.kpis import compute_kpis
from cobro.models import Customer, InsurerCover, Invoice
from cobro.rules.classify import apply_version
from cobro.users import create_api_token
from cobro.web.queries import CustomerFilters, limit_review, list_customers
from tests.helpers import RULES
from tests.helpers.web import logged_in

pytestmark = pytest.mark.usefixtures("cheap_password_hashing")

AS_OF = date(2026, 6, 30)
D = Decimal

EXPOSURE_YAML = """\
used: {not_yet_due: true, disputed: true, credit_notes: true}
discretionary:
  default: 0
  segments: {sme: 1000}
  customer_override: true
unnamed_buyers:
  - policy: "P-UNNAMED"
    ceiling: 2000
    applies_to: country in ["FR", "ES"]
    when: max_days_overdue <= 60
"""

#: account -> (currency, amount over limit) of the customers over limit
EXPECTED = {
    "N1": ("EUR", D(1000)),  # named cover 5,000, owes 6,000
    "D1": ("EUR", D(500)),  # no cover, own limit 3,000, owes 3,500
    "S1": ("EUR", D(500)),  # no cover, segment sme (1,000), DE: no unnamed ceiling, owes 1,500
    "U2": ("EUR", D(500)),  # FR, unnamed ceiling 2,000, owes 2,500
    "U3": ("EUR", D(1800)),  # FR but 90 days late: the ceiling's `when` fails, owes 1,800
    "Z1": ("USD", D(15000)),  # no cover at all, owes 15,000 USD
}


def _seed(engine: Engine) -> None:
    numbers = itertools.count(1)
    with transaction(engine) as s:

        def customer(account: str, country: str = "DE", **kw) -> Customer:  # type: ignore[no-untyped-def]
            c = Customer(
                account=account, name=f"Name {account}", country=country, language="en",
                timezone="Europe/Paris", **kw,
            )  # fmt: skip
            s.add(c)
            s.flush()
            return c

        def owes(c: Customer, amount: str, late: int = 10, currency: str = "EUR") -> None:
            n = next(numbers)
            s.add(
                Invoice(
                    number=f"{c.account}-{n}", customer_id=c.id,
                    issue_date=AS_OF - timedelta(days=late + 30),
                    due_date=AS_OF - timedelta(days=late), currency=currency,
                    amount=D(amount), open_amount=D(amount),
                )
            )  # fmt: skip
            s.flush()

        def cover(c: Customer, amount: str, currency: str = "EUR") -> None:
            s.add(
                InsurerCover(
                    insurer="allianz_trade", policy_id="P1", cover_id=f"CV-{c.account}",
                    customer_id=c.id, cover_type="permanent", granted_amount=D(amount),
                    currency=currency, status="granted", valid_from=AS_OF - timedelta(days=200),
                )
            )  # fmt: skip

        n1 = customer("N1")
        cover(n1, "5000")
        owes(n1, "6000")
        n2 = customer("N2")
        cover(n2, "5000")
        owes(n2, "4000")
        n3 = customer("N3")  # 1,500 owed less a 600 credit note: 900 within 1,000
        cover(n3, "1000")
        owes(n3, "1500")
        owes(n3, "-600")
        d1 = customer("D1", discretionary_limit=D(3000), discretionary_limit_currency="EUR")
        owes(d1, "3500")
        owes(customer("S1", segment="sme"), "1500")
        owes(customer("U1", "FR"), "1800")  # within the unnamed ceiling
        owes(customer("U2", "FR"), "2500")
        owes(customer("U3", "FR"), "1800", late=90)
        owes(customer("Z1", "US"), "15000", currency="USD")
        z2 = customer("Z2", "US")
        cover(z2, "20000", "USD")
        owes(z2, "10000", currency="USD")
        customer("Z3")  # nothing owed, nothing authorised
        owes(customer("C1"), "-200")  # a credit note only: nothing used


def _apply_rules(engine: Engine, tmp_path: Path) -> None:
    rules = tmp_path / "rules"
    shutil.copytree(RULES, rules)
    (rules / "exposure.yaml").write_text(EXPOSURE_YAML)
    apply_version(engine, rules, "tests", "consistency")


def _totals(pairs: list[tuple[str | None, Decimal]]) -> dict[str, tuple[int, Decimal]]:
    out: dict[str, tuple[int, Decimal]] = {}
    for currency, excess in pairs:
        n, total = out.get(currency or "", (0, D(0)))
        out[currency or ""] = (n + 1, total + excess)
    return out


def _expected() -> dict[str, tuple[int, Decimal]]:
    return _totals(list(EXPECTED.values()))


def _tile_numbers(html: str) -> dict[str, tuple[int, str]]:
    """currency -> (count, excess text) of the portfolio page's "Over their limit" tiles."""
    found = {}
    for section in html.split("<h2>")[1:]:
        currency = section.split("</h2>")[0].rsplit("(", 1)[-1].rstrip(")")  # "Euro (EUR)"
        m = re.search(
            r'Over their limit</div><div class="value">(\d+)</div>\s*'
            r'<div class="label">by ([^<]+?) ·',
            section,
        )
        if m:
            found[currency] = (int(m.group(1)), m.group(2))
    return found


def test_over_limit_is_the_same_everywhere(
    engine: Engine, use_database: str, tmp_path: Path
) -> None:
    _seed(engine)
    _apply_rules(engine, tmp_path)
    want = _expected()
    assert want == {"EUR": (5, D(4300)), "USD": (1, D(15000))}

    # the portfolio tile (KPIs) and the rendered page
    kpis = compute_kpis(engine, AS_OF)
    tiles = {c: (k.over_limit_customers, k.over_limit_excess) for c, k in kpis.currencies.items()}
    assert tiles == want
    listed = {c: [(d.account, d.excess) for d in k.over_limit] for c, k in kpis.currencies.items()}
    assert listed["EUR"][0] == ("U3", D(1800))  # most over first
    page = logged_in(engine, use_database, "viewer")
    html = page.get("/", params={"as_of": AS_OF.isoformat()}).text
    assert _tile_numbers(html) == {"EUR": (5, "€4,300.00"), "USD": (1, "$15,000.00")}

    # the customers filter: query, page, API (JSON and CSV)
    rows, total = list_customers(engine, AS_OF, CustomerFilters(over_limit=True))
    assert total == 6
    assert {r.account: (r.currency, r.over_by) for r in rows} == EXPECTED
    html = page.get("/customers", params={"over_limit": "1", "as_of": AS_OF.isoformat()}).text
    assert sorted(re.findall(r'<a href="/customers/([A-Z0-9]+)">', html)) == sorted(EXPECTED)

    from starlette.testclient import TestClient

    from cobro.settings import Settings
    from cobro.web.app import create_app

    token = create_api_token(engine, "viewer1", "tests")
    client = TestClient(
        create_app(Settings(database_url=use_database, web_secret_key="k" * 32), engine),
        headers={"Authorization": f"Bearer {token}"},
    )
    got = client.get(
        "/api/customers", params={"over_limit": "true", "as_of": AS_OF.isoformat()}
    ).json()
    assert got["total"] == 6
    assert _totals([(c["currency"], D(c["over_by"])) for c in got["customers"]]) == want
    api_kpis = client.get("/api/kpis", params={"as_of": AS_OF.isoformat()}).json()["currencies"]
    assert {
        c: (k["over_limit_customers"], D(k["over_limit_excess"])) for c, k in api_kpis.items()
    } == want

    # the limit review: query and API
    review = [r for r in limit_review(engine, AS_OF) if r.over_by is not None]
    assert {r.account: (r.currency, r.over_by) for r in review} == EXPECTED
    api_review = client.get("/api/reports/limit-review", params={"as_of": AS_OF.isoformat()}).json()
    assert _totals([(r["currency"], D(r["over_by"])) for r in api_review if r["over_by"]]) == want

    # the CLI: cobro kpis --json and cobro exposure --over-limit --json
    runner = CliRunner()
    out = runner.invoke(app, ["kpis", "--json", "--as-of", AS_OF.isoformat()])
    assert out.exit_code == 0, out.output
    cli_kpis = json.loads(out.stdout)["currencies"]
    assert {
        c: (k["over_limit_customers"], D(k["over_limit_excess"])) for c, k in cli_kpis.items()
    } == want
    out = runner.invoke(app, ["exposure", "--over-limit", "--json", "--as-of", AS_OF.isoformat()])
    assert out.exit_code == 0, out.output
    exposures = json.loads(out.stdout)["customers"]
    assert {e["account"]: (e["currency"], D(e["excess"])) for e in exposures} == EXPECTED
    assert all(e["over_limit"] for e in exposures)

    # the rule facts the risk classes read say the same (classification through the CLI)
    out = runner.invoke(app, ["classify", "--customer", "U3", "--json"])
    assert out.exit_code == 0, out.output
    facts = json.loads(out.stdout)["explanation"]
    assert "over_limit" in json.dumps(facts)


def test_one_customer_without_cover_owing_15000(
    engine: Engine, use_database: str, tmp_path: Path
) -> None:
    """The issue's case: `cobro kpis` said 0 customers over limit, `cobro exposure` 1."""
    with transaction(engine) as s:
        c = Customer(
            account="K1", name="Solo", country="GB", language="en", timezone="Europe/London"
        )
        s.add(c)
        s.flush()
        s.add(
            Invoice(
                number="K1-1", customer_id=c.id, issue_date=AS_OF - timedelta(days=40),
                due_date=AS_OF - timedelta(days=10), currency="EUR", amount=D(15000),
                open_amount=D(15000),
            )
        )  # fmt: skip
    runner = CliRunner()
    out = runner.invoke(app, ["kpis", "--json", "--as-of", AS_OF.isoformat()])
    assert out.exit_code == 0, out.output
    eur = json.loads(out.stdout)["currencies"]["EUR"]
    assert (eur["over_limit_customers"], D(eur["over_limit_excess"])) == (1, D(15000))
    out = runner.invoke(app, ["exposure", "--over-limit", "--json", "--as-of", AS_OF.isoformat()])
    (only,) = json.loads(out.stdout)["customers"]
    assert (only["account"], D(only["authorised"]), D(only["excess"])) == ("K1", 0, D(15000))
    out = runner.invoke(app, ["kpis", "--as-of", AS_OF.isoformat()])
    assert "€15,000.00" in out.stdout and "15000.0000" not in out.stdout
    rows, total = list_customers(default_engine(), AS_OF, CustomerFilters(over_limit=True))
    assert total == 1 and rows[0].over_by == D(15000)
