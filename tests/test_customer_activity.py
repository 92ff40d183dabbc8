"""The customers' side counted once (`cobro.customer_activity`): the pure count, then the
portfolio page, `GET /api/customer-activity` and `cobro portal activity --json` giving the
same figures after a customer opened its link twice, acted on its page and replied by SMS,
on both databases."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from datetime import date, timedelta

import pytest
from sqlalchemy import Engine, select
from typer.testing import CliRunner

from cobro.cli import app
from cobro.customer_activity import count_activity, customer_activity
from cobro.db import default_engine, transaction
from cobro.models import Customer, TimelineEvent
from cobro.portal.links import create_link
from cobro.replies.incoming_sms import IncomingSms, record_incoming_sms
from cobro.settings import get_settings
from tests.helpers.web import logged_in
from tests.portal.test_pages import KEY, _client, _csrf, _customer, _path

TODAY = date(2026, 12, 3)


def test_the_count_of_a_periods_events() -> None:
    events = [
        (1, "portal.visited", "customer:A"),
        (1, "portal.visited", "customer:A"),
        (2, "portal.visited", "customer:B"),
        (1, "promise.recorded", "customer:A"),
        (1, "dunning.paused", "customer:A"),
        (1, "declaration.beyond_mep", "customer:A"),  # what followed from the promise
        (3, "promise.recorded", "collector1"),  # a collector's, not the customer's
        (2, "sms.reply", "customer"),
        (2, "sms.opted_out", "customer"),
        (2, "sms.opted_in", "customer"),  # neither an action nor an opt-out
        (4, "email.bounced", "system"),
    ]
    got = count_activity(events, TODAY - timedelta(days=29), TODAY)
    assert (got.visits, got.visitors, got.actions, got.acting) == (3, 2, 2, 1)
    assert (got.replies, got.opt_outs, got.bounces) == (1, 1, 1)
    assert got.to_json()["since"] == "2026-11-04"


@pytest.fixture
def customers(use_database: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[Engine]:
    monkeypatch.setenv("COBRO_TEMPORAL_ADDRESS", "127.0.0.1:1")
    monkeypatch.setenv("COBRO_WEB_SECRET_KEY", KEY)
    get_settings.cache_clear()
    engine = default_engine()
    with transaction(engine) as s:
        _customer(s, "A1", "Alfa Construcciones", "es", "FA-1", "1234.50")
        _customer(s, "B2", "Beta Logistics", "en", "FB-9", "999.00")
    with transaction(engine) as s:
        s.scalars(select(Customer).where(Customer.account == "B2")).one().phone = "+34600111222"
    yield engine
    get_settings.cache_clear()


def test_page_api_and_cli_count_the_same(
    customers: Engine, use_database: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    link = _path(create_link(customers, "A1", 60, "test").url)
    portal = _client(customers)
    csrf = _csrf(portal.get(link).text)
    portal.get(link)  # the same day: one visit
    done = portal.post(
        f"{link}/promise",
        data={
            "csrf_token": csrf,
            "until": (date.today() + timedelta(days=10)).isoformat(),
            "amount": "500",
        },
        follow_redirects=False,
    )
    assert done.status_code == 303, done.text
    said = record_incoming_sms(customers, IncomingSms("SM1", "+34600111222", "llamo mañana"))
    assert said == "reply"
    with customers.connect() as conn:
        assert conn.scalar(
            select(TimelineEvent.summary).where(TimelineEvent.kind == "portal.visited")
        )

    today = date.today()
    counted = customer_activity(customers, today)
    assert (counted.visits, counted.visitors, counted.actions, counted.acting) == (1, 1, 1, 1)
    assert counted.replies == 1 and counted.bounces == 0
    assert customer_activity(customers, today - timedelta(days=1)).visits == 0  # not yet

    dashboard = logged_in(customers, str(customers.url))
    api = dashboard.get("/api/customer-activity", params={"as_of": today.isoformat()}).json()
    assert api == counted.to_json()
    page = dashboard.get("/", params={"as_of": today.isoformat()}).text
    tiles = page[page.index('id="customer-activity"') :]
    figures = re.findall(r'<div class="value[^"]*">([^<]+)</div>', tiles)[:4]
    assert figures == ["1", "1", "1", "0"]

    monkeypatch.setenv("COBRO_DATABASE_URL", str(customers.url.render_as_string(False)))
    get_settings.cache_clear()
    cli = CliRunner().invoke(app, ["portal", "activity", "--json", "--as-of", today.isoformat()])
    assert cli.exit_code == 0, cli.output
    assert json.loads(cli.output) == counted.to_json()
    bad = CliRunner().invoke(app, ["portal", "activity", "--days", "0"])
    assert bad.exit_code == 1 and "--days" in bad.output
