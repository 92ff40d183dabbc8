"""Dunning policies: the schema of `rules/dunning.yaml` (plain, frozen pydantic models).

```yaml
policies:
  - name: standard
    applies_to: risk_class in ["low", "medium"]   # compiled by the rules engine
    calendar: customer        # the customer's country (and subdivision when known); or a
                              # fixed ISO country: FR
    business_days: true       # offsets count business days (false: calendar days)
    send_window: "09:00-18:00"   # customer's local time, [start, end)
    send_days: [mon, tue, wed, thu, fri]
    min_gap: 3d               # at least 3 (business) days between two contacts on a channel
    catch_up: first_unsent    # a late start begins at the first level not yet received
                              # (`latest`: jump to the latest level already due)
    not_insured:              # what a `declare` (or `claim`) step does for an invoice not
      at: +45d                # insured; `at`: when (a `declare` step; default: with the
      action: task            # step before it); `skip`: nothing, the level is recorded
      note: "not insured: decide on legal action"
      assignee_role: credit_manager
    steps:                    # strictly increasing `at`, relative to each invoice's due date
      - {at: -5d, channel: email, template: pre_due}
      - {at: +1d, channel: [email, sms], template: due}
      - {at: +15d, action: task, note: call the customer, assignee_role: collector}
      - {at: deadline - 5d, action: declare}   # 5 calendar days before the insurer's
                                               # declare-by date (rules/insurance.yaml)
    payment_plans:            # optional (absent: every plan needs a collector)
      auto_approve: true      # approved by rule within these limits
      max_instalments: 3
      min_instalment: {EUR: 50, default: 50}   # or one number, in the plan's currency
      max_duration: 3m        # from the request to the last instalment (d, w or m)
      every: 1m               # between two instalments
      grace: 5d               # calendar days after an instalment's date: missed, broken
      reminder: {at: -3d, channel: email, template: instalment_due}
languages:                    # a customer language without templates: the chain to follow
  fallback: {ca: es}          # (cobro.dunning.languages), ending at `default`
  default: en
```

Offsets are `[+-]N d|w` (days, weeks) after the due date, or `deadline [+-] N d`: calendar
days (insurer deadlines count calendar days) around the invoice's overdue-declaration
deadline, its declare-by date of `rules/insurance.yaml` (only for `action: declare`; such a
step is not ordered against the others, its instant depends on each invoice's policy).
A week is 5 days when `business_days` is true
(`+1w` = 5 business days, `+2w` = 10), 7 otherwise; `step.label` is the offset as written
(`+1w`), `policy.offset_days(step)` the days it counts. `load_policies(data)` validates and
raises `PolicyError` (a `ValueError`) whose lines name the field path, e.g.
`policies[0].steps[2].at: invalid offset '15x' ...`. The rules engine's positioned loader can
use `DunningRulesFile` directly as its schema (pydantic `loc`s map to YAML positions).
"""

from __future__ import annotations

import ast
import itertools
import re
from collections.abc import Callable, Mapping
from decimal import Decimal, InvalidOperation
from functools import cached_property
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainSerializer,
    PlainValidator,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from cobro.dunning.calendar import WEEKDAYS, SendWindow, parse_window, supported_countries
from cobro.dunning.languages import LanguageRules

Channel = Literal["email", "sms", "whatsapp"]
Weekday = Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
StepKind = Literal["send", "task", "claim", "declare"]
CHANNELS: tuple[str, ...] = ("email", "sms", "whatsapp")
CUSTOMER_CALENDAR = "customer"

_OFFSET_RE = re.compile(r"^\s*([+-]?)\s*(\d+)\s*([dw])\s*$")
_DEADLINE_RE = re.compile(r"^\s*deadline\s*(?:([+-])\s*(\d+)\s*d)?\s*$")
DEADLINE = "deadline"
_NAME = r"^[a-z][a-z0-9_]*$"


