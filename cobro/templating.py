"""Message templates: Jinja2 (sandboxed, strict) over `templates/`, localised with Babel.

Layout: `templates/email/<lang>/<name>.{subject,txt,html}.j2`,
`templates/sms/<lang>/<name>.txt.j2` and `templates/whatsapp/<lang>/<name>.json` (an approved
WhatsApp template and its variables, see `cobro.channels.whatsapp`); files whose name
starts with `_` are partials (included by the others, e.g. the statement of open invoices).
A message is written in the first language that has every part of its template: the
customer's own (`fr_BE` -> `fr`), then the
`fallback` languages given (the chain of `languages:` in `rules/dunning.yaml`, see
`cobro.dunning.languages`), then `en`.

    t = Templates()                                        # or Templates(Path("templates"))
    ctx = build_context(customer, invoices, as_of=date.today(), language="fr")
    mail = t.render_email("reminder", "fr", ctx)           # .subject, .text, .html
    sms = t.render_sms("due", "fr", ctx)                   # .text
    wa = t.render_whatsapp("due", "fr", ctx)               # .text, .content_sid, .variables
    mail = t.render_email("due", "ca", ctx, fallback=("es",))  # .language "es", .fell_back
    errors = render_all_samples()      # ["templates/email/fr/due.html.j2:12: ..."]

HTML is autoescaped; subject and text are not (they are not HTML). Variables are strict: an
unknown name is an error at render time, which `render_all_samples()` (run in tests and by
`cobro rules check`-style checks) turns into `file:line: message` before any customer sees it.
Filters: `money(amount, currency, locale=None)`, `date(value, format="long", locale=None)`,
`number(value, locale=None)`; without `locale` they use the context's `locale`.

Variables every language's templates may use (a contract: `build_context` documents each):
`customer.{name, account}`, `company.{name, email, phone}`, `payment_url`, `portal_url`,
`step`, `as_of`, `locale`; the statement `invoices` (each: `number, due_date, days_overdue,
days_to_due, currency, open_amount, level, in_contact`) split into `due_invoices` /
`upcoming_invoices` (`due_count`, `upcoming_count`, `invoice_count`), `totals` / `due_totals` /
`upcoming_totals` (`currency, amount`), `max_days_overdue`, `first_due_date`; the earlier
messages `previous_contacts` (`at, date, channel, level, template`), `last_contact`,
`reminded_before` -- write "despite our reminders" only under `{% if reminded_before %}`.
A level is a template or action name (`pre_due`, `due`, `reminder`, `final_notice`, `task`,
`claim`); the statement partials `_statement.{txt,html}.j2` name them in each language.
"""

from __future__ import annotations

import traceback
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

from babel import Locale, UnknownLocaleError
from babel.dates import format_date as _babel_date
from babel.numbers import format_decimal
from jinja2 import (
    FileSystemLoader,
    StrictUndefined,
    TemplateError,
    TemplateNotFound,
    TemplateSyntaxError,
    pass_context,
)
from jinja2.sandbox import SandboxedEnvironment

from cobro.channels.whatsapp import WhatsappTemplateError, fill, parse_template
from cobro.formatting import money

TEMPLATES_DIR = Path(__file__).resolve().parent.parent / "templates"
DEFAULT_LANGUAGE = "en"
LANGUAGES = ("en", "fr", "es", "de", "it", "nl", "pt")  # shipped: every template in each
EMAIL_PARTS = ("subject", "txt", "html")
CHANNELS = ("email", "sms", "whatsapp")


class TemplateRenderError(Exception):
    """A template failed to compile or render; `location` is `file:line`."""

    def __init__(self, location: str, message: str) -> None:
        self.location = location
        self.message = message
        super().__init__(f"{location}: {message}")


@dataclass(frozen=True, slots=True)
class RenderedEmail:
    template: str
    language: str  # the language actually used (after fallback)
    subject: str
    text: str
    html: str
    requested: str = DEFAULT_LANGUAGE  # the customer's language, normalised

    @property
    def fell_back(self) -> bool:
        return self.language != self.requested


@dataclass(frozen=True, slots=True)
class RenderedWhatsapp:
    template: str
    language: str
    text: str  # the approved body with its placeholders filled
    variables: dict[str, str]  # placeholder -> value (Twilio's ContentVariables)
    content_sid: str | None = None  # None: send `text` as the body (sandbox, dev)
    requested: str = DEFAULT_LANGUAGE

    @property
    def fell_back(self) -> bool:
        return self.language != self.requested


