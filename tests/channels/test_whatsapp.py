"""The WhatsApp sender (the SMS code path with `whatsapp:` addresses) against the real
capture server: a text body, an approved template (ContentSid + ContentVariables) shown as
its text, errors classified as for SMS; the template file format, pure."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest
from pydantic import SecretStr

from cobro.channels.sms import (
    PermanentSmsError,
    TwilioConfig,
    fetch_sms_async,
    send_message_async,
)
from cobro.channels.whatsapp import (
    WhatsappTemplateError,
    content_catalogue,
    fill,
    parse_template,
)
from cobro.devkit.capture import CaptureServers
from cobro.templating import Templates, sample_context
from tests.helpers.capture import CAPTURE_ACCOUNT_SID, CAPTURE_AUTH_TOKEN

SID = "HX" + "ab12" * 8
FROM = "whatsapp:+15005550006"


def _config(capture: CaptureServers) -> TwilioConfig:
    return TwilioConfig(
        account_sid=CAPTURE_ACCOUNT_SID,
        auth_token=SecretStr(CAPTURE_AUTH_TOKEN),
        sms_from="+15005550006",
        base_url=capture.base_url,
        timeout=10,
        whatsapp_from=FROM,
    )


async def test_a_whatsapp_text_reaches_the_capture_server(
    capture_servers: CaptureServers,
) -> None:
    config = _config(capture_servers)
    sid = await send_message_async(
        channel="whatsapp", to="+34600111222", body="Hola", config=config
    )
    [captured] = capture_servers.sms.list()
    assert captured.sid == sid
    message = captured.message
    assert (message["to"], message["from"], message["body"]) == (
        "whatsapp:+34600111222",
        FROM,
        "Hola",
    )
    assert (await fetch_sms_async(sid, config)).to == "whatsapp:+34600111222"
    async with httpx.AsyncClient(base_url=capture_servers.base_url, trust_env=False) as web:
        index = (await web.get("/")).text
        detail = (await web.get(f"/sms/{sid}")).text
    assert '<td class="channel">WhatsApp</td>' in index
    assert "<h1>WhatsApp\nto whatsapp:+34600111222</h1>" in detail


async def test_an_approved_template_is_sent_by_content_sid(
    tmp_path: Path, capture_servers: CaptureServers
) -> None:
    """ContentSid + ContentVariables, no Body; the capture server knows the ContentSid from
    its templates tree and shows (and lists) the text Twilio would."""
    templates = tmp_path / "templates"
    (templates / "whatsapp" / "en").mkdir(parents=True)
    approved = {"content_sid": SID, "body": "{{1}} owes {{2}}.", "variables": {"1": "a", "2": "b"}}
    (templates / "whatsapp" / "en" / "due.json").write_text(json.dumps(approved))
    capture_servers.http.twilio.templates_dir = templates
    sid = await send_message_async(
        channel="whatsapp",
        to="whatsapp:+34600111222",
        body="ACME owes €10.00.",
        content_sid=SID,
        content_variables={"1": "ACME", "2": "€10.00"},
        config=_config(capture_servers),
    )
    message = capture_servers.sms.get(sid).message
    assert message["content_sid"] == SID
    assert message["content_variables"] == {"1": "ACME", "2": "€10.00"}
    assert message["body"] == "ACME owes €10.00."
    async with httpx.AsyncClient(base_url=capture_servers.base_url, trust_env=False) as web:
        detail = (await web.get(f"/sms/{sid}")).text
    assert f"Sent as the approved template {SID}" in detail


@pytest.mark.parametrize(
    ("to", "code"), [("+15005550004", 21610), ("+15005550001", 21211), ("+1", 21211)]
)
async def test_refusals_are_permanent_as_for_sms(
    capture_servers: CaptureServers, to: str, code: int
) -> None:
    with pytest.raises(PermanentSmsError) as info:
        await send_message_async(
            channel="whatsapp", to=to, body="x", config=_config(capture_servers)
        )
    assert info.value.code == code
    assert capture_servers.sms.list() == []


async def test_a_whatsapp_sender_needs_its_prefix(capture_servers: CaptureServers) -> None:
    with pytest.raises(PermanentSmsError, match="whatsapp:"):
        await send_message_async(
            channel="whatsapp",
            to="+34600111222",
            body="x",
            from_="+15005550006",
            config=_config(capture_servers),
        )


# -- the template format (pure) ----------------------------------------------------------


def test_placeholders_are_filled_and_checked() -> None:
    template = parse_template(
        json.dumps({"body": "{{1}}: {{ 2 }} due", "variables": {"1": "x", "2": "y"}})
    )
    assert fill(template.body, {"1": "ACME", "2": "€5"}) == "ACME: €5 due"
    with pytest.raises(WhatsappTemplateError, match="placeholder"):
        parse_template(json.dumps({"body": "{{1}} {{2}}", "variables": {"1": "x"}}))
    with pytest.raises(WhatsappTemplateError, match="not in `body`"):
        parse_template(json.dumps({"body": "{{1}}", "variables": {"1": "x", "3": "z"}}))
    with pytest.raises(WhatsappTemplateError, match="content_sid"):
        parse_template(json.dumps({"body": "hi", "content_sid": "SM123"}))


def test_the_shipped_templates_render_in_every_language() -> None:
    t = Templates()
    for language in ("en", "es", "fr", "de", "it", "nl", "pt"):
        for name in ("due", "reminder"):
            wa = t.render_whatsapp(name, language, sample_context(language))
            assert wa.language == language
            assert "https://" in wa.text  # the customer's self-service link
            assert "{{" not in wa.text and wa.content_sid is None
    assert content_catalogue(Path(t.directory)) == {}  # nothing approved is shipped
