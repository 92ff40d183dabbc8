"""The Twilio-compatible capture server, driven by the real `twilio` client and raw HTTP."""

from __future__ import annotations

import asyncio
import contextlib
import re
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from pydantic import SecretStr
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route
from twilio.base.exceptions import TwilioRestException
from twilio.request_validator import RequestValidator

from cobro.channels.sms import TwilioConfig, make_client
from cobro.devkit.capture import CaptureServers
from cobro.devkit.capture_sms import read_form
from cobro.devkit.loopback import EmbeddedHttpServer
from tests.helpers.capture import CAPTURE_ACCOUNT_SID, CAPTURE_AUTH_TOKEN

TO = "+33612345678"
FROM = "+15005550006"
MESSAGES = f"/2010-04-01/Accounts/{CAPTURE_ACCOUNT_SID}/Messages.json"
AUTH = (CAPTURE_ACCOUNT_SID, CAPTURE_AUTH_TOKEN)


async def _wait_for_status(servers: CaptureServers, sid: str, status: str) -> None:
    for _ in range(200):
        if servers.sms.get(sid).status == status:
            return
        await asyncio.sleep(0.02)
    raise AssertionError(f"{sid} never reached {status}: {servers.sms.get(sid).status}")


async def test_real_client_creates_fetches_and_lists(
    capture_servers: CaptureServers, twilio_config: TwilioConfig
) -> None:
    client = make_client(twilio_config)
    created = await asyncio.to_thread(
        client.messages.create, to=TO, from_=FROM, body="Votre facture 42 est échue."
    )
    assert re.fullmatch(r"SM[0-9a-f]{32}", created.sid)
    assert created.status == "queued"
    assert created.account_sid == CAPTURE_ACCOUNT_SID
    assert (created.to, created.from_) == (TO, FROM)
    assert created.body == "Votre facture 42 est échue."
    assert created.direction == "outbound-api"
    assert created.num_segments == "1"
    assert created.date_created is not None and created.date_created.tzinfo is not None
    assert created.uri == f"/2010-04-01/Accounts/{CAPTURE_ACCOUNT_SID}/Messages/{created.sid}.json"

    stored = capture_servers.sms.get(created.sid)
    assert stored.message["body"] == "Votre facture 42 est échue."
    assert (capture_servers.storage_dir / "sms" / f"{created.sid}.json").is_file()

    fetched = await asyncio.to_thread(client.messages(created.sid).fetch)
    assert fetched.sid == created.sid and fetched.to == TO

    await _wait_for_status(capture_servers, created.sid, "delivered")
    fetched = await asyncio.to_thread(client.messages(created.sid).fetch)
    assert fetched.status == "delivered" and fetched.date_sent is not None
    assert [h["status"] for h in capture_servers.sms.get(created.sid).history] == [
        "queued",
        "sent",
        "delivered",
    ]


async def test_listing_pages_and_filters(
    capture_servers: CaptureServers, twilio_config: TwilioConfig
) -> None:
    client = make_client(twilio_config)
    sids = []
    for i in range(5):
        to = TO if i % 2 == 0 else "+4915112345678"
        msg = await asyncio.to_thread(client.messages.create, to=to, from_=FROM, body=f"n{i}")
        sids.append(msg.sid)
    listed = await asyncio.to_thread(client.messages.list, page_size=2)
    assert [m.sid for m in listed] == list(reversed(sids)), "newest first, across pages"
    to_fr = await asyncio.to_thread(client.messages.list, to=TO, page_size=1)
    assert [m.body for m in to_fr] == ["n4", "n2", "n0"]


async def test_wrong_credentials_get_twilio_401(capture_servers: CaptureServers) -> None:
    async with httpx.AsyncClient(base_url=capture_servers.base_url, timeout=10) as http:
        for auth in [(CAPTURE_ACCOUNT_SID, "wrong"), ("AC" + "1" * 32, CAPTURE_AUTH_TOKEN), None]:
            response = await http.post(
                MESSAGES, data={"To": TO, "From": FROM, "Body": "x"}, auth=auth
            )
            assert response.status_code == 401
            assert response.json() == {
                "code": 20003,
                "message": "Authenticate",
                "more_info": "https://www.twilio.com/docs/errors/20003",
                "status": 401,
            }
            assert response.headers["www-authenticate"].startswith("Basic")
        other = await http.get("/2010-04-01/Accounts/AC" + "1" * 32 + "/Messages.json", auth=AUTH)
        assert other.status_code == 404 and other.json()["code"] == 20404
    assert capture_servers.sms.list() == []


