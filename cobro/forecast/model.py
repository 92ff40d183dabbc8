"""The collection forecast's model, pure (no database, no clock): when will each open
invoice be paid, from its customer's own payment behaviour.

Days late
    L = payment date − due date, one observation per payment allocation (negative: early),
    clamped to [L_MIN, L_MAX] = [−60, 730] days. The history is the last 12 months up to the
    forecast date t: allocations of payments dated in (t − 365, t].

The portfolio's curve (the shape)
    S₀(l) = P(L > l), the share of invoices still unpaid l days after their due date, by
    Kaplan–Meier over that window: an invoice is *at risk* on lateness l when the calendar
    day due + l lies in the window, on or after its issue date, and it was still unpaid; it
    *leaves* when paid (an event) or at t, still open (censored: invoices open at t tell how
    many are NOT paid at their age). Hazard h(l) = paid at l ÷ at risk at l, and
    S₀(l) = Π_{m ≤ l} (1 − h(m)). Because open invoices count, old unpaid invoices pull the
    curve down slowly and it ends on a plateau S₀(L_MAX): the share the history says is not
    paid within two years ("not expected").

Each customer's distribution (its own mean and spread, shrunk)
    From the customer's n observations: mean m, variance v. Portfolio: mean μ₀ and variance
    σ₀² over all observations; σ_w² = the average variance within customers, τ² = σ₀² − σ_w²
    the variance between customers' means. Shrinkage is Bühlmann's credibility (the
    empirical-Bayes weight an insurer gives a policyholder's own claims):

        Z   = n / (n + K),  K = σ_w² / τ²  (clamped to [0.5, 100]; K observations count
              as much as the portfolio: with K = 4, a customer with 4 payments in the year
              is half its own average, half the portfolio's)
        μ_c = Z·m + (1 − Z)·μ₀
        σ_c² = (n·v + 5·σ_w²) / (n + 5)  +  (1 − Z)·τ²

    (its own spread, shrunk towards the average customer's with 5 pseudo-observations, plus
    what is still unknown about its mean.) A customer without history is the portfolio:
    μ₀, σ₀. The customer's curve is the portfolio's shape placed at its mean and stretched
    to its spread: S_c(l) = S₀(μ₀ + (l − μ_c)·σ₀/σ_c) (S₀ interpolated between whole days).
    For speed σ_c is rounded to σ₀·1.25^k and μ_c to whole days (`Profile`), so the
    database sums open invoices by (currency, k, days past the expected date).

Given it is already a days late (a = t − due; negative when not yet due)
    an open invoice is unpaid at t, so it pays in forecast week w (the days t+7w+1 … t+7w+7)
    with probability [S_c(a + 7w) − S_c(a + 7w + 7)] ÷ S_c(a); after the last week:
    [S_c(a + 7W) − S_c(∞)] ÷ S_c(a); never within the curve: S_c(∞) ÷ S_c(a) (all of it when
    S_c(a) = 0: nothing like it was ever paid). An invoice 90 days late is spread by what
    happens to invoices of that customer that are still unpaid at 90 days — not put into
    next week. Expected cash per week = Σ open amount × probability, per currency (never
    summed across currencies). Disputed invoices are not forecast (nobody knows when a
    dispute ends): they are totalled apart.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date, timedelta
from decimal import Decimal
from typing import Any

WINDOW_DAYS = 365
L_MIN, L_MAX = -60, 730
SPREAD_BASE = 1.25  # σ_c is rounded to σ₀ · 1.25^k
SPREAD_STEPS = 12  # |k| ≤ 12
OWN_SPREAD_PRIOR = 5  # pseudo-observations of the average spread
CREDIBILITY_K = (0.5, 100.0)
CENT = Decimal("0.01")
_EPS = 1e-9


def clamp_late(days: int) -> int:
    return max(L_MIN, min(L_MAX, days))


# ------------------------------------------------------------------------- the history


@dataclass(frozen=True)
class LatenessSums:
    """One customer's observations of days late in the window (clamped): n, ΣL, ΣL²."""

    n: int
    total: int
    squares: int

    @property
    def mean(self) -> float:
        return self.total / self.n

    @property
    def variance(self) -> float:
        return max(0.0, self.squares / self.n - self.mean**2)


