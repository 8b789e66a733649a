"""Canary's tables.

Times are stored in UTC and always come back timezone-aware. Raw messages
are stored once per SHA-256, zlib-compressed; each alias that received one
gets its own `Message` row with the envelope and, after analysis, the
sender facts and the relation to the alias's company.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import DateTime, Index, LargeBinary, TypeDecorator, UniqueConstraint, text
from sqlmodel import Column, Field, SQLModel


class UTCDateTime(TypeDecorator[datetime]):
    """Stores UTC; returns aware datetimes whatever the backend keeps."""

    impl = DateTime
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("Canary stores only timezone-aware times")
        return value.astimezone(UTC).replace(tzinfo=None)

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        return None if value is None else value.replace(tzinfo=UTC)


def _utc_column(*, index: bool = False, nullable: bool = False) -> Any:
    return Field(sa_column=Column(UTCDateTime(), index=index, nullable=nullable))


class Company(SQLModel, table=True):
    id: int | None = Field(default=None, primary_key=True)
    name: str
    slug: str = Field(unique=True, index=True)
    note: str | None = None
    created_at: datetime = _utc_column()


class CompanyDomain(SQLModel, table=True):
    """An organisation that is the company's own: declared at issue time or trusted later."""

    __table_args__ = (UniqueConstraint("company_id", "domain"),)
    id: int | None = Field(default=None, primary_key=True)
    company_id: int = Field(foreign_key="company.id", index=True)
    domain: str
    source: str
    """A `canary.aliases.DomainSource` value: declared at issue time, or trusted later."""
    added_at: datetime = _utc_column()


class Alias(SQLModel, table=True):
    id: int | None = Field(default=None, primary_key=True)
    company_id: int = Field(foreign_key="company.id", index=True)
    slug: str = Field(unique=True)
    address: str = Field(unique=True, index=True)
    issued_at: datetime = _utc_column()
    retired_at: datetime | None = _utc_column(nullable=True)
    retire_reply: str | None = None
    """After retirement, a `canary.aliases.RetireReply` value."""
    adopted: bool = False
    """An address the person gave out before Canary (a catch-all or plus address), adopted
    as it is rather than issued by Canary."""


class RawMessage(SQLModel, table=True):
    sha256: str = Field(primary_key=True, max_length=64)
    size: int
    content: bytes = Field(sa_column=Column(LargeBinary, nullable=False))
    """zlib-compressed bytes exactly as received after DATA."""


class ImportSource(SQLModel, table=True):
    """A mailbox, Maildir or IMAP folder whose mail `canary import` read, and how far."""

    id: int | None = Field(default=None, primary_key=True)
    source: str = Field(index=True)
    """Where from, as the person named it, without secrets."""
    trusted_authserv_id: str | None = None
    """The provider whose Authentication-Results the person told Canary to believe."""
    started_at: datetime = _utc_column()
    finished_at: datetime | None = _utc_column(nullable=True)
    read: int = 0
    stored: int = 0
    skipped: int = 0
    """Messages to no alias: counted, never stored."""
    duplicates: int = 0
    problems: int = 0
    resume: str | None = None
    """Where a rerun goes on: `UIDVALIDITY:UID` of an IMAP folder."""


