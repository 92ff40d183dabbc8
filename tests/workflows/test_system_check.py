"""The worker's registered workflow reaches the real database, on both Temporal servers."""

from __future__ import annotations

import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import date
from decimal import Decimal

import pytest
from temporalio.client import Client
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.testing import WorkflowEnvironment

from cobro.db import transaction
from cobro.models import Customer, Invoice
from worker import build_worker
from workflows.system_check import SystemCheck


def _seed(engine) -> None:  # type: ignore[no-untyped-def]
    with transaction(engine) as s:
        c = Customer(
            account="C1", name="ACME", country="FR", language="fr", timezone="Europe/Paris"
        )
        s.add(c)
        s.flush()
        for n, (cur, open_amount) in enumerate([("EUR", "10.50"), ("EUR", "0"), ("USD", "7")]):
            s.add(
                Invoice(
                    number=f"F{n}",
                    customer_id=c.id,
                    issue_date=date(2026, 1, 1),
                    due_date=date(2026, 2, 1),
                    currency=cur,
                    amount=Decimal("20"),
                    open_amount=Decimal(open_amount),
                )
            )


async def _run_check(env: WorkflowEnvironment) -> object:
    client = Client(
        env.client.service_client,
        namespace=env.client.namespace,
        data_converter=pydantic_data_converter,
    )
    queue = f"test-{uuid.uuid4().hex}"
    with ThreadPoolExecutor(32) as executor:
        async with build_worker(client, queue, executor):
            return await client.execute_workflow(
                SystemCheck.run, id=f"check-{uuid.uuid4().hex}", task_queue=queue
            )


@pytest.mark.temporal
async def test_system_check_on_time_skipping_server(
    time_skipping_env: WorkflowEnvironment, use_database: str, engine
) -> None:
    _seed(engine)
    report = await _run_check(time_skipping_env)
    assert report.customers == 1
    assert report.open_invoices == 2
    assert report.open_amount_by_currency == {"EUR": "10.5000", "USD": "7.0000"}


@pytest.mark.temporal
async def test_system_check_on_dev_server(
    dev_server_env: WorkflowEnvironment, use_database: str, engine
) -> None:
    _seed(engine)
    report = await _run_check(dev_server_env)
    assert report.dialect in {"sqlite", "postgresql"}
    assert report.open_invoices == 2
