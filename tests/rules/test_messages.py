"""Alert messages as the team reads them: amounts in the customer's currency (the `currency`
fact, the exposure's) and the team's language; a customer over its limit gets `over_limit`,
not "limit almost used" at 278 %."""

from __future__ import annotations

from decimal import Decimal as D

import pytest

from cobro.i18n import using
from cobro.rules.ruleset import Ruleset
from tests.helpers import ROOT


@pytest.fixture(scope="module")
def shipped() -> Ruleset:
    return Ruleset.load(ROOT / "rules")


def _fired(rs: Ruleset, **facts: object) -> dict[str, str]:
    assert rs.alerts is not None
    given = {"name": "Ferretería Núñez", "outstanding": D(0), "overdue_amount": D(0), **facts}
    return {a.name: a.message for a in rs.alerts.evaluate(given)}


def test_over_the_limit_is_over_limit_not_almost_used(shipped: Ruleset) -> None:
    over = dict(outstanding=D("139000"), total_limit=D("50000"), limit_usage=D("2.78"))
    with using("en"):
        fired = _fired(shipped, **over, over_limit=True, currency="EUR")
    assert set(fired) == {"over_limit"}
    assert fired["over_limit"] == (
        "Ferretería Núñez is over its limit: €139,000.00 owed for a limit of €50,000.00 "
        "(278 % used)"
    )
    almost = _fired(
        shipped,
        outstanding=D("46000"),
        total_limit=D("50000"),
        limit_usage=D("0.92"),
        currency="EUR",
    )
    assert set(almost) == {"limit_almost_used"}
    at_the_limit = _fired(
        shipped, outstanding=D("50000"), total_limit=D("50000"), limit_usage=D("1"), currency="EUR"
    )
    assert set(at_the_limit) == {"limit_almost_used"}, "100 % used is not over"
    # no cover at all: a limit of 0, no usage
    with using("en"):
        none = _fired(
            shipped, outstanding=D("15000"), total_limit=D("0"), over_limit=True, currency="EUR"
        )
    assert none["over_limit"].endswith("€15,000.00 owed for a limit of €0.00")


@pytest.mark.parametrize(
    ("locale", "currency", "written"),
    [
        ("es", "EUR", "1.359,36\xa0€"),
        ("fr", "EUR", "1\u202f359,36\xa0€"),
        ("de", "EUR", "1.359,36\xa0€"),
        ("en", "EUR", "€1,359.36"),
        ("es", "USD", "1.359,36\xa0US$"),
        ("en", None, "1,359.36"),  # no currency known: the plain amount
    ],
)
def test_money_is_in_the_customers_currency_and_the_teams_language(
    shipped: Ruleset, locale: str, currency: str | None, written: str
) -> None:
    with using(locale):
        fired = _fired(
            shipped,
            overdue_amount=D("1359.36"),
            max_days_overdue=60,
            outstanding=D("1359.36"),
            currency=currency,
        )
    assert "large_overdue" not in fired  # below the bar: the message of another alert
    with using(locale):
        msg = shipped.alerts.render(  # type: ignore[union-attr]
            next(r for r in shipped.alerts.rules if r.name == "large_overdue"),  # type: ignore[union-attr]
            {
                "name": "N",
                "overdue_amount": D("1359.36"),
                "max_days_overdue": 60,
                "currency": currency,
            },
            {},
            locale,
        )
    assert (
        msg
        == {
            "en": f"N owes {written} overdue, oldest 60 days late",
            "es": f"N debe {written} vencidos; la factura más antigua lleva 60 días de retraso",
            "fr": f"N doit {written} échus ; la plus ancienne facture a 60 jours de retard",
            "de": f"N schuldet {written} überfällig; die älteste Rechnung ist 60 Tage im Verzug",
        }[locale]
    )