class Message(SQLModel, table=True):
    """One received message as delivered to one alias."""

    __table_args__ = (
        UniqueConstraint("sha256", "alias_id"),
        # The mail not analysed yet, per alias, as the report counts it (`data.summary`):
        # a few rows of a large home, read without touching the wide message rows.
        Index("ix_message_pending", "alias_id", "set_aside_at", "temperror",
              sqlite_where=text("relation IS NULL"), postgresql_where=text("relation IS NULL")),
    )
    id: int | None = Field(default=None, primary_key=True)
    sha256: str = Field(foreign_key="rawmessage.sha256", max_length=64)
    """Looked up through the unique (sha256, alias_id) index."""
    alias_id: int = Field(foreign_key="alias.id", index=True)
    rcpt_to: str
    mail_from: str
    peer_ip: str
    """The client that sent the message: the SMTP peer, or the XFORWARD ADDR of a trusted relay."""
    helo: str | None = None
    forwarded_by: str | None = None
    """The trusted relay's own address when it passed the client by XFORWARD."""
    tls: bool = False
    received_at: datetime = _utc_column(index=True)
    import_id: int | None = Field(default=None, foreign_key="importsource.id", index=True)
    """The import it came from (`canary import`); None for mail the listener received."""
    receipt_estimated: bool = False
    """For imported mail: `received_at` is the sender's Date header, not the provider's
    receipt."""

    analysed_at: datetime | None = _utc_column(index=True, nullable=True)
    """Set once analysis has settled; None while pending or waiting to retry."""
    attempts: int = 0
    failures: int = 0
    """Times analysis itself failed on this message (Canary's fault, not the sender's)."""
    set_aside_at: datetime | None = _utc_column(nullable=True)
    """Set when analysis failed too often: out of the verdict, counted, never retried."""
    retry_at: datetime | None = _utc_column(nullable=True)
    """After a temporary DNS failure: when to try again."""
    claimed_at: datetime | None = _utc_column(nullable=True)
    """When an analyst last claimed it (several MXes on one PostgreSQL database)."""
    temperror: str | None = None
    """The last temporary failure, kept until analysis settles."""
    problem: str | None = None
    from_address: str | None = None
    from_orgs: str | None = None
    """Space-separated organisational domains of every From address."""
    return_path: str | None = None
    dkim_domains: str | None = None
    list_unsubscribe: str | None = None
    message_id: str | None = None
    sent_at: datetime | None = _utc_column(nullable=True)
    subject: str | None = None
    precedence: str | None = None
    marketing: bool | None = None
    marketing_reason: str | None = None
    esp: str | None = None
    esp_customer: str | None = None
    esp_auth_method: str | None = None
    """How the ESP authenticated its sending: a `canary.authentication.AuthMethod` value."""
    esp_auth_domain: str | None = None
    relation: str | None = Field(default=None, index=True)
    sender_org: str | None = None
    """The sender identity's name: an organisation, a mailbox, a group, a merchant…"""
    sender_kind: str | None = None
    """A `canary.senders.SenderKind` value."""
    sender_via: str | None = None
    """The platform or ESP that named the sender, when it did not send itself."""
    reason: str | None = None
    auth_method: str | None = None
    """How the sender organisation authenticated: a `canary.authentication.AuthMethod` value."""
    auth_domain: str | None = None
    """The domain that method proved."""


class MessageEvidence(SQLModel, table=True):
    """What analysis checked for one message, as evidence: wide JSON read only to cite or
    re-decide the message, so it stays out of the message rows every report scans."""

    message_id: int = Field(foreign_key="message.id", primary_key=True)
    authentication: str
    """JSON of the SPF, DKIM and DMARC results (`canary.authentication`)."""
    dns_answers: str
    """JSON of the DNS answers the checks used, recorded at analysis time."""


class SenderTally(SQLModel, table=True):
    """The analysed mail one alias received from one sender in one relation, summed up and
    kept current with every analysis (`data.tallies`): what `canary report` reads."""

    __table_args__ = (UniqueConstraint("alias_id", "relation", "organisation", "kind"),)
    id: int | None = Field(default=None, primary_key=True)
    alias_id: int = Field(foreign_key="alias.id")
    """Looked up through the unique (alias_id, relation, organisation, kind) index."""
    relation: str
    organisation: str
    """The sender's name; "" when it has none."""
    kind: str
    """A `canary.senders.SenderKind` value; "" when none was recorded."""
    count: int
    marketing: int
    """How many of them are marketing."""
    first_seen: datetime = _utc_column()
    last_seen: datetime = _utc_column()
    examples: str
    """JSON: the first few messages, oldest first."""
    authentications: str
    """JSON: each distinct way the sender authenticated, and when it first did."""


