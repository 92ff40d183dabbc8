"""The simulated insurer's book, generated from a seed (same seed, same portfolio): policies,
buyers with national identifiers, covers and grades that move day to day."""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any


def luhn_check_digit(digits: str) -> int:
    """The digit that makes `digits + d` pass the Luhn test (SIREN's key)."""
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = int(ch)
        if i % 2 == 0:  # doubled: positions that end up second from the right, etc.
            d *= 2
            if d > 9:
                d -= 9
        total += d
    return (10 - total % 10) % 10


def luhn_valid(number: str) -> bool:
    return number.isdigit() and luhn_check_digit(number[:-1]) == int(number[-1])


def french_vat(siren: str) -> str:
    """The intra-community VAT number of a SIREN: FR + 2-digit key + SIREN."""
    key = (12 + 3 * (int(siren) % 97)) % 97
    return f"FR{key:02d}{siren}"


_NAME_A = (
    "Atelier", "Bureau", "Compagnie", "Distribution", "Etablissements", "Fonderie", "Groupe",
    "Holding", "Industries", "Laboratoires", "Manufacture", "Nouvelle", "Omnium", "Papeterie",
    "Quincaillerie", "Rotative", "Societe", "Transports", "Union", "Verrerie",
)  # fmt: skip
_NAME_B = (
    "Alpes", "Bretagne", "Centre", "Dauphine", "Est", "Flandres", "Garonne", "Hainaut", "Isere",
    "Jura", "Loire", "Marne", "Normandie", "Ocean", "Provence", "Rhone", "Savoie", "Touraine",
    "Vosges", "Yonne",
)  # fmt: skip
_FORMS = {"FR": "SAS", "DE": "GmbH", "ES": "SL", "IT": "SRL", "BE": "SRL"}
_COUNTRIES = (("FR", 70), ("DE", 10), ("ES", 8), ("IT", 7), ("BE", 5))
_GRADES = ((1, 4), (2, 8), (3, 14), (4, 18), (5, 18), (6, 14), (7, 10), (8, 7), (9, 4), (10, 3))


@dataclass
class SimPolicy:
    policy_id: str
    currency: str
    unnamed_ceiling: int  # the policy's non-nominative (unnamed buyer) ceiling
    business_unit_code: str = "EHFR"
    extension_id: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "businessUnitCode": self.business_unit_code,
            "policyId": self.policy_id,
            "extensionId": self.extension_id,
        }


@dataclass
class SimBuyer:
    company_id: str
    name: str
    country: str
    siren: str | None
    vat: str
    duns: str | None
    grade: int
    capacity: int  # the largest limit the insurer would grant today

    def identifiers(self) -> list[dict[str, str]]:
        ids = []
        if self.siren:
            ids.append({"idTypeCode": "SIREN", "idValue": self.siren})
        ids.append({"idTypeCode": "VAT", "idValue": self.vat})
        if self.duns:
            ids.append({"idTypeCode": "DUNS", "idValue": self.duns})
        return ids

    def to_json(self, with_grade: bool = False) -> dict[str, Any]:
        data: dict[str, Any] = {
            "companyId": self.company_id,
            "legalData": {"companyName": self.name},
            "address": {"countryCode": self.country},
            "companyIdentifiers": self.identifiers(),
        }
        if with_grade:
            data["grade"] = self.grade
        return data


