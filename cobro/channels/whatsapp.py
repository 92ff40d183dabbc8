"""WhatsApp message templates: the file format, pure (no Jinja environment, no I/O but
reading the files).

A business-initiated WhatsApp message must use a template WhatsApp approved beforehand. In
Twilio such a template is a Content API object (`HX...`) whose text has numbered
placeholders, `{{1}}`, `{{2}}`... A message names it (`ContentSid`) and gives the values
(`ContentVariables`, a JSON object). Cobro keeps each template beside the SMS ones:

    templates/whatsapp/<lang>/<name>.json
    {
      "content_sid": "HX...",               # null or absent: send `body` as text (sandbox, dev)
      "body": "{{1}}: {{2}} is now due on account {{3}}. Your account: {{4}}",
      "variables": {                        # each placeholder: Jinja over the message context
        "1": "{{ company.name }}",          #   (the variables of `cobro.templating`,
        "2": "{{ totals_line(due_totals) }}",  #  `_macros.j2` imported)
        "3": "{{ customer.account }}",
        "4": "{{ portal_url }}"
      }
    }

`body` is the template's text exactly as submitted for approval; the text a customer reads
is `body` with the placeholders filled (`fill`). It is what Cobro records, what it sends as
`Body` when there is no `content_sid`, and what it looks for in the provider's list before
a resend. With a `content_sid`, Twilio gets `ContentSid` + `ContentVariables` instead.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

PREFIX = "whatsapp:"
PLACEHOLDER = re.compile(r"\{\{\s*(\d+)\s*\}\}")
CONTENT_SID = re.compile(r"^HX[0-9a-fA-F]{32}$")


class WhatsappTemplateError(ValueError):
    """The template file is not of the documented shape; the message names the file."""


@dataclass(frozen=True)
class WhatsappTemplate:
    body: str
    variables: dict[str, str] = field(default_factory=dict)  # placeholder -> Jinja source
    content_sid: str | None = None

    def placeholders(self) -> list[str]:
        return list(dict.fromkeys(PLACEHOLDER.findall(self.body)))


def parse_template(text: str, where: str = "<template>") -> WhatsappTemplate:
    """A template file's content, checked: a non-empty `body`; every placeholder of `body`
    given in `variables` and no variable unused; a `content_sid` of Twilio's shape."""
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise WhatsappTemplateError(f"{where}:{exc.lineno}: not JSON: {exc.msg}") from None
    if not isinstance(data, dict):
        raise WhatsappTemplateError(f"{where}:1: a JSON object is expected")
    unknown = sorted(set(data) - {"content_sid", "body", "variables"})
    if unknown:
        raise WhatsappTemplateError(f"{where}:1: unknown key(s): {', '.join(unknown)}")
    body = data.get("body")
    if not isinstance(body, str) or not body.strip():
        raise WhatsappTemplateError(f"{where}:1: `body` (the approved text) is required")
    variables = data.get("variables") or {}
    if not isinstance(variables, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in variables.items()
    ):
        raise WhatsappTemplateError(f"{where}:1: `variables` maps placeholder numbers to text")
    sid = data.get("content_sid") or None
    if sid is not None and not (isinstance(sid, str) and CONTENT_SID.match(sid)):
        raise WhatsappTemplateError(f"{where}:1: `content_sid` {sid!r} is not HX + 32 hex")
    template = WhatsappTemplate(body, dict(variables), sid)
    used = set(template.placeholders())
    missing = sorted(used - set(variables), key=int)
    if missing:
        raise WhatsappTemplateError(
            f"{where}:1: placeholder(s) {', '.join(missing)} of `body` not in `variables`"
        )
    unused = sorted(set(variables) - used)
    if unused:
        raise WhatsappTemplateError(f"{where}:1: variable(s) {', '.join(unused)} not in `body`")
    return template


def load_template(path: Path) -> WhatsappTemplate:
    return parse_template(path.read_text(encoding="utf-8"), str(path))


def fill(body: str, values: Mapping[str, str]) -> str:
    """`body` with each `{{n}}` replaced by its value (unknown ones left as written)."""
    return PLACEHOLDER.sub(lambda m: values.get(m.group(1), m.group(0)), body)


def content_catalogue(directory: Path) -> dict[str, str]:
    """Content SID -> approved text, over `<directory>/whatsapp/*/*.json` (files that do not
    parse are left out): how the capture server shows a template message as text."""
    out: dict[str, str] = {}
    for path in sorted((Path(directory) / "whatsapp").glob("*/*.json")):
        try:
            template = load_template(path)
        except (OSError, WhatsappTemplateError):
            continue
        if template.content_sid:
            out[template.content_sid] = template.body
    return out


def is_whatsapp(address: str | None) -> bool:
    return bool(address) and address.lower().startswith(PREFIX)  # type: ignore[union-attr]


def bare_number(address: str) -> str:
    """`whatsapp:+34600111222` -> `+34600111222` (an SMS number is returned as it is)."""
    return address[len(PREFIX) :] if is_whatsapp(address) else address


def address(number: str) -> str:
    """`+34600111222` -> `whatsapp:+34600111222`."""
    return PREFIX + bare_number(number)
