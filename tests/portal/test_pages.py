"""The customer's self-service page through the real app, on both databases: a link opens
its own customer only; a tampered, expired or revoked link is refused; actions need the
page's CSRF token; a burst on one link is rate-limited; each action is the collector's,
done by `customer:<account>` (timeline, tasks); `cobro portal link|revoke`."""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator
from datetime import date, timedelta
from decimal import Decimal

import pytest
from sqlalchemy import Engine, select, update
from starlette.testclient import TestClient
from temporalio.testing import WorkflowEnvironment
from typer.testing import CliRunner

from cobro.cli import app
from cobro.db import default_engine, transaction
from cobro.dunning.signals import SIGNAL, workflow_id
from cobro.models import Customer, DunningPause, Invoice, PortalLink, Task, TimelineEvent
from cobro.portal.links import create_link, parse_token, portal_key, revoke
from cobro.settings import Settings, get_settings
from cobro.types import utcnow
from cobro.web.app import create_app

KEY = "k" * 32


def _customer(s, account: str, name: str, language: str, number: str, amount: str) -> None:  # type: ignore[no-untyped-def]
    c = Customer(
        account=account, name=name, country="ES", language=language, timezone="Europe/Madrid"
    )
    s.add(c)
    s.flush()
    s.add(
        Invoice(
            number=number,
            customer_id=c.id,
            issue_date=date.today() - timedelta(days=60),
            due_date=date.today() - timedelta(days=12),
            currency="EUR",
            amount=Decimal(amount),
            open_amount=Decimal(amount),
        )
    )


