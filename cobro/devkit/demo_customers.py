"""`cobro dev --demo`: a few demo customers act as real ones would, once per var dir, so the
portfolio's "customers' side", the timelines and the tasks show what customers do. Each goes
through the running stack like a person: its self-service page over HTTP (the page's CSRF
token, the real actions: a promise, a dispute, a payment plan), an SMS through the capture
server's webhook call."""

from __future__ import annotations

import logging
import re
from datetime import date, timedelta
from decimal import Decimal

import httpx
from sqlalchemy import Engine, exists, func, select

from cobro.db import transaction
from cobro.devkit.capture import CaptureServers
from cobro.models import Customer, Invoice, TimelineEvent
from cobro.portal.links import VISITED, create_link

log = logging.getLogger("cobro.dev")
CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


def _overdue_customers(engine: Engine, today: date, n: int) -> list[tuple[str, str | None]]:
    """(account, phone) of the first customers with an overdue invoice and an address."""
    with transaction(engine) as s:
        if s.scalar(select(exists().where(TimelineEvent.kind == VISITED))):
            return []  # done at an earlier start
        return [
            (row.account, row.phone)
            for row in s.execute(
                select(Customer.account, Customer.phone)
                .join(Invoice, Invoice.customer_id == Customer.id)
                .where(
                    Invoice.open_amount > Decimal(0),
                    Invoice.due_date < today - timedelta(days=10),
                    Customer.email.is_not(None),
                    Customer.phone.is_not(None),
                )
                .group_by(Customer.account, Customer.phone)
                .having(func.count() >= 2)
                .order_by(Customer.account)
                .limit(n)
            )
        ]


async def _page(web: httpx.AsyncClient, path: str) -> tuple[str, str]:
    page = await web.get(path)
    page.raise_for_status()
    found = CSRF.search(page.text)
    assert found, f"no CSRF token on {path}"
    return page.text, found.group(1)


async def customers_act(engine: Engine, web_url: str, capture: CaptureServers) -> None:
    today = date.today()
    chosen = _overdue_customers(engine, today, 4)
    if len(chosen) < 4:
        return
    (promising, _), (disputing, _), (texting, phone), (planning, _) = chosen
    async with httpx.AsyncClient(base_url=web_url, timeout=30) as web:
        path = create_link(engine, promising, 60, "demo").url.removeprefix(web_url)
        _, csrf = await _page(web, path)
        until = (today + timedelta(days=8)).isoformat()
        form = {"csrf_token": csrf, "until": until, "amount": "250"}
        await web.post(f"{path}/promise", data=form)
        path = create_link(engine, disputing, 60, "demo").url.removeprefix(web_url)
        text, csrf = await _page(web, path)
        number = re.search(r"<option>([^<]+)</option>", text)
        if number:
            form = {
                "csrf_token": csrf,
                "invoice": number.group(1),
                "reason": "wrong_amount",
                "text": "the agreed price was lower: see our order",
            }
            await web.post(f"{path}/dispute", data=form)
        path = create_link(engine, planning, 60, "demo").url.removeprefix(web_url)
        _, csrf = await _page(web, path)
        form = {"csrf_token": csrf, "instalments": "3", "text": "a slow season: 3 months?"}
        await web.post(f"{path}/plan", data=form)
    if phone:
        await capture.customer_sends(phone, "Hello, we pay the two invoices on Friday.")
    log.info(
        "demo customers: %s promised on its page, %s disputed an invoice, %s asked for a "
        "payment plan, the customer of %s answered by SMS",
        promising,
        disputing,
        planning,
        texting,
    )