@dataclass(frozen=True, slots=True)
class RenderedSms:
    template: str
    language: str
    text: str
    requested: str = DEFAULT_LANGUAGE

    @property
    def fell_back(self) -> bool:
        return self.language != self.requested


# ---------------------------------------------------------------------------- filters


def _locale_of(ctx: Any, locale: str | None) -> str:
    if locale:
        return locale
    value = ctx.get("locale") if ctx is not None else None
    return value or DEFAULT_LANGUAGE


def format_date(value: date | datetime, fmt: str = "long", locale: str = DEFAULT_LANGUAGE) -> str:
    """`format_date(date(2025, 7, 14), "long", "fr")` -> `14 juillet 2025`."""
    if isinstance(value, datetime):
        value = value.date()
    return _babel_date(value, format=fmt, locale=locale)


@pass_context
def _money_filter(ctx: Any, amount: Any, currency: str, locale: str | None = None) -> str:
    return money(amount, currency, _locale_of(ctx, locale))


@pass_context
def _date_filter(ctx: Any, value: Any, fmt: str = "long", locale: str | None = None) -> str:
    return format_date(value, fmt, _locale_of(ctx, locale))


@pass_context
def _number_filter(ctx: Any, value: Any, locale: str | None = None) -> str:
    return format_decimal(value, locale=_locale_of(ctx, locale))


# ---------------------------------------------------------------------------- environment


def _autoescape(name: str | None) -> bool:
    return bool(name) and name.endswith(".html.j2")  # type: ignore[union-attr]


def make_environment(directory: Path | str = TEMPLATES_DIR) -> SandboxedEnvironment:
    env = SandboxedEnvironment(
        loader=FileSystemLoader(str(directory)),
        undefined=StrictUndefined,
        autoescape=_autoescape,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=False,
        auto_reload=False,
    )
    env.filters["money"] = _money_filter
    env.filters["date"] = _date_filter
    env.filters["number"] = _number_filter
    return env


def normalise_language(language: str | None) -> str:
    """`fr_BE`, `fr-CA`, `FR` -> `fr`; empty -> `en`."""
    if not language:
        return DEFAULT_LANGUAGE
    return language.replace("-", "_").split("_")[0].lower()