@pytest.fixture
def seeded(use_database: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[Engine]:
    monkeypatch.setenv("COBRO_TEMPORAL_ADDRESS", "127.0.0.1:1")
    monkeypatch.setenv("COBRO_WEB_SECRET_KEY", KEY)
    get_settings.cache_clear()
    engine = default_engine()
    with transaction(engine) as s:
        _customer(s, "A1", "Alfa Construcciones", "es", "FA-1", "1234.50")
        _customer(s, "B2", "Beta Logistics", "en", "FB-9", "999.00")
    yield engine
    get_settings.cache_clear()


def _client(engine: Engine, **extra: object) -> TestClient:
    settings = Settings(database_url=str(engine.url), web_secret_key=KEY, **extra)  # type: ignore[arg-type]
    return TestClient(create_app(settings, engine))


def _path(url: str) -> str:
    return url[url.index("/p/") :]


def _csrf(page: str) -> str:
    match = re.search(r'name="csrf_token" value="([^"]+)"', page)
    assert match
    return match.group(1)


def test_a_link_shows_its_customer_only(seeded: Engine) -> None:
    link_a = _path(create_link(seeded, "A1", 60, "test").url)
    client = _client(seeded)
    page = client.get(link_a)
    assert page.status_code == 200
    assert 'lang="es"' in page.text and "Facturas pendientes" in page.text
    assert "Alfa Construcciones" in page.text and "FA-1" in page.text
    assert "1.234,50" in page.text
    assert "Beta" not in page.text and "FB-9" not in page.text and "999" not in page.text
    assert "default-src 'self'" in page.headers["content-security-policy"]
    assert "<script" not in page.text
    # another customer's invoice cannot be disputed through A's link
    refused = client.post(
        f"{link_a}/dispute",
        data={"csrf_token": _csrf(page.text), "invoice": "FB-9", "reason": "other"},
    )
    assert refused.status_code == 404
    with seeded.connect() as conn:
        disputed = conn.scalar(select(Invoice.disputed).where(Invoice.number == "FB-9"))
    assert disputed is False
    statement = client.get(f"{link_a}/statement")
    assert (
        statement.status_code == 200 and "FA-1" in statement.text and "FB-9" not in statement.text
    )


def test_tampered_expired_and_revoked_links_are_refused(seeded: Engine) -> None:
    made = create_link(seeded, "A1", 60, "test")
    good = _path(made.url)
    client = _client(seeded)
    assert client.get(good).status_code == 200
    link_id, nonce, sig = good.removeprefix("/p/").split(".")
    other = create_link(seeded, "B2", 60, "test")
    tampered = [
        f"/p/{link_id}.{nonce}.{sig[:-1]}{'A' if sig[-1] != 'A' else 'B'}",  # signature
        f"/p/{other.id}.{nonce}.{sig}",  # another link's id under this signature
        f"/p/{link_id}.{nonce}",
        "/p/garbage",
        f"/p/{link_id}.{'x' * len(nonce)}.{sig}",
    ]
    for path in tampered:
        answer = client.get(path)
        assert answer.status_code == 404, path
        assert "Alfa" not in answer.text and "FA-1" not in answer.text
    with transaction(seeded) as s:
        s.execute(
            update(PortalLink)
            .where(PortalLink.id == made.id)
            .values(expires_at=utcnow() - timedelta(seconds=1))
        )
    assert client.get(good).status_code == 404
    fresh = create_link(seeded, "A1", 60, "test")
    assert client.get(_path(fresh.url)).status_code == 200
    assert revoke(seeded, fresh.id) == "A1"
    refused = client.get(_path(fresh.url))
    assert refused.status_code == 404 and "FA-1" not in refused.text
    # a key other than the one that signed it: refused before the database is read
    with pytest.raises(Exception, match="bad signature"):
        parse_token(b"another key", _path(fresh.url).removeprefix("/p/"))
    assert (
        parse_token(portal_key(get_settings()), _path(fresh.url).removeprefix("/p/"))[0] == fresh.id
    )


def test_actions_need_the_pages_csrf_token(seeded: Engine) -> None:
    link = _path(create_link(seeded, "A1", 60, "test").url)
    client = _client(seeded)
    page = client.get(link)
    for data in ({}, {"csrf_token": "forged"}):
        refused = client.post(f"{link}/plan", data={**data, "text": "x"})
        assert refused.status_code == 403
    stranger = _client(seeded)  # no cookie: the token alone is not enough
    refused = stranger.post(f"{link}/plan", data={"csrf_token": _csrf(page.text), "text": "x"})
    assert refused.status_code == 403
    with seeded.connect() as conn:
        assert conn.scalar(select(Task.id)) is None


def test_a_burst_on_one_link_is_rate_limited(seeded: Engine) -> None:
    link = _path(create_link(seeded, "A1", 60, "test").url)
    other = _path(create_link(seeded, "B2", 60, "test").url)
    client = _client(seeded, portal_requests_per_minute=5)
    assert [client.get(link).status_code for _ in range(5)] == [200] * 5
    limited = client.get(link)
    assert limited.status_code == 429 and int(limited.headers["retry-after"]) >= 1
    assert "FA-1" not in limited.text
    assert client.get(other).status_code == 200, "the limit is per link"
    with seeded.connect() as conn:
        uses, last = conn.execute(
            select(PortalLink.uses, PortalLink.last_used_at).where(
                PortalLink.id == int(link.split("/")[2].split(".")[0])
            )
        ).one()
    assert uses == 5 and last is not None


def test_each_action_is_the_collectors_done_by_the_customer(seeded: Engine) -> None:
    link = _path(create_link(seeded, "A1", 60, "test").url)
    client = _client(seeded)
    first = client.get(link).text
    csrf = _csrf(first)
    assert 'id="plan-card"' in first and 'id="plan-instalments"' not in first
    today = date.today()

    bad = client.post(f"{link}/promise", data={"csrf_token": csrf, "until": "", "amount": "10"})
    assert bad.status_code == 422 and "Indique la fecha" in bad.text
    too_far = (today + timedelta(days=90)).isoformat()
    bad = client.post(f"{link}/promise", data={"csrf_token": csrf, "until": too_far, "amount": "1"})
    assert bad.status_code == 422

    steps = [
        ("paid", {"paid_on": today.isoformat(), "amount": "1.234,50", "reference": "TRF-77"}),
        ("promise", {"until": (today + timedelta(days=10)).isoformat(), "amount": "500"}),
        ("plan", {"instalments": "3", "text": "tres plazos"}),
        ("dispute", {"invoice": "FA-1", "reason": "wrong_amount", "text": "precio pactado 1.000"}),
    ]
    for kind, data in steps:
        done = client.post(
            f"{link}/{kind}", data={"csrf_token": csrf, **data}, follow_redirects=False
        )
        assert done.status_code == 303, (kind, done.text)
        shown = client.get(done.headers["location"])
        assert 'id="notice"' in shown.text, kind
        if kind == "plan":  # the agreed plan replaces the request form, in Spanish
            assert 'id="plan-card"' not in shown.text
            assert shown.text.count("411,50\xa0€") == 3, shown.text
            assert "Acordado: 3 plazos" in shown.text

    with seeded.connect() as conn:
        events = conn.execute(
            select(TimelineEvent.kind, TimelineEvent.actor).order_by(TimelineEvent.id)
        ).all()
        tasks = conn.execute(select(Task.kind, Task.note).order_by(Task.id)).all()
        pauses = conn.execute(select(DunningPause.kind, DunningPause.until)).all()
        disputed = conn.scalar(select(Invoice.disputed).where(Invoice.number == "FA-1"))
    assert [tuple(e) for e in events] == [
        ("portal.visited", "customer:A1"),  # once a day, however many requests
        ("dunning.paused", "customer:A1"),
        ("promise.recorded", "customer:A1"),
        ("plan.requested", "customer:A1"),
        ("plan.approved", "rules"),  # 3 x 411.50 EUR: within the standard policy's limits
        ("dispute.opened", "customer:A1"),
    ]
    ours = [t for t in tasks if t.kind != "declaration"]  # the promise's insurer note aside
    assert [t.kind for t in ours] == ["check_payment", "dispute"]
    assert "TRF-77" in ours[0].note and "1234.50" in ours[0].note
    paused_until = next(p.until for p in pauses if p.kind == "pause")
    assert paused_until is not None and paused_until >= today + timedelta(days=5)
    assert disputed is True


def test_the_pay_online_button_follows_the_template(seeded: Engine) -> None:
    link = _path(create_link(seeded, "A1", 60, "test").url)
    client = _client(
        seeded, portal_pay_url_template="https://pay.example.com/c/{account}?amount={amount}"
    )
    page = client.get(link).text
    assert 'href="https://pay.example.com/c/A1?amount=1234.50"' in page
    assert 'id="pay-online"' not in _client(seeded).get(link).text


def test_cli_link_and_revoke(seeded: Engine) -> None:
    made = CliRunner().invoke(app, ["portal", "link", "--customer", "A1", "--days", "7", "--json"])
    assert made.exit_code == 0, made.output
    import json

    out = json.loads(made.stdout)
    assert out["customer"] == "A1" and "/p/" in out["url"]
    assert _client(seeded).get(_path(out["url"])).status_code == 200
    unknown = CliRunner().invoke(app, ["portal", "link", "--customer", "ZZ"])
    assert unknown.exit_code == 1 and unknown.output.strip() == "error: no customer 'ZZ'"
    gone = CliRunner().invoke(app, ["portal", "revoke", str(out["id"])])
    assert gone.exit_code == 0 and gone.output.strip() == f"portal link {out['id']} of A1 revoked"
    assert _client(seeded).get(_path(out["url"])).status_code == 404
    again = CliRunner().invoke(app, ["portal", "revoke", str(out["id"])])
    assert again.exit_code == 1


@pytest.mark.temporal
async def test_a_customer_action_signals_its_workflow(
    seeded: Engine, dev_server_env: WorkflowEnvironment, monkeypatch: pytest.MonkeyPatch
) -> None:
    target = dev_server_env.client.service_client.config.target_host
    monkeypatch.setenv("COBRO_TEMPORAL_ADDRESS", target)
    get_settings.cache_clear()
    account = f"P-{uuid.uuid4().hex[:8]}"  # the dev server lives for the session
    with transaction(seeded) as s:
        _customer(s, account, "Gamma", "es", f"FG-{account}", "300.00")
    link = _path(create_link(seeded, account, 60, "test").url)
    settings = Settings(database_url=str(seeded.url), web_secret_key=KEY, temporal_address=target)
    client = TestClient(create_app(settings, seeded))
    csrf = _csrf(client.get(link).text)
    until = (date.today() + timedelta(days=7)).isoformat()
    done = client.post(
        f"{link}/promise",
        data={"csrf_token": csrf, "until": until, "amount": "300"},
        follow_redirects=False,
    )
    assert done.status_code == 303, done.text
    done = client.post(
        f"{link}/plan",
        data={"csrf_token": csrf, "instalments": "2", "text": "2 plazos"},
        follow_redirects=False,
    )
    assert done.status_code == 303, done.text
    assert done.headers["location"].endswith("?done=plan_approved")  # 2 x 150 EUR: by rule
    again = client.post(f"{link}/plan", data={"csrf_token": csrf, "instalments": "3"})
    assert again.status_code == 409 and "Ya tiene un plan de pagos." in again.text
    history = await dev_server_env.client.get_workflow_handle(workflow_id(account)).fetch_history()
    signals = [
        e.workflow_execution_signaled_event_attributes
        for e in history.events
        if e.HasField("workflow_execution_signaled_event_attributes")
    ]
    assert [s.signal_name for s in signals] == [SIGNAL, SIGNAL]
    assert (
        history.events[0].workflow_execution_started_event_attributes.workflow_type.name
        == "Dunning"
    )


@pytest.mark.parametrize(
    ("typed", "read"),
    [
        ("1609.36", "1609.36"),
        ("1609,36", "1609.36"),
        ("1.609,36", "1609.36"),
        ("1,609.36", "1609.36"),
        (" 12 ", "12"),
    ],
)
def test_amounts_as_customers_type_them(typed: str, read: str) -> None:
    from cobro.portal.actions import typed_amount

    assert typed_amount(typed) == read


def _series(client: TestClient, name: str, **labels: str) -> float:
    text = client.get("/metrics").text
    wanted = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
    match = re.search(rf"^{name}_total\{{{re.escape(wanted)}\}} (\S+)$", text, re.M)
    return float(match.group(1)) if match else 0.0


def test_pages_and_actions_are_counted_on_the_dashboards_metrics(seeded: Engine) -> None:
    """`cobro_portal_pages` and `cobro_portal_actions` (issue 17's "portal actions"):
    shown, refused, done, approved by rule, invalid; never an account or a token."""
    link = _path(create_link(seeded, "A1", 60, "test").url)
    client = _client(seeded)
    pages, actions = "cobro_portal_pages", "cobro_portal_actions"
    before = {
        "shown": _series(client, pages, outcome="shown"),
        "refused": _series(client, pages, outcome="refused"),
        "invalid": _series(client, actions, action="promise", outcome="invalid"),
        "done": _series(client, actions, action="promise", outcome="done"),
        "approved": _series(client, actions, action="plan", outcome="approved"),
        "forged": _series(client, actions, action="dispute", outcome="refused"),
    }
    csrf = _csrf(client.get(link).text)
    client.get("/p/garbage")
    until = (date.today() + timedelta(days=10)).isoformat()
    client.post(f"{link}/promise", data={"csrf_token": csrf, "until": "", "amount": "10"})
    client.post(f"{link}/promise", data={"csrf_token": csrf, "until": until, "amount": "50"})
    client.post(f"{link}/plan", data={"csrf_token": csrf, "instalments": "3", "text": ""})
    client.post(f"{link}/dispute", data={"csrf_token": "forged", "invoice": "FA-1"})
    assert _series(client, pages, outcome="shown") >= before["shown"] + 1
    assert _series(client, pages, outcome="refused") == before["refused"] + 1
    assert _series(client, actions, action="promise", outcome="invalid") == before["invalid"] + 1
    assert _series(client, actions, action="promise", outcome="done") == before["done"] + 1
    assert _series(client, actions, action="plan", outcome="approved") == before["approved"] + 1
    assert _series(client, actions, action="dispute", outcome="refused") == before["forged"] + 1
    text = client.get("/metrics").text
    assert "A1" not in text and link.removeprefix("/p/") not in text