class ConsentReview(SQLModel, table=True):
    """A company's consent findings as last worked out (`data.tallies.review_consent`), kept
    so the report need not read all its marketing again; stale, and ignored, as soon as
    its consent changes or new marketing of its own is analysed."""

    company_id: int = Field(foreign_key="company.id", primary_key=True)
    consent_id: int
    """The newest consent record the findings judged by: another one makes them stale."""
    findings: str
    """JSON: the findings, each with how many messages it cites and the first
    `canary.report.EVIDENCE_SHOWN` of them (what a report lists)."""
    messages: str
    """JSON: per finding, the rest of the messages it cites (read only to list them all)."""


class ConsentRecord(SQLModel, table=True):
    """What the person agreed to with a company, in force from `since`."""

    id: int | None = Field(default=None, primary_key=True)
    company_id: int = Field(foreign_key="company.id", index=True)
    since: datetime = _utc_column()
    marketing: bool | None = None
    frequency: str | None = None
    opted_out: bool = False


class FlaggedSender(SQLModel, table=True):
    """A sender organisation the user confirmed as not the company's own."""

    __table_args__ = (UniqueConstraint("company_id", "organisation"),)
    id: int | None = Field(default=None, primary_key=True)
    company_id: int = Field(foreign_key="company.id", index=True)
    organisation: str
    flagged_at: datetime = _utc_column()


class EspCustomer(SQLModel, table=True):
    """An ESP customer id confirmed as the company's own: the same ESP, another id, is not."""

    __table_args__ = (UniqueConstraint("company_id", "esp", "customer_id"),)
    id: int | None = Field(default=None, primary_key=True)
    company_id: int = Field(foreign_key="company.id", index=True)
    esp: str
    customer_id: str
    source: str
    """`learned` from the company's authenticated mail, or `trusted` by the person."""
    added_at: datetime = _utc_column()


class Probe(SQLModel, table=True):
    """A RCPT to a canary domain that is no issued alias: someone guessing addresses."""

    id: int | None = Field(default=None, primary_key=True)
    received_at: datetime = _utc_column(index=True)
    peer_ip: str
    address: str
    mail_from: str | None = None


class DeliveryDestination(SQLModel, table=True):
    """A destination delivery has served: it gets the mail received from `first_message_id` on."""

    key: str = Field(primary_key=True)
    """The destination as `canary.delivery.Destination.key` names it (no secrets)."""
    first_message_id: int
    added_at: datetime = _utc_column()


class DeliveryJob(SQLModel, table=True):
    """One message to deliver to one destination, and how that went."""

    __table_args__ = (UniqueConstraint("message_id", "destination"),)
    id: int | None = Field(default=None, primary_key=True)
    message_id: int = Field(foreign_key="message.id", index=True)
    destination: str
    state: str = Field(index=True)
    """A `canary.delivery.DeliveryState` value."""
    action: str | None = None
    """The `canary.delivery.Action` decided for it (deliver, tag, hold); None until decided."""
    attempts: int = 0
    next_attempt_at: datetime | None = _utc_column(index=True, nullable=True)
    claimed_until: datetime | None = _utc_column(nullable=True)
    """While a deliverer works on it: no other may take it before then."""
    claimed_by: str | None = None
    """Which deliverer holds the claim (`host:pid:nonce`), so a restarted one can free the
    claims of a dead one at once instead of waiting for them to run out."""
    last_error: str | None = None
    created_at: datetime = _utc_column()
    delivered_at: datetime | None = _utc_column(nullable=True)


class SharedHome(SQLModel, table=True):
    """What every MX writing to one shared database (PostgreSQL) must agree on: the alias
    secret and the canary domains. `canary init --join URL` takes them from here, so a second
    MX can never answer 550 to the first one's aliases."""

    id: int = Field(default=1, primary_key=True)
    secret: str
    """The alias secret, hex; the database is as private as the secret file."""
    domains: str
    """Space-separated canary domains."""
    created_at: datetime = _utc_column()
