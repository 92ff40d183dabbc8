"""Which language a message is written in: the `languages` section of `rules/dunning.yaml`.

```yaml
languages:
  fallback: {ca: es, lb: fr}   # a language without templates tries these, one after another
  default: en                  # and ends here (every template must exist in it)
```

A customer whose language has templates gets them; otherwise the message is written in the
first language of its chain that has them: `LanguageRules(...).chain("ca")` is
`("ca", "es", "en")`. Codes are ISO 639-1 (`fr_BE`, `pt-BR` mean `fr`, `pt`). `coverage()`
says, per customer language, which language it gets and whether that is a fallback (`cobro
rules check` warns about each one).
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass
from typing import Annotated, Any

from babel import Locale, UnknownLocaleError
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, field_validator

from cobro.importing.normalise import languages as language_codes  # what imports accept
from cobro.templating import DEFAULT_LANGUAGE, normalise_language


def _code(value: Any) -> Any:
    if isinstance(value, bool):  # YAML 1.1 reads a bare `no` (Norwegian) as false
        raise ValueError(
            f"expected a language code, got {str(value).lower()}: YAML reads a bare no, yes, "
            'on or off as a boolean; quote it ("no")'
        )
    if not isinstance(value, str):
        raise ValueError(f"expected a language code (e.g. it, nl, pt), got {value!r}")
    code = value.strip()
    if code.lower() not in language_codes():
        raise ValueError(
            f"unknown language code {value!r}: expected an ISO 639-1 code such as it, nl, pt"
        )
    return code.lower()


LanguageCode = Annotated[str, BeforeValidator(_code)]


def fallback_cycle(fallback: Mapping[str, str]) -> tuple[str, ...] | None:
    """The first cycle of the chain (`("it", "nl", "it")`), or None."""
    for start in fallback:
        seen = [start]
        current = fallback[start]
        while current in fallback:
            if current in seen:
                return (*seen[seen.index(current) :], current)
            seen.append(current)
            current = fallback[current]
    return None


def describe_cycle(cycle: tuple[str, ...]) -> str:
    return (
        "fallback cycle " + " -> ".join(cycle) + ": a chain must end at a language with templates"
    )


class LanguageRules(BaseModel):
    """`languages:` of `dunning.yaml` (everything optional: no section = everyone to `en`)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    fallback: dict[LanguageCode, LanguageCode] = Field(default_factory=dict)
    default: LanguageCode = DEFAULT_LANGUAGE

    @field_validator("fallback")
    @classmethod
    def _acyclic(cls, value: dict[str, str]) -> dict[str, str]:
        cycle = fallback_cycle(value)
        if cycle:
            raise ValueError(describe_cycle(cycle))
        return value

    def chain(self, language: str | None) -> tuple[str, ...]:
        """The languages to try, in order: the customer's own, its fallbacks, the default."""
        out = [normalise_language(language) if language else self.default]
        while out[-1] in self.fallback and self.fallback[out[-1]] not in out:
            out.append(self.fallback[out[-1]])
        if self.default not in out:
            out.append(self.default)
        return tuple(out)

    def written_in(self, language: str | None, available: Collection[str]) -> str:
        """The language a customer speaking `language` gets, given the languages that have
        templates (the default when no language of the chain has any)."""
        for candidate in self.chain(language):
            if candidate in available:
                return candidate
        return self.default


@dataclass(frozen=True, slots=True)
class Coverage:
    language: str  # as the customers have it
    customers: int | None  # None: declared, not counted
    written_in: str

    @property
    def falls_back(self) -> bool:
        return normalise_language(self.language) != self.written_in


def coverage(
    rules: LanguageRules,
    languages: Mapping[str, int | None] | Iterable[str],
    available: Collection[str],
) -> list[Coverage]:
    """Per customer language (code -> customer count, or just codes): what it is written in."""
    counts = languages if isinstance(languages, Mapping) else dict.fromkeys(languages)
    return [
        Coverage(lang, counts[lang], rules.written_in(lang, available)) for lang in sorted(counts)
    ]


def display_name(code: str, locale: str = "en") -> str:
    """`pl` -> `Polish` (the code itself when Babel does not know it)."""
    try:
        return Locale.parse(code).get_display_name(locale) or code
    except (UnknownLocaleError, ValueError, TypeError):
        return code