@dataclass(frozen=True)
class Portfolio:
    """What the whole book says: mean, spreads, credibility constant and the curve S₀ on
    lateness days L_MIN … L_MAX (`curve[l - L_MIN]` = P(L > l))."""

    mean: float
    spread: float  # σ₀, at least one day
    within: float  # σ_w²
    between: float  # τ²
    k: float
    curve: tuple[float, ...]

    def survival(self, late: float) -> float:
        """S₀ at any lateness (linear between whole days; 1 before L_MIN, the plateau
        after L_MAX)."""
        if late < L_MIN:
            return 1.0
        if late >= L_MAX:
            return self.curve[-1]
        x = late - L_MIN
        i = int(x)
        lo = self.curve[i]
        hi = self.curve[i + 1] if i + 1 < len(self.curve) else lo
        return lo + (x - i) * (hi - lo)

    def to_json(self) -> dict[str, Any]:
        return {
            "mean": self.mean,
            "spread": self.spread,
            "within": self.within,
            "between": self.between,
            "k": self.k,
            "curve": [round(v, 8) for v in self.curve],
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Portfolio:
        return cls(
            float(data["mean"]),
            float(data["spread"]),
            float(data["within"]),
            float(data["between"]),
            float(data["k"]),
            tuple(float(v) for v in data["curve"]),
        )


@dataclass(frozen=True)
class SurvivalCounts:
    """The Kaplan–Meier inputs by lateness day (clamped to the grid): how many observations
    start being at risk after day l (`entries[l]`: at risk from l + 1 on), how many are paid
    on day l (`events`) and how many are still open at t, l days late (`censored`)."""

    entries: Mapping[int, int]
    events: Mapping[int, int]
    censored: Mapping[int, int]


def survival_curve(counts: SurvivalCounts) -> tuple[float, ...]:
    """S₀(l) for l = L_MIN … L_MAX (Kaplan–Meier, left-truncated at the window's start)."""
    size = L_MAX - L_MIN + 1
    start = [0] * (size + 1)  # at risk from index i on
    stop = [0] * (size + 1)  # no longer at risk from index i on
    for late, n in counts.entries.items():
        start[max(0, min(size, late + 1 - L_MIN))] += n
    for source in (counts.events, counts.censored):
        for late, n in source.items():
            stop[max(0, min(size, late + 1 - L_MIN))] += n
    curve = []
    at_risk, s = 0, 1.0
    for i in range(size):
        at_risk += start[i] - stop[i]
        paid = counts.events.get(L_MIN + i, 0)
        if paid and at_risk > 0:
            s *= max(0.0, 1.0 - paid / at_risk)
        curve.append(s)
    return tuple(curve)


def portfolio(sums: Iterable[LatenessSums], counts: SurvivalCounts) -> Portfolio:
    n = total = squares = 0
    within_sum = 0.0
    for c in sums:
        n += c.n
        total += c.total
        squares += c.squares
        within_sum += c.n * c.variance
    if n == 0:
        return Portfolio(0.0, 1.0, 1.0, 0.0, CREDIBILITY_K[1], survival_curve(counts))
    mean = total / n
    variance = max(0.0, squares / n - mean**2)
    within = within_sum / n
    between = max(0.0, variance - within)
    lo, hi = CREDIBILITY_K
    k = hi if between <= 0 else min(hi, max(lo, within / between))
    return Portfolio(
        mean, max(1.0, math.sqrt(variance)), within, between, k, survival_curve(counts)
    )


# ------------------------------------------------------------------------- the customers


@dataclass(frozen=True)
class Profile:
    """A customer's rounded model: expected days late (μ_c) and spread step k (σ_c ≈ σ₀·1.25^k)."""

    delay_days: int
    spread_step: int


def profile(sums: LatenessSums | None, book: Portfolio) -> Profile:
    if sums is None or sums.n == 0:
        return Profile(round(book.mean), 0)
    z = sums.n / (sums.n + book.k)
    mean = z * sums.mean + (1 - z) * book.mean
    own = (sums.n * sums.variance + OWN_SPREAD_PRIOR * book.within) / (sums.n + OWN_SPREAD_PRIOR)
    spread = math.sqrt(max(1.0, own + (1 - z) * book.between))
    step = round(math.log(spread / book.spread) / math.log(SPREAD_BASE))
    return Profile(round(mean), max(-SPREAD_STEPS, min(SPREAD_STEPS, step)))


def default_profile(book: Portfolio) -> Profile:
    return profile(None, book)


# ------------------------------------------------------------------------- the forecast


@dataclass(frozen=True)
class OpenGroup:
    """Open invoices (at t) summed by currency, disputed, their customer's spread step and
    how many days past their expected date they are at t (x = t − due − delay)."""

    currency: str
    disputed: bool
    spread_step: int
    days_past_expected: int
    open_amount: Decimal


@dataclass
class Forecast:
    """Expected cash-in per currency: `by_currency[c][w]` for week w = days as_of + 7w + 1 …
    as_of + 7w + 7; `later` after the last week; `not_expected` the share that history says
    is not paid (within two years); `disputed` not forecast."""

    as_of: date
    weeks: int
    by_currency: dict[str, list[Decimal]] = field(default_factory=dict)
    later: dict[str, Decimal] = field(default_factory=dict)
    not_expected: dict[str, Decimal] = field(default_factory=dict)
    disputed: dict[str, Decimal] = field(default_factory=dict)

    def week_starts(self) -> list[date]:
        return [self.as_of + timedelta(days=7 * w + 1) for w in range(self.weeks)]

    def to_json(self) -> dict[str, Any]:
        def text(d: Mapping[str, Decimal]) -> dict[str, str]:
            return {c: str(v) for c, v in d.items()}

        return {
            "as_of": self.as_of.isoformat(),
            "weeks": self.weeks,
            "by_currency": {c: [str(v) for v in vs] for c, vs in self.by_currency.items()},
            "later": text(self.later),
            "not_expected": text(self.not_expected),
            "disputed": text(self.disputed),
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Forecast:
        def amounts(d: Mapping[str, str]) -> dict[str, Decimal]:
            return {c: Decimal(v) for c, v in d.items()}

        return cls(
            date.fromisoformat(data["as_of"]),
            int(data["weeks"]),
            {c: [Decimal(v) for v in vs] for c, vs in data["by_currency"].items()},
            amounts(data["later"]),
            amounts(data["not_expected"]),
            amounts(data["disputed"]),
        )

    def currencies(self) -> list[str]:
        return sorted(set(self.by_currency) | set(self.not_expected) | set(self.disputed))


def spread_probabilities(
    book: Portfolio, spread_step: int, days_past_expected: int, weeks: int
) -> tuple[list[float], float, float]:
    """(per week, after the last week, not expected) for one unpaid invoice: the customer's
    curve conditional on being unpaid `days_past_expected` days after its expected date."""
    ratio = SPREAD_BASE ** (-spread_step)  # σ₀ / σ_c

    def s(days: int) -> float:
        return book.survival(book.mean + days * ratio)

    now = s(days_past_expected)
    floor = book.curve[-1]
    if now <= _EPS or now - floor <= _EPS:
        return [0.0] * weeks, 0.0, 1.0
    points = [s(days_past_expected + 7 * w) for w in range(weeks + 1)]
    per_week = [(points[w] - points[w + 1]) / now for w in range(weeks)]
    later = max(0.0, (points[-1] - floor) / now)
    return per_week, later, floor / now


def forecast(groups: Iterable[OpenGroup], book: Portfolio, as_of: date, weeks: int = 8) -> Forecast:
    """Expected amounts are estimates: summed in binary floating point, rounded to the cent
    (disputed totals stay exact)."""
    result = Forecast(as_of, weeks)
    memo: dict[tuple[int, int], list[float]] = {}
    raw: dict[str, list[float]] = {}
    for g in groups:
        if g.open_amount <= 0:
            continue
        if g.disputed:
            result.disputed[g.currency] = (
                result.disputed.get(g.currency, Decimal(0)) + g.open_amount
            )
            continue
        key = (g.spread_step, g.days_past_expected)
        shares = memo.get(key)
        if shares is None:
            per_week, later, never = spread_probabilities(book, *key, weeks)
            shares = memo[key] = [*per_week, later, never]
        row = raw.get(g.currency)
        if row is None:
            row = raw[g.currency] = [0.0] * (weeks + 2)
        amount = float(g.open_amount)
        for w, p in enumerate(shares):
            row[w] += amount * p
    for currency, row in sorted(raw.items()):
        result.by_currency[currency] = [_cents(v) for v in row[:weeks]]
        result.later[currency] = _cents(row[weeks])
        result.not_expected[currency] = _cents(row[weeks + 1])
    result.disputed = {c: v.quantize(CENT) for c, v in sorted(result.disputed.items())}
    return result


def _cents(value: float) -> Decimal:
    return Decimal(repr(round(value, 2))).quantize(CENT)
