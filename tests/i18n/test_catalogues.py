"""The gettext catalogues: every text marked in the code and the templates is in the
template (`cobro.pot`) and translated in every language, with the same placeholders; the
catalogues compile in memory (no `pybabel compile` step on a clean clone)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from babel.messages.extract import extract_from_dir
from babel.messages.frontend import parse_mapping_cfg
from babel.messages.pofile import read_po

from cobro.i18n import LOCALE_DIR, LOCALES, translations

ROOT = Path(__file__).resolve().parents[2]
TRANSLATED = [code for code in LOCALES if code != "en"]
PLACEHOLDER = re.compile(r"%\([a-z_]+\)[sr]|%%")


def _catalogue(path: Path, locale: str | None = None):  # type: ignore[no-untyped-def]
    with path.open("rb") as fh:
        return read_po(fh, locale=locale)


def _key(message) -> tuple[str | None, str]:  # type: ignore[no-untyped-def]
    msgid = message.id[0] if isinstance(message.id, tuple) else message.id
    return message.context, msgid


def _extracted() -> set[tuple[str | None, str]]:
    """What `pybabel extract -F babel.cfg -k N_` finds in the sources today."""
    method_map, options_map = parse_mapping_cfg((ROOT / "babel.cfg").open())
    found = set()
    keywords = {
        "N_": None,
        "_": None,
        "gettext": None,
        "ngettext": (1, 2),
        "pgettext": ((1, "c"), 2),
    }
    for _file, _line, message, _comments, context in extract_from_dir(
        str(ROOT), method_map, options_map, keywords=keywords
    ):
        found.add((context, message[0] if isinstance(message, tuple) else message))
    return found


def test_the_template_has_every_marked_text() -> None:
    template = {_key(m) for m in _catalogue(LOCALE_DIR / "cobro.pot") if m.id}
    missing = _extracted() - template
    assert not missing, (
        f"texts marked but not in cobro.pot (run the pybabel extract/update of the README): "
        f"{sorted(missing, key=str)[:10]}"
    )
    assert len(template) > 400


@pytest.mark.parametrize("locale", TRANSLATED)
def test_every_text_is_translated_with_the_same_placeholders(locale: str) -> None:
    template = {_key(m) for m in _catalogue(LOCALE_DIR / "cobro.pot") if m.id}
    po = _catalogue(LOCALE_DIR / locale / "LC_MESSAGES" / "cobro.po", locale)
    done = {}
    for m in po:
        if not m.id:
            continue
        assert "fuzzy" not in m.flags, f"{locale}: fuzzy translation of {m.id!r}"
        forms = m.string if isinstance(m.string, tuple) else (m.string,)
        assert all(f.strip() for f in forms), f"{locale}: {m.id!r} is not translated"
        ids = m.id if isinstance(m.id, tuple) else (m.id,)
        wanted = sorted(PLACEHOLDER.findall(ids[-1]))
        for form in forms:
            assert sorted(PLACEHOLDER.findall(form)) == wanted, f"{locale}: {m.id!r} -> {form!r}"
        done[_key(m)] = forms
    assert template <= set(done), (
        f"{locale}: untranslated {sorted(template - set(done), key=str)[:10]}"
    )
    # not a copy of the English: most texts read differently
    same = [k for k, forms in done.items() if forms[0] == k[1]]
    assert len(same) < len(done) * 0.1, f"{locale}: {len(same)} texts left in English"


@pytest.mark.parametrize("locale", TRANSLATED)
def test_the_catalogue_compiles_in_memory(locale: str) -> None:
    t = translations(locale)
    assert t.gettext("Customers") != "Customers"
    assert "%(num)s" in t.ngettext("%(num)s open invoice", "%(num)s open invoices", 3)
    assert t.pgettext("severity", "critical") != "critical"
