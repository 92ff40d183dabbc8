"""The database: SQLAlchemy 2 typed models. Migrations live in `cobro/migrations/`.

Natural keys (customer account, invoice number, payment reference, insurer cover id) are
unique, so every import and sync is an upsert. Money columns are `Money` (exact Decimal)
and always travel with an ISO 4217 `currency`.
"""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from typing import Any, ClassVar

from sqlalchemy import (
    JSON,
    BigInteger,
    CheckConstraint,
    Date,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    UniqueConstraint,
    event,
    inspect,
    select,
    text,
    update,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

from cobro.types import Money, UTCDateTime, utcnow

NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

JsonType = JSON().with_variant(JSONB(), "postgresql")


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)
    type_annotation_map: ClassVar[dict[Any, Any]] = {
        Decimal: Money(),
        datetime: UTCDateTime(),
        dict[str, Any]: JsonType,
    }


class Timestamps:
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class Customer(Timestamps, Base):
    __tablename__ = "customers"
    __table_args__ = (
        # `search_text LIKE '%nunez%'` (cobro.search): a trigram index on PostgreSQL; a
        # plain one on SQLite, which scans it instead of the wider table
        Index(
            "ix_customers_search_text",
            "search_text",
            postgresql_using="gin",
            postgresql_ops={"search_text": "gin_trgm_ops"},
        ),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    account: Mapped[str] = mapped_column(String(64), unique=True)
    name: Mapped[str] = mapped_column(String(255))
    country: Mapped[str] = mapped_column(String(2))
    siren: Mapped[str | None] = mapped_column(String(14), index=True)
    vat: Mapped[str | None] = mapped_column(String(20), index=True)
    duns: Mapped[str | None] = mapped_column(String(9), index=True)
    insurer_buyer_id: Mapped[str | None] = mapped_column(String(64), index=True)
    language: Mapped[str] = mapped_column(String(2))
    timezone: Mapped[str] = mapped_column(String(64))
    email: Mapped[str | None] = mapped_column(String(1024), doc="addresses separated by ';'")
    phone: Mapped[str | None] = mapped_column(String(20), doc="E.164")
    opt_out_email: Mapped[bool] = mapped_column(default=False)
    opt_out_sms: Mapped[bool] = mapped_column(default=False)
    whatsapp_opt_in_at: Mapped[datetime | None] = mapped_column(
        doc="when the customer agreed to WhatsApp messages (None: no WhatsApp)"
    )
    whatsapp_opt_in_source: Mapped[str | None] = mapped_column(
        String(128), doc="how the opt-in (or its withdrawal) was given: `cli:<who>`, `whatsapp`"
    )
    segment: Mapped[str | None] = mapped_column(String(64), index=True)
    group: Mapped[str | None] = mapped_column("group_name", String(64), index=True)
    parent_account: Mapped[str | None] = mapped_column(String(64))
    payment_terms_days: Mapped[int | None] = mapped_column(Integer)
    discretionary_limit: Mapped[Decimal | None] = mapped_column(doc="own credit limit")
    discretionary_limit_currency: Mapped[str | None] = mapped_column(String(3))
    owner: Mapped[str | None] = mapped_column(
        String(128), index=True, doc="the username of the collector who owns the customer"
    )
    search_text: Mapped[str] = mapped_column(
        Text,
        default="",
        server_default="",
        doc="name, account, SIREN, VAT and email without case or accents (cobro.search)",
    )

    invoices: Mapped[list[Invoice]] = relationship(back_populates="customer")


@event.listens_for(Customer, "before_insert")
@event.listens_for(Customer, "before_update")
def _keep_search_text(_mapper: Any, _connection: Any, customer: Customer) -> None:
    """Every ORM write keeps `search_text` (the CSV import's bulk SQL sets it too)."""
    from cobro.search import search_text_of

    customer.search_text = search_text_of(customer)


class Invoice(Timestamps, Base):
    __tablename__ = "invoices"
    __table_args__ = (
        CheckConstraint("open_amount <= amount OR amount < 0", name="open_le_amount"),
        Index("ix_invoices_customer_open", "customer_id", "open_amount"),
        # the open invoices only (a few percent of the table), every column the KPIs and the
        # rules' facts read; by customer, so a batch of customers is one range
        Index(
            "ix_invoices_open",
            "customer_id",
            "currency",
            "issue_date",
            "due_date",
            "open_amount",
            "disputed",
            "id",
            postgresql_where=text("open_amount > 0"),
            sqlite_where=text("open_amount > 0"),
        ),
        # the open credit notes only (negative open amounts): netted from the receivables
        Index(
            "ix_invoices_open_credit",
            "currency",
            "issue_date",
            "due_date",
            "open_amount",
            postgresql_where=text("open_amount < 0"),
            sqlite_where=text("open_amount < 0"),
        ),
        # sales per day: a range of issue dates read from the index alone
        Index("ix_invoices_issue_date", "issue_date", "currency", "amount"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    number: Mapped[str] = mapped_column(String(64), unique=True)
    customer_id: Mapped[int] = mapped_column(ForeignKey("customers.id"), index=True)
    issue_date: Mapped[date] = mapped_column(Date)
    due_date: Mapped[date] = mapped_column(Date, index=True)
    currency: Mapped[str] = mapped_column(String(3))
    amount: Mapped[Decimal]
    open_amount: Mapped[Decimal]
    disputed: Mapped[bool] = mapped_column(default=False)

    customer: Mapped[Customer] = relationship(back_populates="invoices")


class Payment(Timestamps, Base):
    __tablename__ = "payments"
    # a customer's payments by date (last payment date without reading the rows)
    __table_args__ = (Index("ix_payments_customer_id_date", "customer_id", "date"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    reference: Mapped[str] = mapped_column(String(64), unique=True)
    customer_id: Mapped[int] = mapped_column(ForeignKey("customers.id"))
    date: Mapped[date] = mapped_column(Date)
    currency: Mapped[str] = mapped_column(String(3))
    amount: Mapped[Decimal]
    invoice_number: Mapped[str | None] = mapped_column(String(64), doc="as given by the ERP")
    unallocated_amount: Mapped[Decimal]


class PaymentAllocation(Base):
    """Part of a payment applied to one invoice (always > 0, in the invoice's currency).

    It carries copies of its payment's date (payments are immutable) and of its invoice's
    customer, currency, issue and due dates (kept in step by the invoice import, see
    `cobro.importing.invoices.copy_invoice_fields`): "what was open on day D" then reads
    the allocations dated after D from one index, without joining payments or invoices.
    Core inserts build their rows with `allocation_values`; through the ORM the copies are
    filled in (see the listeners at the end of this module).
    """

    __tablename__ = "payment_allocations"
    __table_args__ = (
        UniqueConstraint("payment_id", "invoice_id"),
        # a batch of customers' payment behaviour (days late) from the index alone
        Index(
            "ix_payment_allocations_customer_id_payment_date",
            "customer_id",
            "payment_date",
            "due_date",
        ),
        Index(
            "ix_payment_allocations_payment_date",
            "payment_date",
            postgresql_include=[
                "invoice_id",
                "customer_id",
                "currency",
                "issue_date",
                "due_date",
                "amount",
            ],
        ),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    payment_id: Mapped[int] = mapped_column(ForeignKey("payments.id"), index=True)
    invoice_id: Mapped[int] = mapped_column(ForeignKey("invoices.id"), index=True)
    amount: Mapped[Decimal]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    payment_date: Mapped[date] = mapped_column(Date, doc="copy of the payment's date")
    customer_id: Mapped[int] = mapped_column(doc="copy of the invoice's customer")
    currency: Mapped[str] = mapped_column(String(3), doc="copy of the invoice's currency")
    issue_date: Mapped[date] = mapped_column(Date, doc="copy of the invoice's issue date")
    due_date: Mapped[date] = mapped_column(Date, doc="copy of the invoice's due date")


def allocation_values(
    payment_id: int,
    payment_date: date,
    amount: Decimal,
    *,
    invoice_id: int,
    customer_id: int,
    currency: str,
    issue_date: date,
    due_date: date,
) -> dict[str, Any]:
    """The columns of a new `PaymentAllocation`, copies included."""
    return {
        "payment_id": payment_id,
        "invoice_id": invoice_id,
        "amount": amount,
        "payment_date": payment_date,
        "customer_id": customer_id,
        "currency": currency,
        "issue_date": issue_date,
        "due_date": due_date,
    }


class InsurerCover(Timestamps, Base):
    __tablename__ = "insurer_covers"
    __table_args__ = (UniqueConstraint("insurer", "cover_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    insurer: Mapped[str] = mapped_column(String(32))
    policy_id: Mapped[str] = mapped_column(String(64))
    cover_id: Mapped[str] = mapped_column(String(64), doc="the insurer's id of the cover")
    customer_id: Mapped[int | None] = mapped_column(
        ForeignKey("customers.id"), index=True, doc="NULL while unmatched"
    )
    insurer_buyer_id: Mapped[str | None] = mapped_column(String(64), index=True)
    buyer_name: Mapped[str | None] = mapped_column(String(255))
    buyer_siren: Mapped[str | None] = mapped_column(String(14))
    buyer_vat: Mapped[str | None] = mapped_column(String(20))
    buyer_duns: Mapped[str | None] = mapped_column(String(9))
    cover_type: Mapped[str] = mapped_column(String(16), doc="permanent | temporary")
    nominative: Mapped[bool] = mapped_column(default=True)
    requested_amount: Mapped[Decimal | None]
    granted_amount: Mapped[Decimal | None]
    currency: Mapped[str] = mapped_column(String(3))
    status: Mapped[str] = mapped_column(String(32), doc="granted, partially_granted, ...")
    request_date: Mapped[date | None] = mapped_column(Date)
    decision_date: Mapped[date | None] = mapped_column(Date)
    valid_from: Mapped[date | None] = mapped_column(Date)
    valid_until: Mapped[date | None] = mapped_column(Date)
    raw: Mapped[dict[str, Any] | None]
    grade: Mapped[int | None] = mapped_column(Integer, doc="the buyer's grade, 1 (best) to 10")
    insurer_updated_at: Mapped[datetime | None] = mapped_column(doc="the insurer's updatedAt")
    match_method: Mapped[str | None] = mapped_column(
        String(16), doc="buyer_id, siren, siret, vat, duns or manual; NULL while unmatched"
    )
    last_sync_run_id: Mapped[int | None] = mapped_column(Integer)


class CoverHistory(Base):
    """A change to a cover seen by a sync: created, amount, status, validity, expired, grade."""

    __tablename__ = "cover_history"
    __table_args__ = (Index("ix_cover_history_cover_at", "insurer_cover_id", "at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    insurer_cover_id: Mapped[int] = mapped_column(ForeignKey("insurer_covers.id"))
    customer_id: Mapped[int | None] = mapped_column(ForeignKey("customers.id"), index=True)
    sync_run_id: Mapped[int | None] = mapped_column(Integer)
    kind: Mapped[str] = mapped_column(String(16))
    old: Mapped[dict[str, Any] | None]
    new: Mapped[dict[str, Any] | None]
    at: Mapped[datetime] = mapped_column(default=utcnow)


class InsurerMatchKey(Base):
    """One normalised identifier of a customer (buyer id, SIREN, VAT, DUNS), written once per
    sync run and deleted when it finishes: each page of covers is matched by an indexed query
    on the page's identifiers, so no sync holds every customer in memory."""

    __tablename__ = "insurer_match_keys"
    __table_args__ = (Index("ix_insurer_match_keys_lookup", "sync_run_id", "value", "kind"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    sync_run_id: Mapped[int] = mapped_column(Integer)
    kind: Mapped[str] = mapped_column(String(8), doc="buyer_id, siren, vat, duns")
    value: Mapped[str] = mapped_column(String(64))
    customer_id: Mapped[int] = mapped_column(Integer)


class InsurerQuarantine(Base):
    """A record the insurer sent that failed validation: kept verbatim, never applied.

    Open (`resolved_at` NULL) until a valid version of the record is applied (`resolution`
    "applied") or a later succeeded sync has read the whole window it lies in ("superseded").
    While open, every incremental sync asks for changes since at most `refetch_since`
    (NULL: a full fetch). See `cobro/insurers/CONTRACT.md`, "What the sync guarantees"."""

    __tablename__ = "insurer_quarantine"
    __table_args__ = (
        Index("ix_insurer_quarantine_record", "insurer", "record_id"),
        Index("ix_insurer_quarantine_open", "insurer", "resolved_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    sync_run_id: Mapped[int | None] = mapped_column(Integer, index=True)
    insurer: Mapped[str] = mapped_column(String(32))
    record_id: Mapped[str | None] = mapped_column(String(64))
    page: Mapped[int | None] = mapped_column(Integer)
    position: Mapped[int | None] = mapped_column(Integer)
    reason: Mapped[str] = mapped_column(Text)
    raw: Mapped[str] = mapped_column(Text, doc="the payload as received (JSON text)")
    at: Mapped[datetime] = mapped_column(default=utcnow)
    refetch_since: Mapped[datetime | None] = mapped_column(
        doc="the record's updatedAt is at least this (NULL: unknown, only a full fetch finds it)"
    )
    resolved_at: Mapped[datetime | None]
    resolved_by_run_id: Mapped[int | None] = mapped_column(Integer)
    resolution: Mapped[str | None] = mapped_column(String(16), doc="applied | superseded")


class GradeHistory(Base):
    __tablename__ = "grade_history"
    __table_args__ = (UniqueConstraint("customer_id", "insurer", "graded_on"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    customer_id: Mapped[int] = mapped_column(ForeignKey("customers.id"), index=True)
    insurer: Mapped[str] = mapped_column(String(32))
    grade: Mapped[int] = mapped_column(Integer, doc="1 (best) to 10 (worst)")
    graded_on: Mapped[date] = mapped_column(Date)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class RulesetVersion(Base):
    __tablename__ = "ruleset_versions"

    id: Mapped[int] = mapped_column(primary_key=True)
    content_hash: Mapped[str] = mapped_column(String(64), unique=True)
    files: Mapped[dict[str, Any]] = mapped_column(doc="file name -> YAML text")
    author: Mapped[str] = mapped_column(String(128))
    message: Mapped[str] = mapped_column(Text, default="")
    active: Mapped[bool] = mapped_column(default=False)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class RiskAssessment(Base):
    __tablename__ = "risk_assessments"
    __table_args__ = (Index("ix_risk_assessments_customer_at", "customer_id", "assessed_at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    customer_id: Mapped[int] = mapped_column(ForeignKey("customers.id"))
    risk_class: Mapped[str] = mapped_column(String(64))
    previous_class: Mapped[str | None] = mapped_column(String(64))
    ruleset_hash: Mapped[str] = mapped_column(String(64))
    explanation: Mapped[dict[str, Any]]
    assessed_at: Mapped[datetime] = mapped_column(default=utcnow)


class Alert(Base):
    __tablename__ = "alerts"

    id: Mapped[int] = mapped_column(primary_key=True)
    customer_id: Mapped[int] = mapped_column(ForeignKey("customers.id"), index=True)
    name: Mapped[str] = mapped_column(String(64))
    severity: Mapped[str] = mapped_column(String(16))
    message: Mapped[str] = mapped_column(Text, doc="in the team's language")
    messages: Mapped[dict[str, Any] | None] = mapped_column(
        doc="language -> the message in it, when alerts.yaml gives one per language"
    )
    dedup_key: Mapped[str] = mapped_column(String(255), unique=True)
    state: Mapped[str] = mapped_column(String(16), default="open", index=True)
    ruleset_hash: Mapped[str] = mapped_column(String(64))
    fired_at: Mapped[datetime] = mapped_column(default=utcnow)
    acknowledged_by: Mapped[str | None] = mapped_column(String(128))
    acknowledged_at: Mapped[datetime | None]
    assigned_to: Mapped[str | None] = mapped_column(String(128), index=True)


class Communication(Base):
    """One message to a customer. `idempotency_key` is claimed before the send."""

    __tablename__ = "communications"

    id: Mapped[int] = mapped_column(primary_key=True)
    customer_id: Mapped[int] = mapped_column(ForeignKey("customers.id"), index=True)
    channel: Mapped[str] = mapped_column(String(16), doc="email | sms | whatsapp")
    template: Mapped[str] = mapped_column(String(64))
    language: Mapped[str | None] = mapped_column(String(2))
    recipient: Mapped[str] = mapped_column(String(1024))
    idempotency_key: Mapped[str] = mapped_column(String(255), unique=True)
    status: Mapped[str] = mapped_column(
        String(16),
        default="claimed",
        doc="claimed (an attempt holds it: may have reached the provider), delayed (the "
        "last attempt was refused for now: not sent), sent, uncertain (a collector decides), "
        "failed, cancelled, bounced",
    )
    attempts: Mapped[int] = mapped_column(Integer, default=1, server_default="1")
    lease_until: Mapped[datetime | None] = mapped_column(
        doc="the attempt holding the claim sends before this instant, or not at all"
    )
    provider_id: Mapped[str | None] = mapped_column(String(255))
    subject: Mapped[str | None] = mapped_column(String(998))
    body: Mapped[str | None] = mapped_column(Text)
    body_html: Mapped[str | None] = mapped_column(Text)
    provider_template: Mapped[dict[str, Any] | None] = mapped_column(
        doc="WhatsApp: the approved template it is sent as, `{sid, variables}` (None: the body)"
    )
    error: Mapped[str | None] = mapped_column(Text)
    invoice_numbers: Mapped[dict[str, Any] | None]
    workflow_id: Mapped[str | None] = mapped_column(String(255))
    run_id: Mapped[str | None] = mapped_column(String(64))
    ruleset_hash: Mapped[str | None] = mapped_column(
        String(64), doc="the rules version in force when the contact was claimed"
    )
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    sent_at: Mapped[datetime | None]
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class InvoiceStepReached(Base):
    """One invoice reaching one step of its policy (OCA's credit-control "line"): the invoice's
    level, never done twice. The step itself is `cobro.dunning.policy.PolicyStep`."""

    __tablename__ = "dunning_steps"
    __table_args__ = (UniqueConstraint("invoice_id", "step_index", "channel"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    customer_id: Mapped[int] = mapped_column(ForeignKey("customers.id"), index=True)
    invoice_id: Mapped[int] = mapped_column(ForeignKey("invoices.id"))
    policy: Mapped[str] = mapped_column(String(64))
    step_index: Mapped[int] = mapped_column(Integer)
    channel: Mapped[str] = mapped_column(String(16), doc="email, sms, task, claim")
    outcome: Mapped[str] = mapped_column(String(16), doc="sent, skipped, task, claim")
    label: Mapped[str | None] = mapped_column(String(64), doc="template or action name")
    idempotency_key: Mapped[str | None] = mapped_column(String(255))
    reason: Mapped[str | None] = mapped_column(Text)
    workflow_id: Mapped[str | None] = mapped_column(String(255))
    run_id: Mapped[str | None] = mapped_column(String(64))
    at: Mapped[datetime] = mapped_column(default=utcnow)


class DunningPause(Base):
    """A manual pause or a promise to pay; reminders wait until it ends."""

    __tablename__ = "dunning_pauses"

    id: Mapped[int] = mapped_column(primary_key=True)
    customer_id: Mapped[int] = mapped_column(ForeignKey("customers.id"), index=True)
    kind: Mapped[str] = mapped_column(String(16), doc="pause | promise")
    reason: Mapped[str] = mapped_column(Text, default="")
    actor: Mapped[str] = mapped_column(String(128), default="system")
    until: Mapped[date | None] = mapped_column(Date, doc="inclusive; NULL = until resumed")
    promised_amount: Mapped[Decimal | None]
    currency: Mapped[str | None] = mapped_column(String(3))
    status: Mapped[str] = mapped_column(
        String(16),
        default="active",
        doc="active, ended, kept, partly_kept, broken, cancelled, replaced",
    )
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    ended_at: Mapped[datetime | None]


class PaymentPlan(Base):
    """A payment plan of a customer (`cobro.dunning.plans_sql`): its open invoices in one
    currency paid in instalments. While `approved` the invoices are not dunned on their own
    due dates; each instalment is. `status`: requested, approved, rejected, completed,
    broken, cancelled."""

    __tablename__ = "payment_plans"

    id: Mapped[int] = mapped_column(primary_key=True)
    customer_id: Mapped[int] = mapped_column(ForeignKey("customers.id"), index=True)
    status: Mapped[str] = mapped_column(String(16), default="requested", index=True)
    currency: Mapped[str] = mapped_column(String(3))
    total_amount: Mapped[Decimal]
    invoice_numbers: Mapped[dict[str, Any]] = mapped_column(doc='{"invoices": [...]}')
    policy: Mapped[str] = mapped_column(String(64), default="")
    requested_by: Mapped[str] = mapped_column(String(128))
    requested_at: Mapped[datetime] = mapped_column(default=utcnow)
    note: Mapped[str] = mapped_column(Text, default="")
    problems: Mapped[dict[str, Any] | None] = mapped_column(doc="why not approved by rule")
    decided_by: Mapped[str | None] = mapped_column(String(128))
    decided_at: Mapped[datetime | None]
    decision_note: Mapped[str | None] = mapped_column(Text)
    ended_at: Mapped[datetime | None]
    ruleset_hash: Mapped[str | None] = mapped_column(String(64))


class PaymentPlanInstalment(Base):
    """One instalment of a plan: a due date dunning follows, what was paid of it."""

    __tablename__ = "payment_plan_instalments"
    __table_args__ = (UniqueConstraint("plan_id", "seq"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    plan_id: Mapped[int] = mapped_column(ForeignKey("payment_plans.id"), index=True)
    seq: Mapped[int]
    due_date: Mapped[date] = mapped_column(Date)
    amount: Mapped[Decimal]
    paid_amount: Mapped[Decimal] = mapped_column(default=Decimal(0))
    status: Mapped[str] = mapped_column(String(16), default="due", doc="due, paid, missed")
    paid_at: Mapped[datetime | None]


class InvoiceDispute(Base):
    """A dispute a collector opened on one invoice (who, why, when), until resolved.

    While one is open the invoice's `disputed` flag is set (the import keeps it so even if
    the ERP says otherwise) and dunning leaves the invoice alone. A flag set by the ERP's
    import has no row here."""

    __tablename__ = "invoice_disputes"

    id: Mapped[int] = mapped_column(primary_key=True)
    invoice_id: Mapped[int] = mapped_column(ForeignKey("invoices.id"), index=True)
    customer_id: Mapped[int] = mapped_column(ForeignKey("customers.id"), index=True)
    reason: Mapped[str] = mapped_column(Text)
    opened_by: Mapped[str] = mapped_column(String(128))
    opened_at: Mapped[datetime] = mapped_column(default=utcnow)
    resolved_by: Mapped[str | None] = mapped_column(String(128))
    resolved_at: Mapped[datetime | None]
    resolution: Mapped[str] = mapped_column(Text, default="")


class DunningFactDigest(Base):
    """The digest of a customer's dunning facts when its workflow was last signalled
    (`cobro.dunning.digest`): a sync, a restart or an import signals again only when the
    facts' digest differs, so unchanged customers' histories do not grow."""

    __tablename__ = "dunning_fact_digests"

    customer_id: Mapped[int] = mapped_column(ForeignKey("customers.id"), primary_key=True)
    digest: Mapped[str] = mapped_column(String(64))
    signal: Mapped[str] = mapped_column(String(64), doc="the kind of the last signal sent")
    signalled_at: Mapped[datetime] = mapped_column(default=utcnow)


class InsurerDeclaration(Base):
    """A payment-overdue declaration to the credit insurer (OVD, EXP or RES), one per invoice
    and category: `client_reference` (deterministic, `cobro.insurers.declarations`) makes
    filing it idempotent at the insurer; `status` follows it from `awaiting_approval` or
    `queued` to `filed` (the insurer's job) to `registered` or `rejected`."""

    __tablename__ = "insurer_declarations"
    __table_args__ = (Index("ix_insurer_declarations_customer_status", "customer_id", "status"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    customer_id: Mapped[int] = mapped_column(ForeignKey("customers.id"))
    invoice_id: Mapped[int] = mapped_column(ForeignKey("invoices.id"), index=True)
    invoice_number: Mapped[str] = mapped_column(String(64))
    category: Mapped[str] = mapped_column(String(3), doc="OVD, EXP or RES")
    client_reference: Mapped[str] = mapped_column(String(64), unique=True)
    status: Mapped[str] = mapped_column(
        String(20), doc="awaiting_approval, queued, filed, registered, rejected, cancelled"
    )
    policy_id: Mapped[str] = mapped_column(String(64))
    company_id: Mapped[str | None] = mapped_column(String(64), doc="the insurer's buyer id")
    currency: Mapped[str] = mapped_column(String(3))
    amount: Mapped[Decimal] = mapped_column(doc="the open amount declared")
    due_date: Mapped[date] = mapped_column(Date)
    deadline: Mapped[date | None] = mapped_column(Date, doc="declare-by (OVD), MEP end (EXP)")
    new_due_date: Mapped[date | None] = mapped_column(Date, doc="EXP: the extended due date")
    installments: Mapped[dict[str, Any] | None] = mapped_column(doc="RES: the repayment plan")
    job_id: Mapped[str | None] = mapped_column(String(64))
    overdue_id: Mapped[str | None] = mapped_column(String(64))
    insurer_status: Mapped[str | None] = mapped_column(String(32))
    error: Mapped[str | None] = mapped_column(Text)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    requested_by: Mapped[str] = mapped_column(String(128), default="system")
    approved_by: Mapped[str | None] = mapped_column(String(128))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    filed_at: Mapped[datetime | None]
    answered_at: Mapped[datetime | None]


class InsurerClaim(Base):
    """A claim (hand-over) to the credit insurer for one declared invoice: `queued` ->
    `filed` (the insurer's job) -> `acknowledged` -> `indemnified` or `refused`. Payments
    allocated to the invoice after `indemnified_on` are recoveries (`cobro.insurers.claims`)."""

    __tablename__ = "insurer_claims"

    id: Mapped[int] = mapped_column(primary_key=True)
    customer_id: Mapped[int] = mapped_column(ForeignKey("customers.id"), index=True)
    invoice_id: Mapped[int] = mapped_column(ForeignKey("invoices.id"), unique=True)
    invoice_number: Mapped[str] = mapped_column(String(64))
    policy_id: Mapped[str] = mapped_column(String(64))
    currency: Mapped[str] = mapped_column(String(3))
    client_reference: Mapped[str | None] = mapped_column(
        String(64), unique=True, doc="`cobro-clm-<invoice>`: one claim at the insurer"
    )
    status: Mapped[str] = mapped_column(
        String(16), doc="queued, filed, acknowledged, indemnified, refused"
    )
    job_id: Mapped[str | None] = mapped_column(String(64), doc="the insurer's job, once filed")
    checked_at: Mapped[datetime | None] = mapped_column(
        doc="when the insurer was last asked for its decision (the workflow's clock)"
    )
    attempts: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    claimed_amount: Mapped[Decimal]
    indemnified_amount: Mapped[Decimal | None]
    recovered_amount: Mapped[Decimal] = mapped_column(
        default=Decimal(0), server_default="0", doc="paid by the buyer after the indemnity"
    )
    insured_percent: Mapped[Decimal] = mapped_column(doc="the policy's, when filed")
    insurer_reference: Mapped[str | None] = mapped_column(String(64))
    reason: Mapped[str | None] = mapped_column(Text, doc="why refused")
    filed_on: Mapped[date] = mapped_column(Date)
    claim_by: Mapped[date | None] = mapped_column(Date, doc="the policy's claim deadline")
    acknowledged_on: Mapped[date | None] = mapped_column(Date)
    indemnified_on: Mapped[date | None] = mapped_column(Date)
    refused_on: Mapped[date | None] = mapped_column(Date)
    filed_by: Mapped[str] = mapped_column(String(128), default="system")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class TimelineEvent(Base):
    """Everything a human may ask about a customer, in order."""

    __tablename__ = "timeline_events"
    __table_args__ = (
        Index("ix_timeline_events_customer_at", "customer_id", "at"),
        Index("ix_timeline_events_kind_at", "kind", "at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    customer_id: Mapped[int] = mapped_column(ForeignKey("customers.id"))
    at: Mapped[datetime] = mapped_column(default=utcnow)
    kind: Mapped[str] = mapped_column(String(64))
    actor: Mapped[str] = mapped_column(String(128), default="system")
    summary: Mapped[str] = mapped_column(Text)
    data: Mapped[dict[str, Any] | None]


class Task(Base):
    """Something a person must do for a customer. Created by `cobro.queues.routing.new_task`:
    it goes to the customer's owner (`assignee`), else it waits in the queue of
    `assignee_role` until a user of that role takes it."""

    __tablename__ = "tasks"

    id: Mapped[int] = mapped_column(primary_key=True)
    customer_id: Mapped[int] = mapped_column(ForeignKey("customers.id"), index=True)
    kind: Mapped[str] = mapped_column(String(32), doc="call, claim, review_limit, ...")
    note: Mapped[str] = mapped_column(Text, default="")
    assignee_role: Mapped[str | None] = mapped_column(String(64), doc="the queue it belongs to")
    assignee: Mapped[str | None] = mapped_column(
        String(128), index=True, doc="the user doing it; NULL while it waits in its queue"
    )
    due_date: Mapped[date | None] = mapped_column(Date)
    status: Mapped[str] = mapped_column(String(16), default="open", index=True)
    source_key: Mapped[str | None] = mapped_column(String(255), unique=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    done_at: Mapped[datetime | None]


class SyncRun(Base):
    __tablename__ = "sync_runs"

    id: Mapped[int] = mapped_column(primary_key=True)
    insurer: Mapped[str] = mapped_column(String(32))
    kind: Mapped[str] = mapped_column(String(16), doc="incremental | full")
    status: Mapped[str] = mapped_column(String(16), default="running")
    started_at: Mapped[datetime] = mapped_column(default=utcnow)
    finished_at: Mapped[datetime | None]
    counts: Mapped[dict[str, Any] | None]
    error: Mapped[str | None] = mapped_column(Text)
    updated_since: Mapped[datetime | None] = mapped_column(doc="incremental: changes since")
    high_water: Mapped[datetime | None] = mapped_column(
        doc="the next incremental sync asks for changes since this instant"
    )
    workflow_id: Mapped[str | None] = mapped_column(String(255))


class TeamNotification(Base):
    """A message to the collections team (the classification digest): claimed by its unique
    idempotency key before the send, like a customer communication."""

    __tablename__ = "team_notifications"

    id: Mapped[int] = mapped_column(primary_key=True)
    kind: Mapped[str] = mapped_column(String(32))
    idempotency_key: Mapped[str] = mapped_column(String(255), unique=True)
    recipient: Mapped[str] = mapped_column(String(1024))
    subject: Mapped[str] = mapped_column(String(998))
    body: Mapped[str] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(16), default="claimed", doc="claimed, sent")
    provider_id: Mapped[str | None] = mapped_column(String(255))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    sent_at: Mapped[datetime | None]


class CustomerFactSnapshot(Base):
    """The facts of a customer at its last classification: the `previous.*` of the next."""

    __tablename__ = "customer_fact_snapshots"

    customer_id: Mapped[int] = mapped_column(ForeignKey("customers.id"), primary_key=True)
    facts: Mapped[dict[str, Any]]
    ruleset_hash: Mapped[str | None] = mapped_column(String(64))
    as_of: Mapped[datetime] = mapped_column(default=utcnow)


class User(Base):
    """A dashboard user: viewer, collector or admin. Passwords are argon2 hashes."""

    __tablename__ = "users"

    id: Mapped[int] = mapped_column(primary_key=True)
    username: Mapped[str] = mapped_column(String(128), unique=True)
    display_name: Mapped[str] = mapped_column(String(255), default="")
    password_hash: Mapped[str] = mapped_column(String(255))
    role: Mapped[str] = mapped_column(String(16), doc="viewer, collector or admin")
    language: Mapped[str | None] = mapped_column(
        String(8), doc="the dashboard's language (en, es, fr, de); NULL: the browser's"
    )
    active: Mapped[bool] = mapped_column(default=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    last_login_at: Mapped[datetime | None]


class ApiToken(Base):
    """A token for scripts (`Authorization: Bearer ...`); only its SHA-256 is stored. Its
    scope is `read` (GET calls only) or `act` (also the state-changing calls, within its
    user's role); past `expires_at` (NULL: never) it is refused."""

    __tablename__ = "api_tokens"

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"), index=True)
    name: Mapped[str] = mapped_column(String(128))
    token_sha256: Mapped[str] = mapped_column(String(64), unique=True)
    scope: Mapped[str] = mapped_column(String(8))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[datetime | None]
    last_used_at: Mapped[datetime | None]
    revoked_at: Mapped[datetime | None]


class WebSession(Base):
    """A dashboard log-in: the signed cookie names it, so logging out (or a new password)
    ends it on the server too. Only the SHA-256 of its key is stored."""

    __tablename__ = "web_sessions"

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"), index=True)
    key_sha256: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[datetime]
    revoked_at: Mapped[datetime | None]


class LoginThrottle(Base):
    """Failed log-ins counted per user name (`kind` "user", known or not: a lockout never
    tells which names exist) and per client address (`kind` "address"): growing delays,
    and a lockout of the name that `cobro users unlock NAME` lifts (`cobro.login_limits`)."""

    __tablename__ = "login_throttles"

    kind: Mapped[str] = mapped_column(String(8), primary_key=True)
    key: Mapped[str] = mapped_column(String(255), primary_key=True)
    failures: Mapped[int] = mapped_column(default=0)
    last_failure_at: Mapped[datetime] = mapped_column(index=True)
    locked_at: Mapped[datetime | None]


class DataChange(Base):
    """One committed statement that changed what the portfolio's figures read (invoices,
    payments, covers, ...), written by a PostgreSQL statement trigger (migration 0023): the
    sum of `weight` grows with every such commit, and `cobro.portfolio_cache` keeps a figure
    computed under one sum until it grows. Old rows are folded into one (same sum)."""

    __tablename__ = "data_changes"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    weight: Mapped[int] = mapped_column(BigInteger, default=1, server_default="1")


class ImportRun(Base):
    """One CSV import: what file, how many rows created / updated / unchanged."""

    __tablename__ = "import_runs"

    id: Mapped[int] = mapped_column(primary_key=True)
    kind: Mapped[str] = mapped_column(String(16))
    file_name: Mapped[str] = mapped_column(String(1024))
    file_sha256: Mapped[str] = mapped_column(String(64))
    counts: Mapped[dict[str, Any]]
    at: Mapped[datetime] = mapped_column(default=utcnow)


class ForecastModel(Base):
    """The collection forecast's portfolio curve and spreads as of one day
    (`cobro.forecast.model.Portfolio`), computed from the data identified by `fingerprint`,
    and the forecasts made from it (`forecasts`, by number of weeks, from the open invoices
    identified by `open_fingerprint`): a cache (`cobro.forecast.store`), recomputed
    whenever the data differ."""

    __tablename__ = "forecast_models"

    as_of: Mapped[date] = mapped_column(Date, primary_key=True)
    fingerprint: Mapped[str] = mapped_column(String(128))
    portfolio: Mapped[dict[str, Any]] = mapped_column(JsonType)
    open_fingerprint: Mapped[str | None] = mapped_column(String(160))
    forecasts: Mapped[dict[str, Any] | None] = mapped_column(
        JSON().with_variant(JSONB(), "postgresql")
    )
    computed_at: Mapped[datetime] = mapped_column(default=utcnow)


class ForecastProfile(Base):
    """One customer's rounded payment profile as of a day (`cobro.forecast.model.Profile`),
    for customers with payments in the 12 months before it; part of the `ForecastModel`."""

    __tablename__ = "forecast_profiles"

    as_of: Mapped[date] = mapped_column(Date, primary_key=True)
    customer_id: Mapped[int] = mapped_column(primary_key=True)
    delay_days: Mapped[int] = mapped_column(Integer)
    spread_step: Mapped[int] = mapped_column(Integer)


__all__ = [
    "INVOICE_COPIES",
    "Alert",
    "ApiToken",
    "Base",
    "Communication",
    "CoverHistory",
    "Customer",
    "CustomerFactSnapshot",
    "DunningFactDigest",
    "DunningPause",
    "ForecastModel",
    "ForecastProfile",
    "GradeHistory",
    "ImportRun",
    "InsurerClaim",
    "InsurerCover",
    "InsurerDeclaration",
    "InsurerQuarantine",
    "Invoice",
    "InvoiceStepReached",
    "Payment",
    "PaymentAllocation",
    "RiskAssessment",
    "RulesetVersion",
    "SyncRun",
    "Task",
    "TeamNotification",
    "TimelineEvent",
    "User",
    "WebSession",
    "allocation_values",
]


# -- the copies on PaymentAllocation stay right whoever writes through the ORM ------------
# (the imports write them with Core statements themselves: `allocation_values` and
# `cobro.importing.invoices.copy_invoice_fields`)
INVOICE_COPIES = ("customer_id", "currency", "issue_date", "due_date")


@event.listens_for(PaymentAllocation, "before_insert")
def _fill_allocation_copies(_mapper: Any, connection: Any, target: PaymentAllocation) -> None:
    if target.payment_date is None:
        payments = Payment.__table__.c
        target.payment_date = connection.scalar(
            select(payments.date).where(payments.id == target.payment_id)
        )
    if any(getattr(target, name) is None for name in INVOICE_COPIES):
        invoices = Invoice.__table__.c
        row = connection.execute(
            select(*(invoices[name] for name in INVOICE_COPIES)).where(
                invoices.id == target.invoice_id
            )
        ).first()
        if row is not None:
            for name, value in zip(INVOICE_COPIES, row, strict=True):
                if getattr(target, name) is None:
                    setattr(target, name, value)


@event.listens_for(Invoice, "after_update")
def _follow_invoice_changes(_mapper: Any, connection: Any, target: Invoice) -> None:
    state = inspect(target)
    if any(state.attrs[name].history.has_changes() for name in INVOICE_COPIES):
        allocations = PaymentAllocation.__table__
        connection.execute(
            update(allocations)
            .where(allocations.c.invoice_id == target.id)
            .values({name: getattr(target, name) for name in INVOICE_COPIES})
        )


class PortalLink(Base):
    """A signed self-service link for one customer (`cobro.portal.links`): the token carries
    the row's id and `nonce` under an HMAC; the row says until when it works, whether it was
    revoked, when it was last used, and counts its requests per minute (rate limit)."""

    __tablename__ = "portal_links"

    id: Mapped[int] = mapped_column(primary_key=True)
    customer_id: Mapped[int] = mapped_column(ForeignKey("customers.id"), index=True)
    nonce: Mapped[str] = mapped_column(String(32))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    created_by: Mapped[str] = mapped_column(String(128), default="system")
    expires_at: Mapped[datetime]
    revoked_at: Mapped[datetime | None]
    last_used_at: Mapped[datetime | None]
    uses: Mapped[int] = mapped_column(default=0)
    window_start: Mapped[datetime | None]
    window_hits: Mapped[int] = mapped_column(default=0)


class InboundEmail(Base):
    """An email that came back to us (`cobro.replies.incoming_email`): a customer's reply,
    an automatic reply or a delivery-status notification, recorded once per Message-ID."""

    __tablename__ = "inbound_emails"

    id: Mapped[int] = mapped_column(primary_key=True)
    message_id: Mapped[str] = mapped_column(String(998), unique=True)
    customer_id: Mapped[int | None] = mapped_column(ForeignKey("customers.id"), index=True)
    communication_id: Mapped[int | None] = mapped_column(
        ForeignKey("communications.id"), doc="the reminder it answers or bounces"
    )
    kind: Mapped[str] = mapped_column(String(16), doc="human, auto_reply, bounce, delayed")
    why: Mapped[str] = mapped_column(Text, default="")
    sender: Mapped[str] = mapped_column(String(998), default="")
    subject: Mapped[str] = mapped_column(Text, default="")
    text: Mapped[str] = mapped_column(Text, default="", doc="the reply's own words (excerpt)")
    received_at: Mapped[datetime] = mapped_column(default=utcnow)


class UndeliverableAddress(Base):
    """An email address a relay bounced for good (5.x.x): no email goes to it any more. A
    customer imported with another address is written to again at once."""

    __tablename__ = "undeliverable_addresses"

    id: Mapped[int] = mapped_column(primary_key=True)
    address: Mapped[str] = mapped_column(String(998), unique=True, doc="lower case")
    status: Mapped[str] = mapped_column(String(16), doc="the DSN's status code, 5.1.1")
    reason: Mapped[str] = mapped_column(Text, default="")
    inbound_email_id: Mapped[int | None] = mapped_column(ForeignKey("inbound_emails.id"))
    since: Mapped[datetime] = mapped_column(default=utcnow)
