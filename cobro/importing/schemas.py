"""Pydantic models of one CSV row per import kind, and the translation of pydantic's errors
into our one-line `FILE:LINE: column: message` format.

Rows arrive as dicts of stripped, non-empty cells: an empty optional cell is `None`, an
empty required cell is "required value is missing". Values are normalised here (country
upper-case, phone E.164, ...); defaults that need the database (language and time zone of
an existing customer) are applied by the writers.
"""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from typing import Annotated, Any, TypeVar

from pydantic import (
    BaseModel,
    ConfigDict,
    PlainValidator,
    StringConstraints,
    ValidationError,
    ValidationInfo,
    field_validator,
)

from cobro.importing import normalise
from cobro.importing.reader import Row, error_line


def _text(max_length: int) -> Any:
    return Annotated[str, StringConstraints(max_length=max_length)]


Key = _text(64)
Account = Annotated[str, PlainValidator(lambda v: normalise.account(_str(v)))]
Name = Annotated[
    str, PlainValidator(lambda v: normalise.name(_str(v))), StringConstraints(max_length=255)
]
Country = Annotated[str, PlainValidator(lambda v: normalise.country(_str(v)))]
Language = Annotated[str, PlainValidator(lambda v: normalise.language(_str(v)))]
Timezone = Annotated[str, PlainValidator(lambda v: normalise.timezone(_str(v)))]
Currency = Annotated[str, PlainValidator(lambda v: normalise.currency(_str(v)))]
Emails = Annotated[str, PlainValidator(lambda v: normalise.emails(_str(v)))]
IsoDate = Annotated[date, PlainValidator(lambda v: normalise.iso_date(_str(v)))]


def _money(value: Any, info: ValidationInfo) -> Decimal:
    """Amounts of a ';'-separated file have a decimal comma (`context={"decimal_comma":
    True}`, see `reader.Dialect`)."""
    comma = bool(info.context and info.context.get("decimal_comma"))
    return normalise.money(_str(value), decimal_comma=comma)


Money = Annotated[Decimal, PlainValidator(_money)]
Flag = Annotated[bool, PlainValidator(lambda v: normalise.boolean(_str(v)))]
WholeNumber = Annotated[int, PlainValidator(lambda v: normalise.integer(_str(v)))]


def _str(value: Any) -> str:
    if not isinstance(value, str):
        raise ValueError(f"expected text, got {type(value).__name__}")
    return value


class _RowModel(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class CustomerRow(_RowModel):
    account: Account
    name: Name
    country: Country
    siren: _text(14) | None = None
    vat: _text(20) | None = None
    duns: _text(9) | None = None
    insurer_buyer_id: _text(64) | None = None
    language: Language | None = None
    timezone: Timezone | None = None
    email: Emails | None = None
    phone: str | None = None
    segment: _text(64) | None = None
    group: _text(64) | None = None
    payment_terms_days: WholeNumber | None = None
    owner: _text(128) | None = None  # a collector's username (checked against the users)

    @field_validator("phone")
    @classmethod
    def _e164(cls, value: str | None, info: ValidationInfo) -> str | None:
        country = info.data.get("country")
        if value is None or country is None:  # a bad country is reported on its own
            return value
        return normalise.phone(value, country)

    @field_validator("email")
    @classmethod
    def _email_fits(cls, value: str | None) -> str | None:
        if value is not None and len(value) > 1024:
            raise ValueError("too many e-mail addresses (1024 characters at most)")
        return value


class InvoiceRow(_RowModel):
    """`amount` < 0 is a credit note: its `open_amount` lies between `amount` and 0."""

    number: Key
    account: Account
    issue_date: IsoDate
    due_date: IsoDate
    currency: Currency
    amount: Money
    open_amount: Money | None = None
    disputed: Flag = False

    @field_validator("due_date")
    @classmethod
    def _due_after_issue(cls, value: date, info: ValidationInfo) -> date:
        issued = info.data.get("issue_date")
        if issued is not None and value < issued:
            raise ValueError(f"due date {value} is before the issue date {issued}")
        return value

    @field_validator("amount")
    @classmethod
    def _amount_in_minor_units(cls, value: Decimal, info: ValidationInfo) -> Decimal:
        return _minor_units(value, info)

    @field_validator("open_amount")
    @classmethod
    def _open_within_amount(cls, value: Decimal | None, info: ValidationInfo) -> Decimal | None:
        amount = info.data.get("amount")
        if value is None or amount is None:
            return value
        _minor_units(value, info)
        low, high = (Decimal(0), amount) if amount >= 0 else (amount, Decimal(0))
        if not low <= value <= high:
            raise ValueError(f"open amount {value} must lie between {low} and {high}")
        return value

    @property
    def effective_open_amount(self) -> Decimal:
        return self.amount if self.open_amount is None else self.open_amount


class PaymentRow(_RowModel):
    reference: Key
    account: Account
    date: IsoDate
    currency: Currency
    amount: Money
    invoice: Key | None = None

    @field_validator("amount")
    @classmethod
    def _positive(cls, value: Decimal, info: ValidationInfo) -> Decimal:
        if value <= 0:
            raise ValueError(f"payment amount {value} must be positive")
        return _minor_units(value, info)


def _minor_units(value: Decimal, info: ValidationInfo) -> Decimal:
    currency = info.data.get("currency")
    if currency is None:  # a bad currency is reported on its own
        return value
    return normalise.check_minor_units(value, currency)


ROW_MODELS: dict[str, type[_RowModel]] = {
    "customers": CustomerRow,
    "invoices": InvoiceRow,
    "payments": PaymentRow,
}
REQUIRED: dict[str, tuple[str, ...]] = {
    "customers": ("account", "name", "country"),
    "invoices": ("number", "account", "issue_date", "due_date", "currency", "amount"),
    "payments": ("reference", "account", "date", "currency", "amount"),
}

M = TypeVar("M", bound=_RowModel)


def columns(kind: str) -> list[str]:
    return list(ROW_MODELS[kind].model_fields)


def validate_rows(
    model: type[M],
    rows: list[Row],
    file: str,
    errors: list[tuple[int, str]],
    *,
    decimal_comma: bool = False,
) -> list[tuple[Row, M]]:
    """Validate every row; good rows are returned, each bad one adds its errors (line, text)."""
    good: list[tuple[Row, M]] = []
    validate = model.model_validate
    context = {"decimal_comma": decimal_comma}
    for row in rows:
        try:
            good.append((row, validate(row.values, context=context)))
        except ValidationError as exc:
            errors.extend((row.line, msg) for msg in pydantic_errors(exc, file, row.line))
    return good


def pydantic_errors(exc: ValidationError, file: str, line: int) -> list[str]:
    out = []
    for err in exc.errors(include_url=False):
        column = ".".join(str(part) for part in err["loc"]) or None
        out.append(error_line(file, line, column, _message(err)))
    return out


def _message(err: Any) -> str:
    kind = err["type"]
    if kind == "missing":
        return "required value is missing"
    if kind == "value_error":
        return str(err["ctx"]["error"])
    if kind in ("string_too_long", "too_long"):
        return f"too long ({err['ctx']['max_length']} characters at most)"
    return str(err["msg"])
