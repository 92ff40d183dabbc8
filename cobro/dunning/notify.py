"""Tell the dunning workflows that facts changed: signal-with-start, bounded concurrency.

A workflow that is running gets the signal; a customer without one gets one started.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable

from sqlalchemy import Engine, select
from temporalio.client import Client
from temporalio.common import SearchAttributePair, TypedSearchAttributes

from cobro.dunning.signals import SIGNAL, WORKFLOW_TYPE, DunningInput, FactsChanged, workflow_id
from cobro.models import Customer, Invoice
from cobro.settings import Settings, get_settings
from cobro.temporal_support import CUSTOMER_ID

CONCURRENCY = 64


async def notify(
    client: Client,
    accounts: Iterable[str],
    change: FactsChanged,
    settings: Settings | None = None,
    concurrency: int = CONCURRENCY,
) -> int:
    settings = settings or get_settings()
    gate = asyncio.Semaphore(concurrency)

    async def one(account: str) -> None:
        async with gate:
            await client.start_workflow(
                WORKFLOW_TYPE,
                DunningInput(account),
                id=workflow_id(account),
                task_queue=settings.temporal_task_queue,
                start_signal=SIGNAL,
                start_signal_args=[change],
                search_attributes=TypedSearchAttributes(
                    [SearchAttributePair(CUSTOMER_ID, account)]
                ),
            )

    unique = sorted(set(accounts))
    await asyncio.gather(*(one(a) for a in unique))
    return len(unique)


def accounts_with_open_invoices(engine: Engine) -> list[str]:
    with engine.connect() as conn:
        return list(
            conn.scalars(
                select(Customer.account)
                .join(Invoice, Invoice.customer_id == Customer.id)
                .where(Invoice.open_amount > 0)
                .distinct()
                .order_by(Customer.account)
            )
        )