class Templates:
    """Per-language lookup with fallback to `en`, rendering of emails and SMS."""

    def __init__(self, directory: Path | str = TEMPLATES_DIR) -> None:
        self.directory = Path(directory)
        self.env = make_environment(self.directory)

    def path(self, channel: str, language: str, template: str, part: str) -> str:
        if part == "json":  # WhatsApp: a JSON file, not a Jinja template
            return f"{channel}/{language}/{template}.json"
        return f"{channel}/{language}/{template}.{part}.j2"

    def resolve(
        self,
        channel: str,
        template: str,
        language: str | None,
        part: str,
        fallback: Sequence[str] = (),
    ) -> str:
        """The template path of one part: the first language of the chain that has it."""
        used = self.choose(channel, template, language, fallback, (part,))
        return self.path(channel, used, template, part)

    def chain(self, language: str | None, fallback: Sequence[str] = ()) -> tuple[str, ...]:
        """The customer's language, then `fallback`, then `en` (normalised, each once)."""
        codes = (normalise_language(language), *map(normalise_language, fallback))
        return tuple(dict.fromkeys((*codes, DEFAULT_LANGUAGE)))

    def choose(
        self,
        channel: str,
        template: str,
        language: str | None,
        fallback: Sequence[str] = (),
        parts: Sequence[str] | None = None,
    ) -> str:
        """The language a message is written in: the first of the chain with every part."""
        parts = parts or channel_parts(channel)
        chain = self.chain(language, fallback)
        for candidate in chain:
            if all(
                (self.directory / self.path(channel, candidate, template, p)).is_file()
                for p in parts
            ):
                return candidate
        raise TemplateNotFound(self.path(channel, chain[-1], template, parts[0]))

    def _render(self, name: str, context: Mapping[str, Any]) -> str:
        try:
            return self.env.get_template(name).render(**context)
        except TemplateError as exc:
            raise TemplateRenderError(error_location(exc, name, self.directory), str(exc)) from exc

    def render_email(
        self,
        template: str,
        language: str | None,
        context: Mapping[str, Any],
        fallback: Sequence[str] = (),
    ) -> RenderedEmail:
        used = self.choose("email", template, language, fallback)
        names = {p: self.path("email", used, template, p) for p in EMAIL_PARTS}
        ctx = _with_locale(context, used)
        subject = " ".join(self._render(names["subject"], ctx).split())
        return RenderedEmail(
            template=template,
            language=used,
            subject=subject,
            text=self._render(names["txt"], ctx).strip() + "\n",
            html=self._render(names["html"], ctx),
            requested=normalise_language(language),
        )

    def render_sms(
        self,
        template: str,
        language: str | None,
        context: Mapping[str, Any],
        fallback: Sequence[str] = (),
    ) -> RenderedSms:
        used = self.choose("sms", template, language, fallback)
        ctx = _with_locale(context, used)
        text = " ".join(self._render(self.path("sms", used, template, "txt"), ctx).split())
        return RenderedSms(
            template=template, language=used, text=text, requested=normalise_language(language)
        )

    def render_whatsapp(
        self,
        template: str,
        language: str | None,
        context: Mapping[str, Any],
        fallback: Sequence[str] = (),
    ) -> RenderedWhatsapp:
        """The approved template of the chain's first language that has it, its variables
        rendered (Jinja over `context`, `_macros.j2` imported, whitespace collapsed)."""
        used = self.choose("whatsapp", template, language, fallback)
        rel = self.path("whatsapp", used, template, "json")
        try:
            parsed = parse_template((self.directory / rel).read_text("utf-8"), rel)
        except WhatsappTemplateError as exc:
            location, _, message = str(exc).partition(": ")
            raise TemplateRenderError(_display(str(self.directory / location)), message) from exc
        ctx = _with_locale(context, used)
        values = {}
        for key, source in parsed.variables.items():
            try:
                text = self.env.from_string(WHATSAPP_PRELUDE + source).render(**ctx)
            except TemplateError as exc:
                where = f"{_display(str(self.directory / rel))}:1"
                raise TemplateRenderError(where, f"variable {key}: {exc}") from exc
            values[key] = " ".join(text.split())
            if not values[key]:  # WhatsApp refuses an empty variable
                where = f"{_display(str(self.directory / rel))}:1"
                raise TemplateRenderError(where, f"variable {key} renders empty")
        return RenderedWhatsapp(
            template=template,
            language=used,
            text=" ".join(fill(parsed.body, values).split()),
            variables=values,
            content_sid=parsed.content_sid,
            requested=normalise_language(language),
        )

    def languages(self) -> set[str]:
        """The languages that have at least one template (partials aside)."""
        return {lang for _, lang, _ in self.catalogue()}

    def catalogue(self) -> list[tuple[str, str, str]]:
        """Every (channel, language, template name) present (partials excluded)."""
        out: set[tuple[str, str, str]] = set()
        for channel in CHANNELS:
            root = self.directory / channel
            if not root.is_dir():
                continue
            for f in root.glob("*/*.json" if channel == "whatsapp" else "*/*.j2"):
                if f.name.startswith("_"):
                    continue
                out.add((channel, f.parent.name, f.name.split(".")[0]))
        return sorted(out)


WHATSAPP_PRELUDE = '{% from "_macros.j2" import totals_line with context %}'


def channel_parts(channel: str) -> tuple[str, ...]:
    """The files one template has on `channel` (`path()`'s parts)."""
    if channel == "email":
        return EMAIL_PARTS
    return ("json",) if channel == "whatsapp" else ("txt",)


def _with_locale(context: Mapping[str, Any], used: str) -> dict[str, Any]:
    """Format numbers and dates in the language of the text actually used: the context's
    locale if it is a variant of that language (`fr_BE` for `fr`), else the language itself
    (a customer in `it` falling back to the `en` templates gets English dates)."""
    locale = context.get("locale") or used
    if normalise_language(locale) != used:
        locale = used
    return {**context, "locale": locale}


def error_location(exc: BaseException, name: str, directory: Path | str = TEMPLATES_DIR) -> str:
    """`templates/email/fr/due.html.j2:12` for a Jinja error (the innermost template frame)."""
    root = Path(directory)
    if isinstance(exc, TemplateSyntaxError):
        file = exc.filename or str(root / (exc.name or name))
        return f"{_display(file)}:{exc.lineno}"
    frames = [f for f in traceback.extract_tb(exc.__traceback__) if f.filename.endswith(".j2")]
    if frames:
        return f"{_display(frames[-1].filename)}:{frames[-1].lineno}"
    return f"{_display(str(root / name))}:1"


def _display(file: str) -> str:
    p = Path(file)
    try:
        return str(p.resolve().relative_to(Path.cwd()))
    except ValueError:
        return str(p)


