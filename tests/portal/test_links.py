"""Links for messages: one per customer reused while it has more than half its life left
(a new one after), never a revoked one; every shipped email and SMS, in every language,
shows the customer's link."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import Engine, func, select

from cobro.db import transaction
from cobro.models import Customer, PortalLink
from cobro.portal.links import existing_link_url, link_for_message, revoke
from cobro.settings import Settings
from cobro.templating import Templates, sample_context
from cobro.types import utcnow


def test_a_message_reuses_the_customers_link(engine: Engine) -> None:
    settings = Settings(database_url=str(engine.url), web_secret_key="k" * 32)
    with transaction(engine) as s:
        c = Customer(account="L1", name="L", country="FR", language="fr", timezone="UTC")
        s.add(c)
        s.flush()
        cid = c.id
        assert existing_link_url(s, cid, settings) is None
        first = link_for_message(s, cid, settings)
        assert link_for_message(s, cid, settings) == first
        assert existing_link_url(s, cid, settings) == first
        later = utcnow() + timedelta(days=31)  # less than half of 60 days left
        renewed = link_for_message(s, cid, settings, later)
        assert renewed != first
    revoke(engine, int(renewed.split("/p/")[1].split(".")[0]))
    with transaction(engine) as s:
        assert link_for_message(s, cid, settings, later) not in (first, renewed)
        assert s.scalar(select(func.count()).select_from(PortalLink)) == 3


def test_every_shipped_message_shows_the_link() -> None:
    templates = Templates()
    context = sample_context()
    url = context["portal_url"]
    assert url
    for channel, language, name in templates.catalogue():
        if channel == "email":
            mail = templates.render_email(name, language, context)
            assert url in mail.text and f'href="{url}"' in mail.html, (language, name)
        elif channel == "sms":
            assert url in templates.render_sms(name, language, context).text, (language, name)
