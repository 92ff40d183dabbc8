"""A deterministic demo portfolio, written as ERP CSV files and loaded through the real import.

Dates are anchored to the day the demo is first generated (kept in `anchor.txt`), so a
second `cobro dev --demo` re-imports identical files: a no-op.
"""

from __future__ import annotations

import csv
import random
from dataclasses import dataclass
from datetime import date, timedelta
from decimal import Decimal
from pathlib import Path

import phonenumbers

from cobro.devkit.insurer.portfolio import GeneratedPortfolio, SimBuyer
from cobro.importing import ImportReport, import_csv

CUSTOMER_COLUMNS = [
    "account",
    "name",
    "country",
    "siren",
    "vat",
    "duns",
    "insurer_buyer_id",
    "language",
    "timezone",
    "email",
    "phone",
    "segment",
    "group",
    "payment_terms_days",
]
INVOICE_COLUMNS = [
    "number",
    "account",
    "issue_date",
    "due_date",
    "currency",
    "amount",
    "open_amount",
    "disputed",
]
PAYMENT_COLUMNS = ["reference", "account", "date", "currency", "amount", "invoice"]


@dataclass(frozen=True)
class Country:
    code: str
    timezone: str
    currency: str
    mobile_prefix: str  # national format, completed with random digits
    digits: int


COUNTRIES = [
    Country("FR", "Europe/Paris", "EUR", "06", 8),
    Country("ES", "Europe/Madrid", "EUR", "6", 8),
    Country("DE", "Europe/Berlin", "EUR", "0151", 8),
    Country("IT", "Europe/Rome", "EUR", "312", 7),
    Country("BE", "Europe/Brussels", "EUR", "0470", 6),
    Country("GB", "Europe/London", "GBP", "07400", 6),
    Country("US", "America/New_York", "USD", "(201) 555-", 4),
]
WEIGHTS = [40, 15, 12, 8, 7, 10, 8]
SEGMENTS = ["industry", "retail", "distribution", "services", "public_sector"]
GROUPS = ["", "", "", "Groupe Atlas", "Iberia Holding", "Nordwerk AG"]
NAME_PARTS = [
    "Atelier",
    "Boulangerie",
    "Transports",
    "Comercial",
    "Bau",
    "Officina",
    "Brasserie",
    "Northern",
    "Pacific",
    "Metal",
    "Agro",
    "Logistique",
    "Textil",
    "Pharma",
    "Solar",
]
NAME_SUFFIX = {
    "FR": "SAS",
    "ES": "S.L.",
    "DE": "GmbH",
    "IT": "S.r.l.",
    "BE": "SRL",
    "GB": "Ltd",
    "US": "Inc.",
}
# Invoice due dates relative to the anchor: every aging bucket is populated.
DUE_OFFSETS = [35, 20, 6, 3, 0, -2, -10, -25, -40, -55, -75, -95, -110, -150, -200]


def paid_share(days_past_due: int) -> float:
    """How likely an invoice this many days past due has been paid: most customers pay
    within a month or two of the due date, and only a few invoices are still open three
    months later (a realistic risk mix: 5–15 % critical, most of it from insurer grades)."""
    if days_past_due <= 30:
        return 0.35
    if days_past_due <= 60:
        return 0.75
    if days_past_due <= 90:
        return 0.9
    return 0.97


def _siren(rng: random.Random) -> str:
    """Nine digits with a valid Luhn key, as French SIRENs have."""
    body = [rng.randint(0, 9) for _ in range(8)]
    for key in range(10):
        digits = [*body, key]
        total = 0
        for i, d in enumerate(reversed(digits)):
            d = d * 2 if i % 2 else d
            total += d - 9 if d > 9 else d
        if total % 10 == 0:
            return "".join(map(str, digits))
    raise AssertionError("unreachable")


def _mobile(rng: random.Random, country: Country) -> str:
    """A mobile number in national format that phonenumbers deems valid."""
    while True:
        digits = "".join(str(rng.randint(0, 9)) for _ in range(country.digits))
        candidate = country.mobile_prefix + digits
        if phonenumbers.is_valid_number(phonenumbers.parse(candidate, country.code)):
            return candidate


def _money(value: float) -> Decimal:
    return Decimal(str(round(value, 2))).quantize(Decimal("0.01"))


INSURED_SHARE = 0.9  # demo customers the simulated insurer knows (the rest of its book: unmatched)


def _insurer_identity(row: dict[str, str], buyer: SimBuyer, way: int) -> None:
    """The customer IS the simulator's buyer: its name, country and ONE national identifier
    (insurer buyer id, SIREN, VAT or DUNS in turn), as an ERP would hold it."""
    country = next(c for c in COUNTRIES if c.code == buyer.country)
    row.update(
        name=buyer.name,
        country=country.code,
        timezone=country.timezone,
        siren="",
        vat="",
        duns="",
        insurer_buyer_id="",
    )
    if way == 0 or (way == 3 and not buyer.duns):
        row["insurer_buyer_id"] = buyer.company_id
    elif way == 1 and buyer.siren:
        row["siren"] = buyer.siren
    elif way == 3 and buyer.duns:
        row["duns"] = buyer.duns
    else:
        row["vat"] = buyer.vat