# ---------------------------------------------------------------------------- context


def _get(obj: Any, name: str, default: Any = None) -> Any:
    if isinstance(obj, Mapping):
        return obj.get(name, default)
    return getattr(obj, name, default)


def build_context(
    customer: Any,
    invoices: Iterable[Any],
    *,
    as_of: date,
    language: str | None = None,
    company: Mapping[str, Any] | None = None,
    payment_url: str | None = None,
    portal_url: str | None = None,
    step: str | None = None,
    levels: Mapping[str, str | None] | None = None,
    contact_invoices: Iterable[str] | None = None,
    previous_contacts: Iterable[Any] = (),
) -> dict[str, Any]:
    """The variables every template may use (the names are a contract: every language's
    templates, shipped or added, rely on them).

    `customer`: anything with `name`, `account` (and optionally `language`); `invoices`: the
    statement, i.e. every open invoice of the customer, anything with `number`, `due_date`,
    `currency`, `open_amount` (an ORM row, `InvoiceState`, or a mapping); `levels`: invoice
    number -> the level (template or action name) it has reached, this contact included;
    `contact_invoices`: the numbers whose level this contact advances (default: all);
    `previous_contacts`: the messages the customer already received (objects or mappings
    with `at`, `channel`, `level`, `template`).

    Context:
    * `customer.{name, account}`, `company.{name, email, phone}`, `payment_url` (may be
      None), `portal_url` (the customer's signed self-service link; None in samples
      without one), `step` (this contact's template), `as_of`, `locale`;
    * `invoices`: every statement line, sorted by due date: `number, due_date, days_overdue,
      days_to_due, currency, open_amount, level` (None: no reminder yet), `in_contact` (this
      contact advances it); `invoice_count`, `max_days_overdue`, `first_due_date`;
    * `due_invoices` (due today or earlier) and `upcoming_invoices` (not yet due): the two
      blocks of the statement, with `due_count`, `upcoming_count`;
    * `totals`, `due_totals`, `upcoming_totals`: `currency, amount`, one per currency, never
      mixed (all lines / the due block / the not-yet-due block);
    * `previous_contacts`: `at, date, channel, level, template`, oldest first;
      `last_contact` (None if none); `reminded_before`: true only when a message was
      actually sent before this one -- the only case a template may say "despite our
      reminders".
    """
    lines = []
    chased = set(contact_invoices) if contact_invoices is not None else None
    level_of = dict(levels or {})
    for inv in invoices:
        due = _get(inv, "due_date")
        amount = Decimal(str(_get(inv, "open_amount")))
        number = _get(inv, "number")
        lines.append(
            {
                "number": number,
                "due_date": due,
                "days_overdue": max((as_of - due).days, 0),
                "days_to_due": max((due - as_of).days, 0),
                "currency": _get(inv, "currency"),
                "open_amount": amount,
                "level": level_of.get(number),
                "in_contact": chased is None or number in chased,
            }
        )
    lines.sort(key=lambda x: (x["due_date"], x["number"]))
    due_lines = [x for x in lines if x["due_date"] <= as_of]
    upcoming = [x for x in lines if x["due_date"] > as_of]
    lang = normalise_language(language or _get(customer, "language"))
    try:
        Locale.parse(lang)
    except (UnknownLocaleError, ValueError):
        lang = DEFAULT_LANGUAGE
    company = dict(company or {})
    previous = []
    for c in previous_contacts:
        at = _get(c, "at")
        previous.append(
            {
                "at": at,
                "date": at.date() if isinstance(at, datetime) else at,
                "channel": _get(c, "channel"),
                "level": _get(c, "level"),
                "template": _get(c, "template"),
            }
        )
    previous.sort(key=lambda c: (c["date"], c["channel"] or ""))
    return {
        "customer": {"name": _get(customer, "name") or "", "account": _get(customer, "account")},
        "invoices": lines,
        "due_invoices": due_lines,
        "upcoming_invoices": upcoming,
        "totals": _per_currency(lines),
        "due_totals": _per_currency(due_lines),
        "upcoming_totals": _per_currency(upcoming),
        "invoice_count": len(lines),
        "due_count": len(due_lines),
        "upcoming_count": len(upcoming),
        "max_days_overdue": max((x["days_overdue"] for x in lines), default=0),
        "first_due_date": lines[0]["due_date"] if lines else as_of,
        "as_of": as_of,
        "company": {
            "name": company.get("name", "Cobro"),
            "email": company.get("email", "credit@example.com"),
            "phone": company.get("phone", "+33 1 23 45 67 89"),
        },
        "payment_url": payment_url,
        "portal_url": portal_url,
        "step": step,
        "locale": lang,
        "previous_contacts": previous,
        "last_contact": previous[-1] if previous else None,
        "reminded_before": bool(previous),
    }


