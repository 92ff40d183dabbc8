"""Which customer an insurer's cover is about: by the insurer's buyer id, then by national
identifiers (SIREN — or a SIRET's first 9 digits, or the SIREN inside a French VAT number —,
VAT, DUNS), normalised. Never by name. Two customers sharing the identifier that decides is
ambiguous: the cover stays unmatched, with the reason, for a human (`cobro covers link`).
Pure: the index is built from plain tuples (a page's keys read from the database by the
sync), no database here."""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

from cobro.insurers.base import Company, IdType

_SEPARATORS = re.compile(r"[\s.\-/]")


def normalise(value: str | None) -> str | None:
    if value is None:
        return None
    cleaned = _SEPARATORS.sub("", value).upper()
    return cleaned or None


def siren_of(value: str | None) -> str | None:
    """A SIREN from a SIREN (9 digits) or a SIRET (14 digits: SIREN + NIC)."""
    v = normalise(value)
    if v and v.isdigit() and len(v) in (9, 14):
        return v[:9]
    return None


def siren_in_vat(vat: str | None) -> str | None:
    """A French VAT number is FR + 2 key characters + the SIREN."""
    v = normalise(vat)
    if v and v.startswith("FR") and len(v) == 13 and v[4:].isdigit():
        return v[4:]
    return None


@dataclass(frozen=True)
class CustomerIds:
    customer_id: int
    account: str
    buyer_id: str | None = None
    siren: str | None = None
    vat: str | None = None
    duns: str | None = None


@dataclass(frozen=True)
class Match:
    customer_id: int | None
    method: str | None  # buyer_id, siren, vat, duns
    reason: str | None = None  # why unmatched

    @property
    def matched(self) -> bool:
        return self.customer_id is not None


def customer_keys(c: CustomerIds) -> list[tuple[str, str]]:
    """The (kind, normalised value) pairs a customer can be matched by."""
    keys = []
    for kind, value in (
        ("buyer_id", (c.buyer_id or "").strip() or None),
        ("siren", siren_of(c.siren) or siren_in_vat(c.vat)),
        ("vat", normalise(c.vat)),
        ("duns", normalise(c.duns)),
    ):
        if value:
            keys.append((kind, value))
    return keys


def company_keys(company: Company) -> dict[str, str | None]:
    """What an insurer's company is looked up by, in order of trust."""
    return {
        "buyer_id": company.company_id.strip(),
        "siren": siren_of(company.identifier(IdType.SIREN))
        or siren_of(company.identifier(IdType.SIRET))
        or siren_in_vat(company.identifier(IdType.VAT)),
        "vat": normalise(company.identifier(IdType.VAT)),
        "duns": normalise(company.identifier(IdType.DUNS)),
    }


class MatchIndex:
    def __init__(self, customers: Iterable[CustomerIds] = ()) -> None:
        self.by: dict[str, dict[str, set[int]]] = {
            k: {} for k in ("buyer_id", "siren", "vat", "duns")
        }
        self.accounts: dict[int, str] = {}
        for c in customers:
            self.accounts[c.customer_id] = c.account
            for kind, value in customer_keys(c):
                self.by[kind].setdefault(value, set()).add(c.customer_id)

    @classmethod
    def from_keys(
        cls, keys: Iterable[tuple[str, str, int]], accounts: dict[int, str]
    ) -> MatchIndex:
        """An index of precomputed (kind, value, customer id) keys (e.g. one page's, read
        from the database), with the accounts that name customers in ambiguity reasons."""
        index = cls()
        index.accounts = dict(accounts)
        for kind, value, customer_id in keys:
            index.by[kind].setdefault(value, set()).add(customer_id)
        return index

    def shared(self) -> set[int]:
        """The customers that share a key with another: the only accounts a reason names."""
        return {
            i for values in self.by.values() for ids in values.values() if len(ids) > 1 for i in ids
        }

    def match(self, company: Company) -> Match:
        return self.match_keys(company_keys(company))

    def match_keys(self, keys: dict[str, str | None]) -> Match:
        """`match` of a company's `company_keys` (computed once by a caller that also
        needs them to read the index's customers)."""
        for kind, value in keys.items():
            if not value:
                continue
            found = self.by[kind].get(value)
            if not found:
                continue
            if len(found) > 1:
                accounts = ", ".join(sorted(self.accounts[i] for i in found))
                return Match(None, None, f"ambiguous: {kind} {value} is shared by {accounts}")
            return Match(next(iter(found)), kind)
        tried = ", ".join(f"{k} {v}" for k, v in keys.items() if v)
        return Match(None, None, f"no customer with {tried}")
