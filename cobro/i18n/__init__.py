"""The team's language: gettext catalogues (Babel) for the dashboard, the emails to the team
and the CLI, in English (the default, also the msgids), Spanish, French and German.

The catalogues are the `.po` files under `cobro/i18n/locale/<lang>/LC_MESSAGES/cobro.po`
(extracted with `pybabel extract -F babel.cfg`, see the README); they are compiled in memory
the first time a language is used, so a clean clone needs no `pybabel compile` step.

Which language: `current_locale()` is the one set for this context (`using(...)`: the
dashboard sets it per request — the user's choice, else the language cookie, else the
browser's `Accept-Language`; the team digest sets `COBRO_TEAM_LANGUAGE`), else the
environment's (`COBRO_LANG`, else `LC_ALL` / `LC_MESSAGES` / `LANG`), else English.
"""

from __future__ import annotations

import io
import os
from contextvars import ContextVar, Token
from functools import cache
from gettext import GNUTranslations, NullTranslations
from pathlib import Path

LOCALES = ("en", "es", "fr", "de")
DEFAULT_LOCALE = "en"
NAMES = {"en": "English", "es": "Español", "fr": "Français", "de": "Deutsch"}
DOMAIN = "cobro"
LOCALE_DIR = Path(__file__).parent / "locale"

_current: ContextVar[str | None] = ContextVar("cobro_locale", default=None)


def normalise(value: str | None) -> str | None:
    """A supported language from a tag as people and systems write it (`es`, `es_ES.UTF-8`,
    `fr-CA`, `DE`), else None."""
    if not value:
        return None
    tag = value.split(".", 1)[0].split("@", 1)[0].replace("-", "_").split("_", 1)[0].lower()
    return tag if tag in LOCALES else None


def environment_locale() -> str:
    """The CLI's language: `COBRO_LANG`, else the POSIX locale variables, else English."""
    for name in ("COBRO_LANG", "LC_ALL", "LC_MESSAGES", "LANG"):
        raw = os.environ.get(name)
        if raw:  # the first one set decides, as for gettext (`C.UTF-8` means English)
            return normalise(raw) or DEFAULT_LOCALE
    return DEFAULT_LOCALE


def current_locale() -> str:
    return _current.get() or environment_locale()


class using:
    """Run the block in `locale` (normalised; unknown or None: English). A class rather than
    a generator context manager: the classification enters one per message and language."""

    __slots__ = ("_tokens", "chosen")

    def __init__(self, locale: str | None) -> None:
        self.chosen = normalise(locale) or DEFAULT_LOCALE
        self._tokens: list[Token[str | None]] = []

    def __enter__(self) -> str:
        self._tokens.append(_current.set(self.chosen))
        return self.chosen

    def __exit__(self, *exc: object) -> None:
        _current.reset(self._tokens.pop())


def negotiate(accept_language: str | None) -> str | None:
    """The best supported language for an `Accept-Language` header (Babel's negotiation,
    quality values honoured), None when the browser asks for none of ours."""
    if not accept_language:
        return None
    from babel.core import negotiate_locale

    wanted: list[tuple[float, int, str]] = []
    for i, part in enumerate(accept_language.split(",")[:32]):
        tag, _, params = part.strip().partition(";")
        q = 1.0
        if params.strip().startswith("q="):
            try:
                q = float(params.strip()[2:])
            except ValueError:
                q = 0.0
        if tag and q > 0:
            wanted.append((-q, i, tag.strip().replace("-", "_")))
    preferred = [tag for _, _, tag in sorted(wanted)]
    # each tag also offers its language alone (`fr_CA` is good enough for `fr`)
    preferred = [t for tag in preferred for t in (tag, tag.split("_", 1)[0])]
    return negotiate_locale(preferred, LOCALES, sep="_")


@cache
def translations(locale: str) -> NullTranslations:
    """The catalogue of `locale`, compiled in memory from its `.po` file (English: none)."""
    if locale == DEFAULT_LOCALE or locale not in LOCALES:
        return NullTranslations()
    from babel.messages.mofile import write_mo
    from babel.messages.pofile import read_po

    path = LOCALE_DIR / locale / "LC_MESSAGES" / f"{DOMAIN}.po"
    with path.open("rb") as fh:
        catalog = read_po(fh, locale=locale, domain=DOMAIN)
    buffer = io.BytesIO()
    write_mo(buffer, catalog)  # fuzzy entries are left out, as `pybabel compile` does
    buffer.seek(0)
    return GNUTranslations(buffer)


def gettext(message: str) -> str:
    return translations(current_locale()).gettext(message)


def ngettext(singular: str, plural: str, n: int) -> str:
    return translations(current_locale()).ngettext(singular, plural, n)


def N_(message: str) -> str:
    """Marks a text for extraction where it is defined; `gettext` translates it where used."""
    return message


_ = gettext