async def test_real_client_surfaces_401_as_rest_exception(
    capture_servers: CaptureServers,
) -> None:
    config = TwilioConfig(
        account_sid=CAPTURE_ACCOUNT_SID,
        auth_token=SecretStr("wrong"),
        sms_from=FROM,
        base_url=capture_servers.base_url,
    )
    client = make_client(config)
    with pytest.raises(TwilioRestException) as error:
        await asyncio.to_thread(client.messages.create, to=TO, from_=FROM, body="x")
    assert (error.value.status, error.value.code) == (401, 20003)


@pytest.mark.parametrize(
    ("form", "status", "code", "text"),
    [
        ({"To": "+3361234", "From": FROM, "Body": "x"}, 400, 21211, "+3361234"),
        ({"To": "0612345678", "From": FROM, "Body": "x"}, 400, 21211, "0612345678"),
        ({"To": "+15005550001", "From": FROM, "Body": "x"}, 400, 21211, "not a valid phone"),
        ({"To": "+15005550009", "From": FROM, "Body": "x"}, 400, 21614, "not a valid mobile"),
        ({"To": "+15005550004", "From": FROM, "Body": "x"}, 400, 21610, "unsubscribed"),
        ({"To": "+15005550500", "From": FROM, "Body": "x"}, 500, 20500, "Internal"),
        ({"To": "+15005550429", "From": FROM, "Body": "x"}, 429, 20429, "Too Many"),
        ({"To": TO, "From": "+15005550001", "Body": "x"}, 400, 21212, "'From'"),
        ({"To": TO, "From": "+15005550007", "Body": "x"}, 400, 21606, "'From'"),
        ({"To": TO, "Body": "x"}, 400, 21603, "'From'"),
        ({"From": FROM, "Body": "x"}, 400, 21604, "'To'"),
        ({"To": TO, "From": FROM}, 400, 21602, "body is required"),
        ({"To": TO, "From": FROM, "Body": "x" * 1601}, 400, 21617, "1600"),
    ],
)
async def test_validation_and_magic_numbers(
    capture_servers: CaptureServers, form: dict, status: int, code: int, text: str
) -> None:
    async with httpx.AsyncClient(base_url=capture_servers.base_url, timeout=10) as http:
        response = await http.post(MESSAGES, data=form, auth=AUTH)
    assert response.status_code == status
    body = response.json()
    assert body["code"] == code and body["status"] == status
    assert text in body["message"]
    assert body["more_info"] == f"https://www.twilio.com/docs/errors/{code}"
    assert capture_servers.sms.list() == []


async def test_invalid_to_message_names_the_number(capture_servers: CaptureServers) -> None:
    async with httpx.AsyncClient(base_url=capture_servers.base_url, timeout=10) as http:
        response = await http.post(
            MESSAGES, data={"To": "+1202555012", "From": FROM, "Body": "x"}, auth=AUTH
        )
    assert response.json()["message"] == "The 'To' number +1202555012 is not a valid phone number."


async def test_segments_and_messaging_service(capture_servers: CaptureServers) -> None:
    async with httpx.AsyncClient(base_url=capture_servers.base_url, timeout=10) as http:
        ucs2 = await http.post(
            MESSAGES, data={"To": TO, "From": FROM, "Body": "Привет " * 10 + "!"}, auth=AUTH
        )
        gsm = await http.post(MESSAGES, data={"To": TO, "From": FROM, "Body": "a" * 161}, auth=AUTH)
        service = await http.post(
            MESSAGES,
            data={"To": TO, "MessagingServiceSid": "MG" + "0" * 32, "Body": "hi"},
            auth=AUTH,
        )
    assert ucs2.status_code == 201 and ucs2.json()["num_segments"] == "2"  # 71 UCS-2 chars
    assert gsm.json()["num_segments"] == "2"
    assert service.status_code == 201
    assert service.json()["status"] == "accepted" and service.json()["from"] is None
    assert service.json()["messaging_service_sid"] == "MG" + "0" * 32


@contextlib.asynccontextmanager
async def _callback_receiver() -> AsyncIterator[tuple[str, list[tuple[dict, str]]]]:
    """A real HTTP server on loopback recording the status callbacks it receives."""
    received: list[tuple[dict, str]] = []

    async def hook(request: Request) -> PlainTextResponse:
        received.append((await read_form(request), request.headers["x-twilio-signature"]))
        return PlainTextResponse("ok")

    server = EmbeddedHttpServer(
        Starlette(routes=[Route("/hook", hook, methods=["POST"])]), "127.0.0.1", 0, "hook"
    )
    port = await server.start()
    try:
        yield f"http://127.0.0.1:{port}/hook", received
    finally:
        await server.stop()


