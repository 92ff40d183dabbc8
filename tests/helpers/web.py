"""Dashboard test helpers: a client logged in through the login form, the CSRF token of a page."""

from __future__ import annotations

import html
import re
from typing import Any

from sqlalchemy import Engine
from starlette.testclient import TestClient

from cobro.settings import Settings
from cobro.users import create_user
from cobro.web.app import create_app


def logged_in(engine: Engine, db_url: str, role: str = "collector") -> TestClient:
    """A client of the dashboard, logged in through the login form like a person."""
    create_user(engine, f"{role}1", "correct horse battery", role, f"{role.title()} One")
    client = TestClient(create_app(Settings(database_url=db_url, web_secret_key="k" * 32), engine))
    form = client.get("/login")
    token = form.cookies.get("cobro_login_csrf") or client.cookies.get("cobro_login_csrf")
    assert token and f'value="{token}"' in form.text
    done = client.post(
        "/login",
        data={"username": f"{role}1", "password": "correct horse battery", "csrf_token": token},
        follow_redirects=False,
    )
    assert done.status_code == 303, done.text
    cookie = done.headers["set-cookie"]
    assert "cobro_session=" in cookie and "HttpOnly" in cookie and "SameSite=lax" in cookie
    return client


def csrf_of(client: TestClient, path: str = "/customers") -> str:
    match = re.search(r'name="csrf_token" value="([^"]+)"', client.get(path).text)
    assert match
    return match.group(1)


def said(response: Any) -> str:
    """What the dashboard says after a form: the banner the page it redirects to shows (its
    `?notice=` keys, translated as the page does), or the reason on the refusal page."""
    from urllib.parse import urlsplit

    from starlette.datastructures import QueryParams

    from cobro.notices import from_query

    if response.status_code == 303:
        return from_query(QueryParams(urlsplit(response.headers["location"]).query))
    match = re.search(r"<h1>\d+ — .*?</h1>\s*<p>(.*?)</p>", response.text, re.S)
    assert match, response.text
    return html.unescape(match.group(1))
