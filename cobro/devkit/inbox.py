"""The capture inbox: captured emails, SMS and WhatsApp messages for humans (HTML) and
scripts (JSON).

    GET /                 emails and SMS, newest first
    GET /mail/{id}        one email: headers, text part, HTML part in a sandboxed iframe
    GET /mail/{id}/raw    the message as received (text/plain)
    GET /sms/{sid}        one SMS and its status history
    GET /api/mail         JSON list (`?message_id=<...>`, `?to=...`: only those)
    GET /api/mail/{id}    JSON detail (headers, text, html, raw)
    GET /api/sms          JSON list;  GET /api/sms/{sid}  JSON detail

Every piece of message content goes through Jinja2 autoescaping; the HTML part is only ever
rendered inside `<iframe sandbox srcdoc=...>` (no scripts, no same-origin) and the pages
carry a Content-Security-Policy that forbids scripts and any remote resource. No CDN.
"""

from __future__ import annotations

import asyncio

from jinja2 import DictLoader, Environment, select_autoescape
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, PlainTextResponse, Response
from starlette.routing import BaseRoute, Route

from cobro.devkit.capture_sms import SmsNotFound, SmsStore
from cobro.devkit.capture_smtp import MailNotFound, MailStore

SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; style-src 'unsafe-inline'; img-src data:; "
        "frame-src 'self'; form-action 'none'; base-uri 'none'; frame-ancestors 'self'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}

TEMPLATES = {
    "base.html": """<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<title>{% block title %}Cobro capture inbox{% endblock %}</title>
<style>
body { font: 14px/1.4 system-ui, sans-serif; margin: 0 auto; max-width: 72rem;
  padding: 1rem; color: #222; }
h1 { font-size: 1.4rem; } h2 { font-size: 1.1rem; margin-top: 2rem; }
a { color: #1a56a8; }
table { border-collapse: collapse; width: 100%; }
th, td { text-align: left; padding: .3rem .5rem; border-bottom: 1px solid #ddd;
  vertical-align: top; }
th { background: #f4f4f4; }
pre { white-space: pre-wrap; word-break: break-word; background: #f8f8f8; padding: .75rem;
  border: 1px solid #e4e4e4; }
iframe { width: 100%; height: 32rem; border: 1px solid #ccc; background: #fff; }
.muted { color: #777; } .status-failed, .status-undelivered { color: #b00020; font-weight: 600; }
.status-delivered { color: #217a3c; }
</style></head>
<body><p class="muted"><a href="/">Cobro capture inbox</a></p>
{% block content %}{% endblock %}
</body></html>""",
    "index.html": """{% extends "base.html" %}
{% block content %}
<h1>Captured messages</h1>
<h2>Emails ({{ mails|length }})</h2>
{% if mails %}<table>
<tr><th>Received (UTC)</th><th>From</th><th>To</th><th>Subject</th></tr>
{% for m in mails %}<tr>
<td>{{ m.received_at.strftime("%Y-%m-%d %H:%M:%S") }}</td><td>{{ m.from_ }}</td>
<td>{{ m.envelope_to|join(", ") }}</td>
<td><a href="/mail/{{ m.id }}">{{ m.subject or "(no subject)" }}</a></td>
</tr>{% endfor %}
</table>{% else %}<p class="muted">No email captured yet.</p>{% endif %}
<h2>SMS and WhatsApp ({{ sms|length }})</h2>
{% if sms %}<table>
<tr><th>Created (UTC)</th><th>Channel</th><th>To</th><th>From</th><th>Body</th>
<th>Segments</th><th>Status</th></tr>
{% for s in sms %}<tr>
<td>{{ s.created_at.strftime("%Y-%m-%d %H:%M:%S") }}</td>
<td class="channel">{{ "WhatsApp" if s.message.to.startswith("whatsapp:") else "SMS" }}</td>
<td>{{ s.message.to }}</td>
<td>{{ s.message["from"] or s.message.messaging_service_sid }}</td>
<td><a href="/sms/{{ s.sid }}">
{{- (s.message.body or "template " ~ s.message.content_sid)|truncate(80) }}</a></td>
<td>{{ s.message.num_segments }}</td>
<td class="status-{{ s.status }}">{{ s.status }}</td>
</tr>{% endfor %}
</table>{% else %}<p class="muted">No SMS captured yet.</p>{% endif %}
{% endblock %}""",
    "mail.html": """{% extends "base.html" %}
{% block title %}{{ mail.summary.subject }} — Cobro capture inbox{% endblock %}
{% block content %}
<h1>{{ mail.summary.subject or "(no subject)" }}</h1>
<table>
<tr><th>Envelope from</th><td>{{ mail.summary.envelope_from }}</td></tr>
<tr><th>Envelope to</th><td>{{ mail.summary.envelope_to|join(", ") }}</td></tr>
<tr><th>Received</th><td>{{ mail.summary.received_at.isoformat() }}</td></tr>
{% for name, value in mail.headers %}<tr><th>{{ name }}</th><td>{{ value }}</td></tr>
{% endfor %}</table>
<p><a href="/mail/{{ mail.id }}/raw">Raw message</a> ·
<a href="/api/mail/{{ mail.id }}">JSON</a></p>
{% if mail.html is not none %}<h2>HTML part</h2>
<iframe sandbox="" referrerpolicy="no-referrer" title="HTML part" srcdoc="{{ mail.html }}"></iframe>
{% endif %}
{% if mail.text is not none %}<h2>Text part</h2><pre>{{ mail.text }}</pre>{% endif %}
{% endblock %}""",
    "sms.html": """{% extends "base.html" %}
{% block title %}SMS {{ sms.sid }} — Cobro capture inbox{% endblock %}
{% block content %}
<h1>{{ "WhatsApp" if sms.message.to.startswith("whatsapp:") else "SMS" }}
to {{ sms.message.to }}</h1>
<pre>{{ sms.message.body or "" }}</pre>
{% if sms.message.content_sid %}<p>Sent as the approved template {{ sms.message.content_sid }}
with the variables {{ sms.message.content_variables|tojson }}.</p>{% endif %}
<table>
{% for key in ["sid", "status", "error_code", "error_message", "from", "to",
  "messaging_service_sid", "num_segments", "date_created", "date_sent", "date_updated"] %}
<tr><th>{{ key }}</th><td>{{ sms.message[key] if sms.message[key] is not none else "" }}</td></tr>
{% endfor %}
<tr><th>encoding</th><td>{{ encoding }}</td></tr>
<tr><th>status callback</th><td>{{ sms.status_callback or "" }}</td></tr>
</table>
<h2>Status history</h2>
<table><tr><th>At (UTC)</th><th>Status</th><th>Error code</th></tr>
{% for h in sms.history %}<tr><td>{{ h.at }}</td>
<td class="status-{{ h.status }}">{{ h.status }}</td><td>{{ h.error_code or "" }}</td></tr>
{% endfor %}
</table>
<p><a href="/api/sms/{{ sms.sid }}">JSON</a></p>
{% endblock %}""",
    "not_found.html": """{% extends "base.html" %}
{% block content %}<h1>Not found</h1><p>{{ what }}</p>{% endblock %}""",
}

