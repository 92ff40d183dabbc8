"""Signed self-service links: `{id}.{nonce}.{signature}`, the signature an HMAC-SHA256 of the
id and nonce under the portal key (`COBRO_PORTAL_SECRET_KEY`, else the web secret key),
checked in constant time before the database is read. The row (`PortalLink`) is the rest
of the truth: one customer, an expiry, a revocation, the last use and a per-minute count
of requests (`open_link` refuses past `portal_requests_per_minute`). The first request of
a link on a day puts a `portal.visited` event on the customer's timeline.

A message carries `link_for_message`: the customer's newest live link when it still has
more than half its life ahead, else a new one, written in the caller's transaction (the
send's claim), so a message and its link commit together or not at all."""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import secrets
import time
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from cobro.db import transaction
from cobro.models import Customer, PortalLink, TimelineEvent
from cobro.settings import Settings, get_settings
from cobro.types import utcnow

TOKEN = re.compile(r"^([1-9][0-9]{0,18})\.([A-Za-z0-9_-]{16,32})\.([A-Za-z0-9_-]{22})$")
WINDOW = timedelta(minutes=1)
VISITED = "portal.visited"  # the first request of a link on a day (UTC)


class LinkRefused(Exception):
    """A token that opens nothing: `status` 404 (tampered, unknown, expired, revoked: the
    page says only that the link does not work) or 429 (too many requests)."""

    def __init__(self, why: str, status: int = 404, retry_after_s: int = 0) -> None:
        super().__init__(why)
        self.why = why
        self.status = status
        self.retry_after_s = retry_after_s


def portal_key(settings: Settings) -> bytes:
    if settings.portal_secret_key is not None and settings.portal_secret_key.get_secret_value():
        return settings.portal_secret_key.get_secret_value().encode()
    from cobro.web.auth import secret_key

    # without a configured key, the dashboard's var/ key file: workers starting together
    # may race to create it (one creates, the others read it once written)
    for _ in range(100):
        try:
            key = secret_key(settings)
        except FileExistsError:
            key = ""
        if key:
            return key.encode()
        time.sleep(0.02)
    raise RuntimeError(f"no web secret key in {settings.var_dir}/web_secret.key")


def signature(key: bytes, link_id: int, nonce: str) -> str:
    digest = hmac.new(key, f"cobro-portal|{link_id}|{nonce}".encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest[:16]).decode().rstrip("=")


def token_of(key: bytes, link: PortalLink) -> str:
    return f"{link.id}.{link.nonce}.{signature(key, link.id, link.nonce)}"


def url_of(settings: Settings, token: str) -> str:
    return f"{settings.public_base_url.rstrip('/')}/p/{token}"


def parse_token(key: bytes, token: str) -> tuple[int, str]:
    """(link id, nonce) of a well-formed token whose signature is right, else LinkRefused."""
    match = TOKEN.match(token or "")
    if match is None:
        raise LinkRefused("malformed token")
    link_id, nonce, sent = int(match[1]), match[2], match[3]
    if not hmac.compare_digest(sent.encode(), signature(key, link_id, nonce).encode()):
        raise LinkRefused("bad signature")
    return link_id, nonce


def new_link(
    session: Session, customer_id: int, days: int, actor: str, now: datetime | None = None
) -> PortalLink:
    if days < 1:
        raise ValueError(f"a link must work at least one day (got {days})")
    link = PortalLink(
        customer_id=customer_id,
        nonce=secrets.token_urlsafe(12),
        created_at=now or utcnow(),
        created_by=actor,
        expires_at=(now or utcnow()) + timedelta(days=days),
        uses=0,
        window_hits=0,
    )
    session.add(link)
    session.flush()
    return link


def link_for_message(
    session: Session,
    customer_id: int,
    settings: Settings | None = None,
    now: datetime | None = None,
) -> str:
    """The URL a message to the customer carries (see the module's docstring)."""
    settings = settings or get_settings()
    now = now or utcnow()
    days = settings.portal_link_days
    newest = session.scalars(
        select(PortalLink)
        .where(
            PortalLink.customer_id == customer_id,
            PortalLink.revoked_at.is_(None),
            PortalLink.expires_at > now + timedelta(days=days / 2),
        )
        .order_by(PortalLink.expires_at.desc())
        .limit(1)
    ).first()
    link = newest or new_link(session, customer_id, days, "dunning", now)
    return url_of(settings, token_of(portal_key(settings), link))


