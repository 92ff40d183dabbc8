"""POST /codec/decode for the Temporal UI and CLI: payloads encrypted by Cobro's codec come
back readable to a logged-in user of the codec role, never to anyone else; CORS answers
the Temporal UI's origin only."""

from __future__ import annotations

import base64
import json

import pytest
from sqlalchemy import Engine
from starlette.testclient import TestClient
from temporalio.api.common.v1 import Payload

from cobro.settings import Settings
from cobro.temporal_codec import EncryptionCodec, KeyRing, new_key_line
from cobro.users import create_api_token, create_user
from cobro.web.app import create_app

pytestmark = pytest.mark.usefixtures("cheap_password_hashing")

KEY = new_key_line("kweb")
UI = "http://127.0.0.1:8233"


def _settings(db_url: str, **extra: str) -> Settings:
    return Settings(database_url=db_url, web_secret_key="k" * 32, payload_keys=KEY, **extra)  # type: ignore[arg-type]


def _sealed() -> dict:
    ring = KeyRing.parse([("test", KEY)])
    plain = Payload(metadata={"encoding": b"json/plain"}, data=b'{"email": "pagos@nunez.example"}')
    sealed = EncryptionCodec(ring).encrypt(plain)
    return {
        "payloads": [
            {
                "metadata": {k: base64.b64encode(v).decode() for k, v in sealed.metadata.items()},
                "data": base64.b64encode(sealed.data).decode(),
            }
        ]
    }


def _login(client: TestClient, engine: Engine, name: str, role: str) -> None:
    create_user(engine, name, "correct horse battery", role, name)
    form = client.get("/login")
    token = form.cookies.get("cobro_login_csrf") or client.cookies.get("cobro_login_csrf")
    done = client.post(
        "/login",
        data={"username": name, "password": "correct horse battery", "csrf_token": token},
        follow_redirects=False,
    )
    assert done.status_code == 303


def test_a_viewer_reads_the_payload_anonymous_gets_401(engine: Engine, db_url: str) -> None:
    client = TestClient(create_app(_settings(db_url), engine))
    anonymous = client.post("/codec/decode", json=_sealed(), headers={"Origin": UI})
    assert anonymous.status_code == 401
    assert anonymous.headers["access-control-allow-origin"] == UI  # the UI can read why
    _login(client, engine, "vera", "viewer")
    answer = client.post(
        "/codec/decode", json=_sealed(), headers={"Origin": UI, "X-Namespace": "default"}
    )
    assert answer.status_code == 200, answer.text
    [payload] = answer.json()["payloads"]
    assert base64.b64decode(payload["metadata"]["encoding"]) == b"json/plain"
    assert json.loads(base64.b64decode(payload["data"])) == {"email": "pagos@nunez.example"}
    assert answer.headers["access-control-allow-credentials"] == "true"
    # a payload that was never encrypted comes back as it is; a malformed body: 400
    plain = {"payloads": [{"metadata": {"encoding": "anNvbi9wbGFpbg=="}, "data": "MQ=="}]}
    assert client.post("/codec/decode", json=plain).json() == plain
    bad = client.post("/codec/decode", content=b"{not json", headers={"Content-Type": "x"})
    assert bad.status_code == 400 and "payloads" in bad.json()["detail"]


def test_below_the_codec_role_is_refused(engine: Engine, db_url: str) -> None:
    client = TestClient(create_app(_settings(db_url, codec_role="collector"), engine))
    _login(client, engine, "vic", "viewer")
    refused = client.post("/codec/decode", json=_sealed())
    assert refused.status_code == 403 and "collector" in refused.json()["detail"]


def test_an_api_token_works_like_the_cli_sends_it(engine: Engine, db_url: str) -> None:
    create_user(engine, "ops", "correct horse battery", "viewer", "Ops")
    secret = create_api_token(engine, "ops", "temporal-cli")
    cli = TestClient(create_app(_settings(db_url), engine))
    answer = cli.post(
        "/codec/decode", json=_sealed(), headers={"Authorization": f"Bearer {secret}"}
    )
    assert answer.status_code == 200, answer.text
    wrong = cli.post("/codec/decode", json=_sealed(), headers={"Authorization": "Bearer nope"})
    assert wrong.status_code == 401


def test_cors_answers_the_temporal_ui_only(engine: Engine, db_url: str) -> None:
    client = TestClient(create_app(_settings(db_url), engine))
    ask = {
        "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "content-type,x-namespace",
    }
    ok = client.options("/codec/decode", headers={"Origin": UI, **ask})
    assert ok.status_code == 204
    assert ok.headers["access-control-allow-origin"] == UI
    assert "x-namespace" in ok.headers["access-control-allow-headers"]
    evil = client.options("/codec/decode", headers={"Origin": "https://evil.example", **ask})
    assert evil.status_code == 403 and "access-control-allow-origin" not in evil.headers
    _login(client, engine, "vera", "viewer")
    stolen = client.post(
        "/codec/decode", json=_sealed(), headers={"Origin": "https://evil.example"}
    )
    assert "access-control-allow-origin" not in stolen.headers  # the browser hides the answer
