"""Matching insurer buyers to customers, pure (no database): buyer id first, then SIREN
(from a SIREN, a SIRET or a French VAT), VAT, DUNS, normalised; never by name; ambiguity
leaves the cover unmatched with the reason."""

from __future__ import annotations

import pytest

from cobro.insurers.base import Company, IdType, NationalId
from cobro.insurers.matching import (
    CustomerIds,
    MatchIndex,
    normalise,
    siren_in_vat,
    siren_of,
)


def company(company_id: str = "30000007", name: str = "Atelier Dupont SAS", **ids: str) -> Company:
    return Company(
        company_id=company_id,
        company_name=name,
        country_code="FR",
        identifiers=tuple(NationalId(type=IdType(k.upper()), value=v) for k, v in ids.items()),
    )


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("552 100 554", "552100554"),
        ("552.100.554", "552100554"),
        ("fr 40-552100554", "FR40552100554"),
        ("   ", None),
        (None, None),
    ],
)
def test_normalise(raw: str | None, expected: str | None) -> None:
    assert normalise(raw) == expected


def test_siren_from_siren_siret_and_french_vat() -> None:
    assert siren_of("552 100 554") == "552100554"
    assert siren_of("55210055400013") == "552100554"  # SIRET = SIREN + NIC
    assert siren_of("5521005") is None
    assert siren_of("ABC100554") is None
    assert siren_in_vat("FR40 552 100 554") == "552100554"
    assert siren_in_vat("DE123456789") is None
    assert siren_in_vat("FR40") is None


def index(*customers: CustomerIds) -> MatchIndex:
    return MatchIndex(customers)


def test_buyer_id_wins_over_national_ids() -> None:
    idx = index(
        CustomerIds(1, "C1", buyer_id="30000007"),
        CustomerIds(2, "C2", siren="552100554"),
    )
    match = idx.match(company(siren="552100554"))
    assert (match.customer_id, match.method) == (1, "buyer_id")


@pytest.mark.parametrize(
    ("customer", "ids", "method"),
    [
        (CustomerIds(5, "C5", siren="552 100 554"), {"siren": "552100554"}, "siren"),
        (CustomerIds(5, "C5", siren="552100554"), {"siret": "55210055400013"}, "siren"),
        (CustomerIds(5, "C5", vat="FR40552100554"), {"siren": "552100554"}, "siren"),
        (CustomerIds(5, "C5", siren="552100554"), {"vat": "FR 40 552 100 554"}, "siren"),
        (CustomerIds(5, "C5", vat="de123456789"), {"vat": "DE 123 456 789"}, "vat"),
        (CustomerIds(5, "C5", duns="15-048-3782"), {"duns": "150483782"}, "duns"),
    ],
)
def test_national_identifiers_normalised(
    customer: CustomerIds, ids: dict[str, str], method: str
) -> None:
    match = index(customer).match(company("99", **ids))
    assert (match.customer_id, match.method) == (5, method)


def test_never_by_name() -> None:
    idx = index(CustomerIds(1, "C1", siren="552100554"))
    match = idx.match(company("99", name="Atelier Dupont SAS", duns="150483782"))
    assert match.customer_id is None
    assert match.reason == "no customer with buyer_id 99, duns 150483782"


def test_ambiguous_identifier_is_unmatched_with_the_accounts() -> None:
    idx = index(
        CustomerIds(1, "C1", duns="150483782"),
        CustomerIds(2, "C2", duns="150 483 782"),
    )
    match = idx.match(company("99", duns="150483782"))
    assert match.customer_id is None and not match.matched
    assert match.reason == "ambiguous: duns 150483782 is shared by C1, C2"


def test_a_trusted_identifier_decides_before_an_ambiguous_weaker_one() -> None:
    idx = index(
        CustomerIds(1, "C1", siren="552100554", duns="150483782"),
        CustomerIds(2, "C2", duns="150483782"),
    )
    match = idx.match(company("99", siren="552100554", duns="150483782"))
    assert (match.customer_id, match.method) == (1, "siren")