def _per_currency(lines: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    totals: dict[str, Decimal] = {}
    for x in lines:
        totals[x["currency"]] = totals.get(x["currency"], Decimal(0)) + x["open_amount"]
    return [{"currency": c, "amount": totals[c]} for c in sorted(totals)]


def sample_context(
    language: str = DEFAULT_LANGUAGE, reminded_before: bool = True
) -> dict[str, Any]:
    """A realistic context (two currencies, one invoice not yet due, one earlier reminder)
    for template checks; `reminded_before=False`: a first contact."""
    customer = {"name": "Société Exemple & Fils <SARL>", "account": "C-0042"}
    invoices = [
        {"number": "F-2025-0101", "due_date": date(2025, 6, 2), "currency": "EUR",
         "open_amount": Decimal("1234.56")},
        {"number": "F-2025-0117", "due_date": date(2025, 6, 16), "currency": "EUR",
         "open_amount": Decimal("80.00")},
        {"number": "F-2025-0150", "due_date": date(2025, 7, 10), "currency": "USD",
         "open_amount": Decimal("999.99")},
    ]  # fmt: skip
    previous = (
        [{"at": datetime(2025, 6, 3, 7, 0), "channel": "email", "level": 1, "template": "due"}]
        if reminded_before
        else []
    )
    context = build_context(
        customer,
        invoices,
        as_of=date(2025, 7, 1),
        language=language,
        company={"name": "Acme Industrie", "email": "credit@acme.example", "phone": "+33 1 00"},
        payment_url="https://pay.example.com/C-0042",
        portal_url="https://cobro.example.com/p/1.SampleNonce123456.SampleSignature1234567",
        step="reminder",
        levels={"F-2025-0101": "reminder", "F-2025-0117": "due", "F-2025-0150": None},
        contact_invoices=["F-2025-0101"],
        previous_contacts=previous,
    )
    # an instalment reminder's variables (`cobro.dunning.messages.instalment_context`)
    lines = [
        {"seq": k, "due_date": date(2025, 6 + k, 1), "amount": Decimal("411.52"),
         "paid": Decimal("411.52") if k == 1 else Decimal(0),
         "left": Decimal(0) if k == 1 else Decimal("411.52"), "currency": "EUR"}
        for k in (1, 2, 3)
    ]  # fmt: skip
    context["instalment"] = lines[1]
    context["plan"] = {
        "count": 3, "total": Decimal("1234.56"), "currency": "EUR", "instalments": lines,
        "invoices": ["F-2025-0101", "F-2025-0117"],
    }  # fmt: skip
    return context


def render_all_samples(
    directory: Path | str = TEMPLATES_DIR,
    languages: Sequence[str] = LANGUAGES,
    contexts: Mapping[str, Mapping[str, Any]] | None = None,
) -> list[str]:
    """Render every template file in every language against `sample_context`; return the
    problems as `file:line: message` (empty list: all good). Also reports a template missing
    a part (email without html...) or missing from a language that has others."""
    t = Templates(directory)
    errors: list[str] = []
    catalogue = t.catalogue()
    names = {(ch, name) for ch, _, name in catalogue}
    root = Path(directory)
    for channel, name in sorted(names):
        parts = channel_parts(channel)
        for lang in languages:
            given = (contexts or {}).get(lang)
            # a first contact and a later one: both branches of `reminded_before` render
            ctxs = [given] if given else [sample_context(lang), sample_context(lang, False)]
            for part in parts:
                rel = t.path(channel, lang, name, part)
                if not (root / rel).is_file():
                    errors.append(f"{_display(str(root / rel))}:1: missing template")
                    continue
                for ctx in ctxs:
                    try:
                        if channel == "whatsapp":
                            t.render_whatsapp(name, lang, ctx)
                        else:
                            t.env.get_template(rel).render(**ctx)
                    except TemplateRenderError as exc:
                        errors.append(str(exc))
                        break
                    except TemplateError as exc:
                        errors.append(f"{error_location(exc, rel, root)}: {exc}")
                        break
                    except Exception as exc:  # a filter fed a wrong type, etc.
                        where = error_location(exc, rel, root)
                        errors.append(f"{where}: {type(exc).__name__}: {exc}")
                        break
    return errors