async def test_status_callbacks_and_forced_failure(capture_servers: CaptureServers) -> None:
    async with (
        _callback_receiver() as (hook_url, received),
        httpx.AsyncClient(base_url=capture_servers.base_url, timeout=10) as http,
    ):
        # Cobro magic number: accepted, then undelivered (30003)
        created = await http.post(
            MESSAGES,
            data={"To": "+15005550011", "From": FROM, "Body": "x", "StatusCallback": hook_url},
            auth=AUTH,
        )
        assert created.status_code == 201 and created.json()["status"] == "queued"
        sid = created.json()["sid"]
        await _wait_for_status(capture_servers, sid, "undelivered")
        fetched = (await http.get(MESSAGES.replace(".json", f"/{sid}.json"), auth=AUTH)).json()
        assert (fetched["status"], fetched["error_code"]) == ("undelivered", 30003)
        for _ in range(100):
            if len(received) == 2:
                break
            await asyncio.sleep(0.02)
        assert [form["MessageStatus"] for form, _ in received] == ["sending", "undelivered"]
        form, signature = received[-1]
        assert form["MessageSid"] == sid and form["ErrorCode"] == "30003"
        assert RequestValidator(CAPTURE_AUTH_TOKEN).validate(hook_url, form, signature)

        # control endpoint: force any message to failed
        other = await http.post(MESSAGES, data={"To": TO, "From": FROM, "Body": "y"}, auth=AUTH)
        other_sid = other.json()["sid"]
        forced = await http.post(
            f"/_capture/sms/{other_sid}/status", data={"Status": "failed", "ErrorCode": "30008"}
        )
        assert forced.status_code == 200 and forced.json()["status"] == "failed"
        await asyncio.sleep(0.2)  # auto-delivery must not overwrite a terminal status
        assert capture_servers.sms.get(other_sid).status == "failed"
        assert capture_servers.sms.get(other_sid).message["error_message"] == "Unknown error"
        bad = await http.post(f"/_capture/sms/{other_sid}/status", data={"Status": "bogus"})
        assert bad.status_code == 400
        missing = await http.post("/_capture/sms/SM" + "0" * 32 + "/status", json={"status": "x"})
        assert missing.status_code == 404

        # Python API
        sms = await capture_servers.set_sms_status(other_sid, "undelivered", 30005)
        assert sms.message["error_code"] == 30005


async def test_sms_survive_restart(tmp_path: Path) -> None:
    kwargs = {"account_sid": CAPTURE_ACCOUNT_SID, "auth_token": CAPTURE_AUTH_TOKEN}
    first = CaptureServers(tmp_path / "capture", auto_deliver=False, **kwargs)
    async with first, httpx.AsyncClient(base_url=first.base_url, timeout=10) as http:
        sid = (
            await http.post(MESSAGES, data={"To": TO, "From": FROM, "Body": "x"}, auth=AUTH)
        ).json()["sid"]
    async with CaptureServers(tmp_path / "capture", **kwargs) as second:
        config = TwilioConfig(
            account_sid=CAPTURE_ACCOUNT_SID,
            auth_token=SecretStr(CAPTURE_AUTH_TOKEN),
            sms_from=FROM,
            base_url=second.base_url,
        )
        fetched = await asyncio.to_thread(make_client(config).messages(sid).fetch)
        assert (fetched.sid, fetched.status) == (sid, "queued")


async def test_inbox_lists_and_escapes_sms(capture_servers: CaptureServers) -> None:
    async with httpx.AsyncClient(base_url=capture_servers.base_url, timeout=10) as http:
        body = "<script>alert('sms')</script> pay now"
        sid = (
            await http.post(MESSAGES, data={"To": TO, "From": FROM, "Body": body}, auth=AUTH)
        ).json()["sid"]
        index = await http.get("/")
        assert index.status_code == 200
        assert "<script" not in index.text.lower()
        assert "&lt;script&gt;alert(&#39;sms&#39;)" in index.text
        assert f'href="/sms/{sid}"' in index.text
        page = await http.get(f"/sms/{sid}")
        assert page.status_code == 200 and "<script" not in page.text.lower()
        assert "GSM-7" in page.text
        listing = (await http.get("/api/sms")).json()
        assert listing[0]["message"]["body"] == body
        detail = (await http.get(f"/api/sms/{sid}")).json()
        assert detail["message"]["sid"] == sid
        assert (await http.get("/sms/SMnope")).status_code == 404
        assert (await http.get("/api/sms/SMnope")).status_code == 404