@dataclass
class SimCover:
    cover_id: str
    policy: SimPolicy
    buyer: SimBuyer
    cover_type: str
    status: str
    decision: str
    nominative: bool
    requested_amount: int
    amount: int
    request_date: date
    decision_date: date
    effective_date: date
    expiry_date: date | None
    updated_at: datetime
    already_agreed: bool = False  # the last request asked for the amount already agreed

    def to_json(self) -> dict[str, Any]:
        """The record as the covers search and `GET covers/{coverId}` serve it."""
        decision = "AlreadyAgreed" if self.already_agreed else DECISION_CODES[self.decision]
        currency = self.policy.currency
        return {
            "coverId": self.cover_id,
            "coverTypeCode": "CreditLimit" if self.nominative else "UnnamedBuyer",
            "coverStatusCode": STATUS_CODES[self.status],
            "policy": self.policy.to_json(),
            "company": self.buyer.to_json(),
            "grade": self.buyer.grade,
            "creationDate": self.request_date.isoformat(),
            "creditLimitDetails": {
                "requestedAmount": self.requested_amount,
                "currencyCode": currency,
            },
            "creditLimitsAggregation": {
                "creditLimits": [
                    {
                        "creditLimitTypeCode": LIMIT_TYPES[self.cover_type],
                        "technicalDecisionStatusCode": decision,
                        "amount": self.amount,
                        "currencyCode": currency,
                        "decisionDate": self.decision_date.isoformat(),
                        "startDate": self.effective_date.isoformat(),
                        "endDate": self.expiry_date.isoformat() if self.expiry_date else None,
                    }
                ]
            },
            "lastUpdateDate": iso(self.updated_at),
        }


DECISION_CODES = {"GRANTED": "Agreed", "PARTIALLY_GRANTED": "PartiallyAgreed", "REFUSED": "Refused"}
STATUS_CODES = {
    "ACTIVE": "Active",
    "REDUCED": "Reduced",
    "WITHDRAWN": "Withdrawn",
    "EXPIRED": "Expired",
    "REFUSED": "Refused",
}
LIMIT_TYPES = {"PERMANENT": "Permanent", "TEMPORARY": "Temporary"}


@dataclass
class SimJob:
    """An asynchronous request: a cover request (`kind="cover"`) or a payment-overdue
    declaration (`kind="overdue"`), processed once `ready_at` has passed."""

    job_id: str
    kind: str
    created_at: datetime
    ready_at: float  # monotonic
    client_reference: str | None
    uat: bool = False  # asked on the UAT paths: its resourceUrl is a UAT one too
    policy: SimPolicy | None = None
    buyer: SimBuyer | None = None
    request_type: str = "Primary"
    requested_amount: int | None = None
    cover_type: str = "PERMANENT"
    expiry_date: date | None = None
    overdue_id: str | None = None
    callback: dict[str, Any] | None = None
    resource: str | None = None  # the path of what it produced, once processed


@dataclass
class SimToken:
    token_id: int
    expires_at: float  # monotonic
    uses: int = 0
    revoked: bool = False


def iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def _weighted(rng: random.Random, table: tuple[tuple[Any, int], ...]) -> Any:
    return rng.choices([v for v, _ in table], weights=[w for _, w in table])[0]


def _capacity_for(grade: int, rng: random.Random) -> int:
    base = {1: 2_000_000, 2: 1_000_000, 3: 600_000, 4: 400_000, 5: 250_000}.get(grade, 0)
    if not base:
        base = {6: 150_000, 7: 80_000, 8: 40_000, 9: 10_000, 10: 0}[grade]
    return int(base * rng.uniform(0.5, 1.5)) // 1000 * 1000


