"""The `?notice=` banner: only messages of the server's list (cobro.notices), in the reader's
language; free text in a link shows nothing, on the login page or anywhere."""

from __future__ import annotations

from sqlalchemy import Engine
from starlette.testclient import TestClient

from cobro.settings import Settings
from cobro.web.app import create_app

BANNER = '<p class="notice" role="status">'


def test_free_text_in_a_link_shows_nothing(engine: Engine, db_url: str) -> None:
    client = TestClient(create_app(Settings(database_url=db_url, web_secret_key="k" * 32), engine))
    forged = client.get("/login", params={"notice": "Session expired: call +1 555 0100"})
    assert forged.status_code == 200 and BANNER not in forged.text
    assert "Session expired" not in forged.text  # (only in the language switch's next= URL)
    keyed = client.get("/login?notice=task_taken&n.id=12")
    assert f"{BANNER}task 12 is yours</p>" in keyed.text
    spanish = client.get("/login?notice=task_taken&n.id=12", headers={"Accept-Language": "es"})
    assert BANNER in spanish.text and "task 12 is yours" not in spanish.text
    spaced = client.get(
        "/login", params={"notice": "owner_set", "n.account": "Call us", "n.who": "x"}
    )
    assert f"{BANNER}… is now owned by x</p>" in spaced.text and "Call us" not in spaced.text