class PolicyError(ValueError):
    """Invalid dunning policy data; `errors` holds `(field path, message)` pairs."""

    def __init__(self, errors: list[tuple[str, str]]) -> None:
        self.errors = errors
        super().__init__("\n".join(f"{path}: {msg}" if path else msg for path, msg in errors))


class StepOffset(int):
    """An offset as written (`+1w`, `-5d`): its `int` value is calendar days (weeks x 7);
    `days(business_days)` counts a week as 5 business days."""

    weeks: int
    extra_days: int
    written: str
    anchor: str  # "due_date", or "deadline" (calendar days around the declare-by date)

    def __new__(cls, weeks: int, days: int, anchor: str = "due_date") -> StepOffset:
        self = super().__new__(cls, weeks * 7 + days)
        self.weeks, self.extra_days, self.anchor = weeks, days, anchor
        if anchor == DEADLINE:
            n = weeks * 7 + days
            self.written = DEADLINE + (f" {'-' if n < 0 else '+'} {abs(n)}d" if n else "")
        else:
            self.written = f"{weeks:+d}w" if weeks and not days else f"{weeks * 7 + days:+d}d"
        return self

    @property
    def from_deadline(self) -> bool:
        return self.anchor == DEADLINE

    def days(self, business_days: bool) -> int:
        if self.anchor == DEADLINE:
            return self.extra_days  # insurer deadlines count calendar days
        return self.weeks * (5 if business_days else 7) + self.extra_days

    def __reduce__(self) -> Any:
        return (StepOffset, (self.weeks, self.extra_days, self.anchor))

    def __repr__(self) -> str:
        return f"StepOffset({self.written!r})"


def parse_step_offset(value: Any) -> StepOffset:
    """`"-5d"`, `"+1d"`, `"2w"`, `"-1w"` (or an int number of days) -> a `StepOffset`."""
    if isinstance(value, StepOffset):
        return value
    if isinstance(value, bool):
        raise ValueError(f"invalid offset {value!r}: expected e.g. -5d, +1d, +2w")
    if isinstance(value, int):
        return StepOffset(0, value)
    d = _DEADLINE_RE.match(value) if isinstance(value, str) else None
    if d:
        n = int(d.group(2) or 0) * (-1 if d.group(1) == "-" else 1)
        return StepOffset(0, n, DEADLINE)
    m = _OFFSET_RE.match(value) if isinstance(value, str) else None
    if not m:
        raise ValueError(
            f"invalid offset {value!r}: expected a signed whole number of days or weeks, "
            "e.g. -5d, +1d, +2w, or `deadline - 5d` (calendar days before the insurer's "
            "declaration deadline)"
        )
    n = int(m.group(2)) * (-1 if m.group(1) == "-" else 1)
    return StepOffset(n, 0) if m.group(3) == "w" else StepOffset(0, n)


def parse_offset(value: Any) -> int:
    """`"-5d"`, `"+1d"`, `"2w"`, `"-1w"` (or an int number of days) -> signed calendar days."""
    return int(parse_step_offset(value))


def _parse_due_offset(value: Any) -> StepOffset:
    offset = parse_step_offset(value)
    if offset.from_deadline:
        raise ValueError(f"invalid offset {value!r}: days after the due date here, e.g. +45d")
    return offset


def _parse_gap(value: Any) -> StepOffset:
    gap = _parse_due_offset(value)
    if gap < 0:
        raise ValueError(f"invalid min_gap {gap.written!r}: it cannot be negative")
    return gap


def format_offset(days: int) -> str:
    """Signed days back to the YAML form: -5 -> `-5d`, 15 -> `+15d`, 0 -> `+0d`."""
    return f"{days:+d}d"


def _to_tuple(value: Any) -> Any:
    return (value,) if isinstance(value, str) else value


def _check_window(value: Any) -> Any:
    parse_window(value)
    return value.strip()


def _upper(value: Any) -> Any:
    return value.strip().upper() if isinstance(value, str) else value