@dataclass
class GeneratedPortfolio:
    """The simulated insurer's book: policies, buyers and their covers."""

    policies: list[SimPolicy]
    buyers: list[SimBuyer]
    covers: dict[str, SimCover]  # by cover id; ids grow, so insertion order is id order
    next_cover_number: int = 0

    @classmethod
    def generate(cls, buyers: int, seed: int, today: date) -> GeneratedPortfolio:
        rng = random.Random(f"cobro-insurer-portfolio:{seed}")
        policies = [
            SimPolicy("5012001", "EUR", unnamed_ceiling=20_000, business_unit_code="EHFR"),
            SimPolicy("5012002", "USD", unnamed_ceiling=15_000, business_unit_code="ACI"),
        ]
        sirens: set[str] = set()
        dunses: set[str] = set()
        people: list[SimBuyer] = []
        for i in range(buyers):
            country = _weighted(rng, _COUNTRIES)
            siren = None
            if country == "FR":
                while True:
                    stem = f"{rng.randrange(10_000_000, 100_000_000)}"
                    siren = stem + str(luhn_check_digit(stem))
                    if siren not in sirens:
                        sirens.add(siren)
                        break
                vat = french_vat(siren)
            else:
                vat = f"{country}{100_000_000 + i:09d}"
            duns = None
            if rng.random() < 0.9:
                while True:
                    duns = f"{rng.randrange(10_000_000, 1_000_000_000):09d}"
                    if duns not in dunses:
                        dunses.add(duns)
                        break
            grade = _weighted(rng, _GRADES)
            name = f"{rng.choice(_NAME_A)} {rng.choice(_NAME_B)} {i:05d} {_FORMS[country]}"
            people.append(
                SimBuyer(
                    company_id=f"{30_000_000 + i * 7}",
                    name=name,
                    country=country,
                    siren=siren,
                    vat=vat,
                    duns=duns,
                    grade=grade,
                    capacity=_capacity_for(grade, rng),
                )
            )
        book = cls(policies=policies, buyers=people, covers={})
        for buyer in people:
            roll = rng.random()
            if roll < 0.08:
                continue  # known to the insurer (searchable), no cover
            book._generate_cover(rng, buyer, policies[0], today)
            if roll > 0.92:
                book._generate_cover(rng, buyer, policies[1], today)
        return book

    def new_cover_id(self) -> str:
        self.next_cover_number += 1
        return f"C{self.next_cover_number:09d}"

    def _generate_cover(
        self, rng: random.Random, buyer: SimBuyer, policy: SimPolicy, today: date
    ) -> None:
        requested = max(5_000, int(rng.lognormvariate(11.0, 1.0)) // 1000 * 1000)
        request_date = today - timedelta(days=rng.randrange(20, 900))
        decision_date = request_date + timedelta(days=rng.randrange(0, 6))
        nominative = rng.random() >= 0.05
        cover_type, expiry = "PERMANENT", None
        if rng.random() < 0.18:
            cover_type = "TEMPORARY"
            # a third already expired, a third expiring within 30 days, a third later
            expiry = today + timedelta(days=rng.choice((-1, 1, 1)) * rng.randrange(1, 30))
            if rng.random() < 0.34:
                expiry = today + timedelta(days=rng.randrange(30, 180))
        if not nominative:
            requested = policy.unnamed_ceiling
        if buyer.grade >= 10 or (buyer.grade == 9 and rng.random() < 0.5):
            decision, status, amount = "REFUSED", "REFUSED", 0
        elif requested <= buyer.capacity or not nominative:
            decision, status, amount = "GRANTED", "ACTIVE", requested
        else:
            decision, status, amount = "PARTIALLY_GRANTED", "ACTIVE", max(buyer.capacity, 1000)
        if status == "ACTIVE":
            fate = rng.random()
            if fate < 0.06:
                status, amount = "REDUCED", amount // 2000 * 1000
            elif fate < 0.09:
                status, amount = "WITHDRAWN", 0
        if expiry is not None and expiry < today and status != "REFUSED":
            status = "EXPIRED"
        last_change = decision_date + timedelta(days=rng.randrange(0, 400))
        last_change = min(last_change, today - timedelta(days=1))
        updated_at = datetime(
            last_change.year, last_change.month, last_change.day, tzinfo=UTC
        ) + timedelta(seconds=rng.randrange(0, 86_400))
        cover = SimCover(
            cover_id=self.new_cover_id(),
            policy=policy,
            buyer=buyer,
            cover_type=cover_type,
            status=status,
            decision=decision,
            nominative=nominative,
            requested_amount=requested,
            amount=amount,
            request_date=request_date,
            decision_date=decision_date,
            effective_date=decision_date,
            expiry_date=expiry,
            updated_at=updated_at,
        )
        self.covers[cover.cover_id] = cover