def existing_link_url(
    session: Session,
    customer_id: int,
    settings: Settings | None = None,
    now: datetime | None = None,
) -> str | None:
    """The link a message would reuse now, if any (a preview writes nothing)."""
    settings = settings or get_settings()
    now = now or utcnow()
    link = session.scalars(
        select(PortalLink)
        .where(
            PortalLink.customer_id == customer_id,
            PortalLink.revoked_at.is_(None),
            PortalLink.expires_at > now + timedelta(days=settings.portal_link_days / 2),
        )
        .order_by(PortalLink.expires_at.desc())
        .limit(1)
    ).first()
    return url_of(settings, token_of(portal_key(settings), link)) if link else None


@dataclass(frozen=True)
class CreatedLink:
    id: int
    account: str
    url: str
    expires_at: datetime


def create_link(
    engine: Engine, account: str, days: int, actor: str, settings: Settings | None = None
) -> CreatedLink:
    """`cobro portal link --customer ID`: a new link (never a reused one)."""
    settings = settings or get_settings()
    with transaction(engine) as s:
        customer_id = s.scalar(select(Customer.id).where(Customer.account == account))
        if customer_id is None:
            raise LookupError(f"no customer {account!r}")
        link = new_link(s, customer_id, days, actor)
        url = url_of(settings, token_of(portal_key(settings), link))
        return CreatedLink(link.id, account, url, link.expires_at)


def revoke(engine: Engine, link_id: int, now: datetime | None = None) -> str:
    """Revoke a link (at once, for every copy of it); the customer's account."""
    with transaction(engine) as s:
        row = s.execute(
            select(PortalLink, Customer.account)
            .join(Customer, Customer.id == PortalLink.customer_id)
            .where(PortalLink.id == link_id)
        ).first()
        if row is None:
            raise LookupError(f"no portal link {link_id}")
        link, account = row
        if link.revoked_at is not None:
            raise LookupError(f"portal link {link_id} is already revoked")
        link.revoked_at = now or utcnow()
        return str(account)


@dataclass(frozen=True)
class OpenedLink:
    link_id: int
    customer_id: int
    account: str
    expires_at: datetime


def open_link(
    engine: Engine, settings: Settings, token: str, now: datetime | None = None
) -> OpenedLink:
    """Check a token and count the request: the customer it opens, or LinkRefused."""
    link_id, nonce = parse_token(portal_key(settings), token)
    now = now or utcnow()
    with transaction(engine) as s:
        row = s.execute(
            select(PortalLink, Customer.account)
            .join(Customer, Customer.id == PortalLink.customer_id)
            .where(PortalLink.id == link_id)
            .with_for_update(of=PortalLink)
        ).first()
        if row is None or not hmac.compare_digest(row[0].nonce.encode(), nonce.encode()):
            raise LinkRefused("unknown link")
        link, account = row
        if link.revoked_at is not None:
            raise LinkRefused("revoked")
        if link.expires_at <= now:
            raise LinkRefused("expired")
        if link.window_start is None or now - link.window_start >= WINDOW:
            link.window_start, link.window_hits = now, 0
        if link.window_hits >= settings.portal_requests_per_minute:
            left = (link.window_start + WINDOW - now).total_seconds()
            raise LinkRefused("too many requests", 429, max(1, int(left + 0.999)))
        link.window_hits += 1
        link.uses += 1
        if link.last_used_at is None or link.last_used_at.date() != now.date():
            s.add(
                TimelineEvent(
                    customer_id=link.customer_id,
                    at=now,
                    kind=VISITED,
                    actor=f"customer:{account}"[:128],
                    summary="the customer opened the self-service page",
                    data={"link": link.id},
                )
            )
        link.last_used_at = now
        return OpenedLink(link.id, link.customer_id, str(account), link.expires_at)