def _lower_days(value: Any) -> Any:
    value = _to_tuple(value)
    if isinstance(value, list | tuple):
        return tuple(v.strip().lower()[:3] if isinstance(v, str) else v for v in value)
    return value


Offset = Annotated[
    StepOffset,
    PlainValidator(parse_step_offset),
    PlainSerializer(lambda v: v.written, return_type=str),
]
DueOffset = Annotated[
    StepOffset,
    PlainValidator(_parse_due_offset),
    PlainSerializer(lambda v: v.written, return_type=str),
]
Gap = Annotated[
    StepOffset, PlainValidator(_parse_gap), PlainSerializer(lambda v: v.written, return_type=str)
]
Identifier = Annotated[str, Field(pattern=_NAME, max_length=64)]


class _Frozen(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class PolicyStep(_Frozen):
    """One step: a message (`channel` + `template`), a `task`, a `declare` (the insurer's
    overdue declaration, `cobro.insurers.declarations`) or a `claim` (a task, older form)."""

    at: Offset
    channel: Annotated[tuple[Channel, ...] | None, BeforeValidator(_to_tuple)] = None
    template: Identifier | None = None
    action: StepKind | None = None
    note: str | None = None
    assignee_role: str | None = None

    @field_validator("channel")
    @classmethod
    def _channels(cls, value: tuple[str, ...] | None) -> tuple[str, ...] | None:
        if value is not None:
            if not value:
                raise ValueError("at least one channel (email, sms, whatsapp) is required")
            if len(set(value)) != len(value):
                raise ValueError(f"duplicate channel in {list(value)}")
        return value

    @model_validator(mode="after")
    def _shape(self) -> PolicyStep:
        kind = self.kind
        if kind == "send":
            if not self.channel:
                raise ValueError("a message step needs `channel` (email, sms, whatsapp or a list)")
            if not self.template:
                raise ValueError("a message step needs `template`")
            if self.note is not None or self.assignee_role is not None:
                raise ValueError("`note`/`assignee_role` belong to `action: task` steps")
        else:
            if self.channel is not None or self.template is not None:
                raise ValueError(f"`action: {kind}` takes no `channel`/`template`")
            if kind == "task" and not (self.note and self.note.strip()):
                raise ValueError("`action: task` needs a `note` saying what to do")
            if kind in ("claim", "declare") and self.assignee_role is not None:
                raise ValueError("`assignee_role` belongs to `action: task` steps")
        if self.at.from_deadline and kind != "declare":
            raise ValueError("`at: deadline ...` is for `action: declare` steps only")
        return self

    @property
    def kind(self) -> str:
        return self.action or "send"

    @property
    def label(self) -> str:
        """The offset as written in the policy (`+1w`, `-5d`)."""
        return self.at.written


class NotInsured(_Frozen):
    """What a `declare` or `claim` step does for an invoice not insured at its due date;
    `at`: when such an invoice reaches a `declare` step whose `at` counts from the deadline
    (it has none); default: with the step before it."""

    at: DueOffset | None = None
    action: Literal["task", "skip"] = "task"
    note: str = "not insured: decide on legal action"
    assignee_role: str | None = "credit_manager"


_DURATION_RE = re.compile(r"^\s*(\d+)\s*([dwm])\s*$")
_CURRENCY_RE = re.compile(r"^[A-Z]{3}$")


class Duration(tuple[int, str]):
    """A length of time as written: `90d`, `12w`, `3m` (months: same day of the month,
    the month's last day when it has fewer)."""

    __slots__ = ()

    def __new__(cls, count: int, unit: str) -> Duration:
        return super().__new__(cls, (count, unit))

    @property
    def count(self) -> int:
        return self[0]

    @property
    def unit(self) -> str:
        return self[1]

    @property
    def written(self) -> str:
        return f"{self[0]}{self[1]}"

    def __reduce__(self) -> Any:
        return (Duration, (self[0], self[1]))


def parse_duration(value: Any) -> Duration:
    """`"90d"`, `"2w"`, `"3m"` (or an int number of days) -> a positive `Duration`."""
    if isinstance(value, Duration):
        return value
    if isinstance(value, int) and not isinstance(value, bool):
        value = f"{value}d"
    m = _DURATION_RE.match(value) if isinstance(value, str) else None
    if not m or int(m.group(1)) <= 0:
        raise ValueError(
            f"invalid duration {value!r}: expected a positive whole number of days, weeks or "
            "months, e.g. 90d, 2w, 3m"
        )
    return Duration(int(m.group(1)), m.group(2))


def _parse_grace(value: Any) -> Duration:
    if value in (0, "0d"):
        return Duration(0, "d")
    return parse_duration(value)


PlanDuration = Annotated[
    Duration, PlainValidator(parse_duration), PlainSerializer(lambda v: v.written, return_type=str)
]
Grace = Annotated[
    Duration, PlainValidator(_parse_grace), PlainSerializer(lambda v: v.written, return_type=str)
]


def _minimum(value: Any) -> Any:
    """`min_instalment: 50` (in the plan's currency) or `{EUR: 50, USD: 60, default: 50}`."""
    if isinstance(value, dict):
        return {
            str(k).strip().upper() if str(k) != "default" else "default": v
            for k, v in value.items()
        }
    return {"default": value}


def _money(value: Any) -> Decimal:
    if isinstance(value, bool) or not isinstance(value, int | float | str | Decimal):
        raise ValueError(f"invalid amount {value!r}: expected a number, e.g. 50 or 49.90")
    try:
        amount = Decimal(str(value).strip())
    except InvalidOperation:
        raise ValueError(f"invalid amount {value!r}: expected a number, e.g. 50 or 49.90") from None
    if not amount.is_finite() or amount < 0:
        raise ValueError(f"invalid amount {value!r}: it must be zero or more")
    return amount


Amount = Annotated[
    Decimal, PlainValidator(_money), PlainSerializer(lambda v: str(v), return_type=str)
]


class PaymentPlanRules(_Frozen):
    """`payment_plans:` of a policy: the plans its customers may have and which ones are
    approved without a collector (details: `cobro.dunning.plans`)."""

    auto_approve: bool = False  # within the limits below; else (or outside them) a collector
    max_instalments: int = Field(3, ge=2, le=60)
    min_instalment: Annotated[dict[str, Amount], BeforeValidator(_minimum)] = Field(
        default_factory=lambda: {"default": Decimal(0)}
    )
    max_duration: PlanDuration = Duration(3, "m")  # from the request to the last instalment
    every: PlanDuration = Duration(1, "m")  # between two instalments (the first one too)
    grace: Grace = Duration(5, "d")  # calendar days after an instalment's date: missed
    reminder: PolicyStep = PolicyStep(
        at=StepOffset(0, -3), channel=("email",), template="instalment_due"
    )

    @field_validator("min_instalment")
    @classmethod
    def _currencies(cls, value: dict[str, Decimal]) -> dict[str, Decimal]:
        for code in value:
            if code != "default" and not _CURRENCY_RE.match(code):
                raise ValueError(
                    f"unknown currency key {code!r}: ISO 4217 codes (EUR, USD...) or `default`"
                )
        return value

    @field_validator("grace", "every", "max_duration")
    @classmethod
    def _no_months_for_grace(cls, value: Duration, info: ValidationInfo) -> Duration:
        if info.field_name == "grace" and value.unit != "d":
            raise ValueError(f"invalid grace {value.written!r}: calendar days, e.g. 5d")
        return value

    @field_validator("reminder")
    @classmethod
    def _message(cls, step: PolicyStep) -> PolicyStep:
        if step.kind != "send":
            raise ValueError("the instalment reminder is a message: `channel` and `template`")
        if step.at.from_deadline or step.at > 0:
            raise ValueError(
                f"invalid reminder offset {step.label!r}: days before (or at) each "
                "instalment's date, e.g. -3d or +0d"
            )
        return step

    def __hash__(self) -> int:  # frozen like the rest of the policy: hashable too
        return hash(
            tuple(
                (k, tuple(sorted(v.items())) if isinstance(v, dict) else v)
                for k, v in self.__dict__.items()
            )
        )

    def min_amount(self, currency: str) -> Decimal | None:
        """The smallest instalment in `currency` (None: the rules set none for it)."""
        found = self.min_instalment.get(currency.upper())
        return found if found is not None else self.min_instalment.get("default")


class DunningPolicy(_Frozen):
    name: Identifier
    applies_to: str | None = None  # expression; None = catch-all
    calendar: Annotated[str, BeforeValidator(_upper)] = CUSTOMER_CALENDAR
    business_days: bool = True
    send_window: Annotated[str, BeforeValidator(_check_window)] = "09:00-18:00"
    send_days: Annotated[tuple[Weekday, ...], BeforeValidator(_lower_days)] = (
        "mon",
        "tue",
        "wed",
        "thu",
        "fri",
    )
    min_gap: Gap = StepOffset(0, 3)
    catch_up: Literal["first_unsent", "latest"] = "first_unsent"
    not_insured: NotInsured = NotInsured()
    payment_plans: PaymentPlanRules | None = None  # None: every plan needs a collector
    steps: tuple[PolicyStep, ...] = Field(min_length=1)

    @field_validator("calendar")
    @classmethod
    def _calendar(cls, value: str) -> str:
        if value == CUSTOMER_CALENDAR.upper():
            return CUSTOMER_CALENDAR
        if value not in supported_countries():
            raise ValueError(
                f"unknown calendar {value!r}: expected an ISO 3166-1 alpha-2 country supported "
                "by the `holidays` library (e.g. FR, DE, US) or `customer`"
            )
        return value

    @field_validator("send_days")
    @classmethod
    def _days(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        if not value:
            raise ValueError("at least one sending day is required")
        if len(set(value)) != len(value):
            raise ValueError(f"duplicate day in {list(value)}")
        return tuple(sorted(value, key=WEEKDAYS.index))

    @field_validator("steps")
    @classmethod
    def _ordered(
        cls, steps: tuple[PolicyStep, ...], info: ValidationInfo
    ) -> tuple[PolicyStep, ...]:
        business = bool(info.data.get("business_days", True))
        # steps counted from the insurer's deadline are not ordered against the others
        dated = [(i, s) for i, s in enumerate(steps) if not s.at.from_deadline]
        for (j, before), (i, step) in itertools.pairwise(dated):
            if step.at.days(business) <= before.at.days(business):
                unit = " (in business days, a week is 5)" if business else ""
                raise ValueError(
                    f"steps must be in strictly increasing `at` order: step {i} "
                    f"({step.label}) does not come after step {j} ({before.label})" + unit
                )
        return steps

    def fallback_days(self, index: int) -> int:
        """When an invoice with no declaration deadline reaches step `index` counted from the
        deadline: `not_insured.at`, else with the nearest step before it counted from the
        due date (0: the due date)."""
        if self.not_insured.at is not None:
            return self.not_insured.at.days(self.business_days)
        for step in reversed(self.steps[:index]):
            if not step.at.from_deadline:
                return step.at.days(self.business_days)
        return 0

    def offset_days(self, step: PolicyStep) -> int:
        """The days `step.at` counts: business days (a week is 5) or calendar days."""
        return step.at.days(self.business_days)

    @property
    def min_gap_days(self) -> int:
        return self.min_gap.days(self.business_days)

    @cached_property
    def window(self) -> SendWindow:
        return SendWindow.parse(self.send_window, self.send_days)

    def calendar_country(self, customer_country: str) -> str:
        return customer_country.upper() if self.calendar == CUSTOMER_CALENDAR else self.calendar

    def calendar_of(
        self, customer_country: str, subdivision: str | None = None
    ) -> tuple[str, str | None]:
        """(country, subdivision) of the holidays that apply to a customer: its own with
        `calendar: customer`, else the fixed country's national ones."""
        if self.calendar == CUSTOMER_CALENDAR:
            return customer_country.upper(), subdivision or None
        return self.calendar, None


class DunningRulesFile(_Frozen):
    """The whole `rules/dunning.yaml`: policies tried in order, the first that applies wins;
    `languages`: what a customer whose language has no templates reads instead."""

    policies: tuple[DunningPolicy, ...] = Field(min_length=1)
    languages: LanguageRules = Field(default_factory=LanguageRules)

    @field_validator("policies")
    @classmethod
    def _unique(cls, policies: tuple[DunningPolicy, ...]) -> tuple[DunningPolicy, ...]:
        seen: set[str] = set()
        for p in policies:
            if p.name in seen:
                raise ValueError(f"duplicate policy name `{p.name}`")
            seen.add(p.name)
        return policies

    def get(self, name: str) -> DunningPolicy:
        for p in self.policies:
            if p.name == name:
                return p
        raise KeyError(name)

    def select(
        self,
        facts: Mapping[str, Any],
        matcher: Callable[[str, Mapping[str, Any]], bool] | None = None,
    ) -> DunningPolicy | None:
        """The first policy whose `applies_to` matches `facts` (None if none does).

        `matcher(expression, facts)` should be the rules engine's compiled evaluator; the
        default `simple_match` only understands the trivial forms used in the shipped file.
        """
        match = matcher or simple_match
        for p in self.policies:
            if p.applies_to is None or match(p.applies_to, facts):
                return p
        return None


# ---------------------------------------------------------------------------- loading


def _path(loc: tuple[Any, ...]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out


def load_policies(data: Any) -> DunningRulesFile:
    """Validate parsed YAML data (a mapping) or YAML text into a `DunningRulesFile`."""
    if isinstance(data, str):
        try:
            data = yaml.safe_load(data)
        except yaml.YAMLError as exc:
            raise PolicyError([("", f"invalid YAML: {exc}")]) from exc
    try:
        return DunningRulesFile.model_validate(data)
    except ValidationError as exc:
        errors = []
        for e in exc.errors():
            msg = e["msg"].removeprefix("Value error, ")
            errors.append((_path(e["loc"]), msg))
        raise PolicyError(errors) from None


def load_policies_file(path: str | Path) -> DunningRulesFile:
    p = Path(path)
    try:
        return load_policies(p.read_text(encoding="utf-8"))
    except PolicyError as exc:
        raise PolicyError(
            [(f"{p}: {loc}" if loc else str(p), m) for loc, m in exc.errors]
        ) from None


# ---------------------------------------------------------------------------- tiny matcher

_CLAUSE_RE = re.compile(r"^\s*([a-z_][a-z0-9_.]*)\s*(==|!=|not in|in)\s*(.+?)\s*$")


def simple_match(expression: str, facts: Mapping[str, Any]) -> bool:
    """Placeholder for the rules engine: `name in [...]`, `name == literal`, `name != literal`,
    `true`/`false`, joined by `and`. Anything else raises `NotImplementedError`."""
    text = expression.strip()
    if text.lower() in ("true", "false"):
        return text.lower() == "true"
    for clause in re.split(r"\s+and\s+", text):
        m = _CLAUSE_RE.match(clause)
        if not m:
            raise NotImplementedError(
                f"`{expression}` needs the rules engine (pass its matcher to `select`)"
            )
        name, op, raw = m.groups()
        try:
            literal = ast.literal_eval(raw)
        except (ValueError, SyntaxError):
            raise NotImplementedError(
                f"`{expression}` needs the rules engine (pass its matcher to `select`)"
            ) from None
        value = facts.get(name)
        if op == "==":
            ok = value == literal
        elif op == "!=":
            ok = value != literal
        elif op == "in":
            ok = value in literal
        else:
            ok = value not in literal
        if not ok:
            return False
    return True