_env = Environment(
    loader=DictLoader(TEMPLATES),
    autoescape=select_autoescape(default=True, default_for_string=True),
)


def _page(name: str, status_code: int = 200, **context: object) -> HTMLResponse:
    return HTMLResponse(
        _env.get_template(name).render(**context),
        status_code=status_code,
        headers=SECURITY_HEADERS,
    )


def inbox_routes(sms_store: SmsStore, mail_store: MailStore | None) -> list[BaseRoute]:
    async def index(request: Request) -> Response:
        store = mail_store
        return _page("index.html", mails=store.list() if store else [], sms=sms_store.list())

    async def mail_page(request: Request) -> Response:
        store = mail_store
        try:
            if store is None:
                raise MailNotFound(request.path_params["id"])
            mail = store.get(request.path_params["id"])
        except MailNotFound:
            return _page("not_found.html", 404, what="No such email.")
        return _page("mail.html", mail=mail)

    async def mail_raw(request: Request) -> Response:
        store = mail_store
        try:
            if store is None:
                raise MailNotFound(request.path_params["id"])
            mail = store.get(request.path_params["id"])
        except MailNotFound:
            return PlainTextResponse("No such email.", 404)
        return PlainTextResponse(mail.raw.decode("utf-8", "replace"), headers=SECURITY_HEADERS)

    async def sms_page(request: Request) -> Response:
        from cobro.channels.sms import sms_segments

        try:
            sms = sms_store.get(request.path_params["sid"])
        except SmsNotFound:
            return _page("not_found.html", 404, what="No such SMS.")
        encoding, _ = sms_segments(sms.message.get("body") or "")
        return _page("sms.html", sms=sms, encoding=encoding)

    async def api_mail(request: Request) -> Response:
        store = mail_store
        message_id = request.query_params.get("message_id")
        to = request.query_params.get("to")
        if store is None:
            mails = []
        elif message_id is not None or to is not None:
            mails = await asyncio.to_thread(store.find, message_id=message_id, to=to)
        else:
            mails = store.list()
        return JSONResponse([m.to_dict() for m in mails])

    async def api_mail_detail(request: Request) -> Response:
        store = mail_store
        try:
            if store is None:
                raise MailNotFound(request.path_params["id"])
            mail = store.get(request.path_params["id"])
        except MailNotFound:
            return JSONResponse({"error": "no such email"}, 404)
        return JSONResponse(mail.to_dict())

    async def api_sms(request: Request) -> Response:
        return JSONResponse([s.to_dict() for s in sms_store.list()])

    async def api_sms_detail(request: Request) -> Response:
        try:
            sms = sms_store.get(request.path_params["sid"])
        except SmsNotFound:
            return JSONResponse({"error": "no such SMS"}, 404)
        return JSONResponse(sms.to_dict())

    return [
        Route("/", index),
        Route("/mail/{id}", mail_page),
        Route("/mail/{id}/raw", mail_raw),
        Route("/sms/{sid}", sms_page),
        Route("/api/mail", api_mail),
        Route("/api/mail/{id}", api_mail_detail),
        Route("/api/sms", api_sms),
        Route("/api/sms/{sid}", api_sms_detail),
    ]
