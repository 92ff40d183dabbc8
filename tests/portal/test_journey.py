"""The customer's side end to end, on the time-skipping server with the real database (both),
the real capture SMTP server and a worker: the reminder carries the customer's link; the
customer opens it and promises to pay, dunning waits, the payment arrives and the promise is
kept, and no reminder follows; another customer disputes one of its two invoices on its
page, and its next reminder lists only the other one."""

from __future__ import annotations

import re
from datetime import timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select, update
from starlette.testclient import TestClient
from temporalio.testing import WorkflowEnvironment

from cobro.db import default_engine, transaction
from cobro.devkit.capture import CaptureServers
from cobro.dunning.notify import notify
from cobro.dunning.signals import FactsChanged
from cobro.models import Customer, DunningPause, Invoice, TimelineEvent
from cobro.settings import get_settings
from cobro.web.app import create_app
from tests.helpers import eventually
from tests.helpers.dunning import import_rows, point_settings_at, pydantic_client, running_worker

pytestmark = pytest.mark.temporal
PARIS = ZoneInfo("Europe/Paris")
LINK = re.compile(r"https?://[^\s\"<>]+(/p/[A-Za-z0-9._-]+)")


def _mails_to(capture: CaptureServers, address: str) -> list[str]:
    """The texts of the emails to an address's domain, oldest first."""
    mails = sorted(capture.mail.list(), key=lambda m: m.id)
    return [capture.mail.get(m.id).text for m in mails if any(address in to for to in m.to)]


def _kinds(account: str) -> list[str]:
    with transaction() as s:
        return list(
            s.scalars(
                select(TimelineEvent.kind)
                .join(Customer, Customer.id == TimelineEvent.customer_id)
                .where(Customer.account == account)
                .order_by(TimelineEvent.id)
            )
        )


async def test_promise_kept_and_dispute_through_the_customers_page(
    time_skipping_env: WorkflowEnvironment,
    capture_servers: CaptureServers,
    use_database: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    env = time_skipping_env
    queue = point_settings_at(monkeypatch, capture_servers, tmp_path)
    monkeypatch.setenv("COBRO_TEMPORAL_ADDRESS", env.client.service_client.config.target_host)
    monkeypatch.setenv("COBRO_WEB_SECRET_KEY", "k" * 32)
    get_settings.cache_clear()
    client = pydantic_client(env)
    start = await env.get_current_time()
    day0 = start.astimezone(PARIS).date()
    due = day0 - timedelta(days=2)
    import_rows(
        tmp_path,
        "customers",
        [
            {
                "account": account,
                "name": name,
                "country": "FR",
                "language": "fr",
                "timezone": "Europe/Paris",
                "email": email,
            }
            for account, name, email in (
                ("J1", "Boulangerie Petit", "compta@petit.example"),
                ("J2", "Garage Moreau", "factures@moreau.example"),
            )
        ],
    )
    import_rows(
        tmp_path,
        "invoices",
        [
            {
                "number": number,
                "account": account,
                "issue_date": (due - timedelta(days=30)).isoformat(),
                "due_date": due.isoformat(),
                "currency": "EUR",
                "amount": amount,
            }
            for number, account, amount in (
                ("J1-1", "J1", "480.00"),
                ("J2-A", "J2", "300.00"),
                ("J2-B", "J2", "700.00"),
            )
        ],
    )
    engine = default_engine()
    site = TestClient(create_app(get_settings(), engine))

    async with running_worker(client, queue):
        await notify(client, ["J1", "J2"], FactsChanged("invoices_changed", "import"))
        # the first window: each customer gets its due email, with its own link
        await env.sleep(timedelta(days=1, hours=12))
        await eventually(
            lambda: (
                len(_mails_to(capture_servers, "petit.example")) == 1
                and len(_mails_to(capture_servers, "moreau.example")) == 1
            )
        )
        (to_j1,) = _mails_to(capture_servers, "petit.example")
        (to_j2,) = _mails_to(capture_servers, "moreau.example")
        link_j1, link_j2 = (LINK.search(text).group(1) for text in (to_j1, to_j2))  # type: ignore[union-attr]
        assert link_j1 != link_j2

        # J1 opens its page and promises to pay the whole amount within ten days
        page = site.get(link_j1)
        assert page.status_code == 200 and "J1-1" in page.text and "J2-A" not in page.text
        csrf = re.search(r'name="csrf_token" value="([^"]+)"', page.text).group(1)  # type: ignore[union-attr]
        today = (await env.get_current_time()).astimezone(PARIS).date()
        promised = site.post(
            f"{link_j1}/promise",
            data={
                "csrf_token": csrf,
                "until": (today + timedelta(days=10)).isoformat(),
                "amount": "480",
            },
            follow_redirects=False,
        )
        assert promised.status_code == 303, promised.text

        # J2 disputes J2-A on its page
        page = site.get(link_j2)
        csrf = re.search(r'name="csrf_token" value="([^"]+)"', page.text).group(1)  # type: ignore[union-attr]
        disputed = site.post(
            f"{link_j2}/dispute",
            data={
                "csrf_token": csrf,
                "invoice": "J2-A",
                "reason": "wrong_amount",
                "text": "le prix convenu était 250",
            },
            follow_redirects=False,
        )
        assert disputed.status_code == 303, disputed.text

        # a week on: J2's reminder lists J2-B only; J1, who promised, gets nothing
        await env.sleep(timedelta(days=7))
        await eventually(lambda: len(_mails_to(capture_servers, "moreau.example")) == 2)
        reminder = _mails_to(capture_servers, "moreau.example")[1]
        assert "J2-B" in reminder and "J2-A" not in reminder
        assert len(_mails_to(capture_servers, "petit.example")) == 1

        # J1 pays (the ERP's next import): the promise is kept, and no reminder follows
        with transaction() as s:
            s.execute(update(Invoice).where(Invoice.number == "J1-1").values(open_amount=0))
        await notify(client, ["J1"], FactsChanged("payments_changed", "import"))
        await eventually(lambda: "promise.kept" in _kinds("J1"))
        await env.sleep(timedelta(days=30))
        await eventually(lambda: len(_mails_to(capture_servers, "moreau.example")) >= 3)

    assert len(_mails_to(capture_servers, "petit.example")) == 1
    j1 = _kinds("J1")
    assert j1.index("portal.visited") < j1.index("promise.recorded") < j1.index("promise.kept")
    assert "dispute.opened" in _kinds("J2")
    with transaction() as s:
        statuses = s.scalars(select(DunningPause.status).where(DunningPause.kind == "promise"))
        assert list(statuses) == ["kept"]
    assert all("J2-A" not in text for text in _mails_to(capture_servers, "moreau.example")[1:])
