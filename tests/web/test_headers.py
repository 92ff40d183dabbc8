"""Security headers on every response (pages, login, API, errors, redirects, static files):
a CSP without inline script or style, no framing, nosniff, Referrer-Policy, HSTS only when
the public URL is https, no-store on everything with customer data. No page of the
dashboard has an inline script, style or event handler (the CSP would block it); an
e-mail's HTML is served to its sandboxed frame with a CSP of its own."""

from __future__ import annotations

import re
from html.parser import HTMLParser
from pathlib import Path

import pytest
from sqlalchemy import Engine
from starlette.testclient import TestClient

from cobro.db import transaction
from cobro.models import Communication, Customer
from cobro.settings import Settings
from cobro.web.app import HERE, create_app
from cobro.web.headers import CSP
from tests.helpers.web import logged_in

pytestmark = pytest.mark.usefixtures("cheap_password_hashing")

PAGES = [
    "/",
    "/customers",
    "/customers/C1",
    "/customers/C1/next-contact",
    "/alerts",
    "/tasks",
    "/insurer/obligations",
    "/insurer/stop-supply",
    "/reports",
]


def _seed(engine: Engine) -> int:
    with transaction(engine) as s:
        c = Customer(account="C1", name="ACME", country="FR", language="fr", timezone="UTC")
        s.add(c)
        s.flush()
        m = Communication(
            customer_id=c.id,
            channel="email",
            template="due",
            recipient="ap@acme.example",
            idempotency_key="k1",
            status="sent",
            subject="Your invoice",
            body="Please pay",
            body_html='<p style="color:#c00">Please pay</p><script>alert(1)</script>',
        )
        s.add(m)
        s.flush()
        return m.id


def _assert_headers(response, https: bool = False, customer_data: bool = True) -> None:  # type: ignore[no-untyped-def]
    h = response.headers
    assert h["content-security-policy"] == CSP, response.url
    assert "frame-ancestors 'none'" in CSP and "script-src 'self'" in CSP
    assert "unsafe-inline" not in CSP
    assert h["x-content-type-options"] == "nosniff"
    assert h["x-frame-options"] == "DENY"
    assert h["referrer-policy"] == "same-origin"
    assert ("strict-transport-security" in h) is https, response.url
    assert (h.get("cache-control") == "no-store") is customer_data, response.url


class InlineCode(HTMLParser):
    """Inline <script> bodies, <style> elements, style= and on*= attributes."""

    def __init__(self) -> None:
        super().__init__()
        self.found: list[str] = []
        self._script = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        names = {name for name, _ in attrs}
        if tag == "script":
            self._script = "src" not in names
        if tag == "style":
            self.found.append("<style>")
        self.found += [f"{tag} {n}=" for n in names if n == "style" or n.startswith("on")]

    def handle_endtag(self, tag: str) -> None:
        self._script = False

    def handle_data(self, data: str) -> None:
        if self._script and data.strip():
            self.found.append(f"<script>{data.strip()[:40]}")


def _inline_code(html: str) -> list[str]:
    parser = InlineCode()
    parser.feed(html)
    return parser.found


def test_every_response_has_the_headers(engine: Engine, use_database: str) -> None:
    db_url = use_database
    message_id = _seed(engine)
    client = logged_in(engine, db_url)
    for path in [*PAGES, f"/customers/C1/messages/{message_id}"]:
        page = client.get(path)
        assert page.status_code == 200, path
        _assert_headers(page)
        assert _inline_code(page.text) == [], path
    for path in ("/api/portfolio", "/api/customers", "/customers/nobody", "/healthz"):
        _assert_headers(client.get(path))
    _assert_headers(client.get("/customers?x=%00"))  # refused by RejectNul, still headed
    _assert_headers(client.get("/static/cobro.css"), customer_data=False)
    anonymous = TestClient(client.app)
    _assert_headers(anonymous.get("/customers", follow_redirects=False))  # the 303 to /login
    _assert_headers(anonymous.get("/login"))
    assert _inline_code(anonymous.get("/login").text) == []


def test_hsts_only_over_https(engine: Engine, db_url: str) -> None:
    def app(url: str) -> TestClient:
        settings = Settings(
            database_url=db_url,
            web_secret_key="k" * 32,
            public_base_url=url,
            twilio_auth_token="not-the-dev-token",
            insurer_api_key="not-the-dev-key",
        )
        return TestClient(create_app(settings, engine))

    _assert_headers(app("https://cobro.example.com").get("/login"), https=True)
    _assert_headers(app("http://127.0.0.1:8000").get("/login"), https=False)
    hsts = app("https://cobro.example.com").get("/login").headers["strict-transport-security"]
    assert re.fullmatch(r"max-age=\d{7,}; includeSubDomains", hsts)


def test_the_email_frame_keeps_its_styles_and_runs_no_script(engine: Engine, db_url: str) -> None:
    message_id = _seed(engine)
    client = logged_in(engine, db_url)
    page = client.get(f"/customers/C1/messages/{message_id}")
    frame = f'src="/customers/C1/messages/{message_id}/html"'
    assert frame in page.text and 'sandbox=""' in page.text and "srcdoc" not in page.text
    html = client.get(f"/customers/C1/messages/{message_id}/html")
    assert html.status_code == 200 and 'style="color:#c00"' in html.text
    csp = html.headers["content-security-policy"]
    assert "style-src 'unsafe-inline'" in csp and "script-src" not in csp
    assert "default-src 'none'" in csp and "sandbox" in csp
    assert "frame-ancestors 'self'" in csp and html.headers["x-frame-options"] == "SAMEORIGIN"
    assert html.headers["cache-control"] == "no-store"
    assert client.get("/customers/C1/messages/999/html").status_code == 404
    assert (
        TestClient(client.app)
        .get(f"/customers/C1/messages/{message_id}/html", follow_redirects=False)
        .status_code
        == 303
    ), "logged-in users only"


def test_no_template_has_inline_code() -> None:
    for path in sorted(Path(HERE / "templates").glob("*.html")):
        assert _inline_code(path.read_text()) == [], path.name