def generate(
    directory: Path,
    anchor: date,
    customers: int = 300,
    seed: int = 2026,
    insurer_seed: int | None = None,
) -> None:
    """`insurer_seed`: the customers are the buyers of `InsurerSimulator(buyers=customers,
    seed=insurer_seed)` (90 % of them), so the daily sync matches their covers."""
    rng = random.Random(seed)
    buyers = (
        GeneratedPortfolio.generate(customers, insurer_seed, anchor).buyers
        if insurer_seed is not None
        else []
    )
    insured = int(customers * INSURED_SHARE) if buyers else 0
    directory.mkdir(parents=True, exist_ok=True)
    customer_rows, invoice_rows, payment_rows = [], [], []
    invoice_no = 0
    for i in range(1, customers + 1):
        country = rng.choices(COUNTRIES, WEIGHTS)[0]
        if i <= insured:
            country = next(c for c in COUNTRIES if c.code == buyers[i - 1].country)
        account = f"C{i:05d}"
        name = f"{rng.choice(NAME_PARTS)} {rng.choice(NAME_PARTS)} {i} {NAME_SUFFIX[country.code]}"
        siren = _siren(rng) if country.code == "FR" else ""
        vat = f"FR{rng.randint(10, 99)}{siren}" if siren else ""
        phone = _mobile(rng, country)
        terms = rng.choice([30, 30, 45, 60])
        customer_rows.append(
            {
                "account": account,
                "name": name,
                "country": country.code,
                "siren": siren,
                "vat": vat,
                "duns": f"{rng.randint(10**8, 10**9 - 1)}" if rng.random() < 0.7 else "",
                "insurer_buyer_id": f"EH{rng.randint(10**6, 10**7 - 1)}"
                if rng.random() < 0.6
                else "",
                "language": "",
                "timezone": country.timezone,
                "email": f"ap{i}@customer{i}.example",
                "phone": phone if rng.random() < 0.8 else "",
                "segment": rng.choices(SEGMENTS, [30, 25, 20, 15, 10])[0],
                "group": rng.choice(GROUPS),
                "payment_terms_days": str(terms),
            }
        )
        if i <= insured:
            _insurer_identity(customer_rows[-1], buyers[i - 1], i % 4)
        for _ in range(rng.randint(1, 6)):
            invoice_no += 1
            due = anchor + timedelta(days=rng.choice(DUE_OFFSETS) + rng.randint(-2, 2))
            amount = _money(rng.lognormvariate(8, 1.1))
            disputed = rng.random() < 0.04
            number = f"INV-{anchor.year}-{invoice_no:06d}"
            invoice_rows.append(
                {
                    "number": number,
                    "account": account,
                    "issue_date": (due - timedelta(days=terms)).isoformat(),
                    "due_date": due.isoformat(),
                    "currency": country.currency,
                    "amount": str(amount),
                    "open_amount": str(amount),
                    "disputed": "true" if disputed else "false",
                }
            )
            paid_on = min(anchor, due + timedelta(days=rng.randint(-5, 20)))
            late = (anchor - due).days
            if due < anchor and rng.random() < paid_share(late) and paid_on <= anchor:
                partly = rng.random() >= 0.7 and late <= 60  # old invoices are paid in full
                share = Decimal("0.4") if partly else Decimal(1)
                payment_rows.append(
                    {
                        "reference": f"PAY-{invoice_no:06d}",
                        "account": account,
                        "date": paid_on.isoformat(),
                        "currency": country.currency,
                        "amount": str((amount * share).quantize(Decimal("0.01"))),
                        "invoice": number if rng.random() < 0.8 else "",
                    }
                )
    _write(directory / "customers.csv", CUSTOMER_COLUMNS, customer_rows)
    _write(directory / "invoices.csv", INVOICE_COLUMNS, invoice_rows)
    _write(directory / "payments.csv", PAYMENT_COLUMNS, payment_rows)
    (directory / "anchor.txt").write_text(anchor.isoformat() + "\n")


def _write(path: Path, columns: list[str], rows: list[dict[str, str]]) -> None:
    tmp = path.with_suffix(".tmp")
    with tmp.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=columns)
        writer.writeheader()
        writer.writerows(rows)
    tmp.replace(path)


def load_demo(
    directory: Path, anchor: date | None = None, insurer_seed: int | None = None
) -> dict[str, ImportReport]:
    """Generate the files once (or reuse them), then import them in order."""
    if not (directory / "anchor.txt").exists():
        generate(directory, anchor or date.today(), insurer_seed=insurer_seed)
    return {
        kind: import_csv(kind, directory / f"{kind}.csv")
        for kind in ("customers", "invoices", "payments")
    }
