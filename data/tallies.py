"""Sender tallies: the analysed mail summed up per alias, sender and relation, kept current.

`canary report` reads these rows instead of every message, so it reads
thousands of rows however many millions of messages there are. A tally
holds what the verdict and its evidence need (`canary.report.SenderGroup`):
how many messages, how many of them marketing, first and last sighting, the
first `EXAMPLES_KEPT` messages, and each distinct way the sender
authenticated with when it first did.

Every change of a message's relation, sender or authentication goes
through here, in the same transaction as the change itself:
`count_in` adds newly analysed messages; `recount` computes the tallies of
some aliases (or of all) again from their messages, after reclassification,
after `trust`, and for `canary analyse --rebuild`. A message counts once its
relation is known (as `Counts` does): mail waiting for analysis is not in a
tally, and the report counts it straight from the messages (few rows, on an
index).

A company's consent findings need each of its own marketing messages; they
are kept too (`ConsentReview`), worked out by `review_consent` when the
listener's analysis is idle and after `canary analyse`, and dropped in the
same transaction as anything that changes them: new marketing of the
company's own analysed, its tallies recounted, or its consent changed (a
review names the consent record it judged by). The report works out the
findings of a company without a valid review from its messages, as before.
"""

from __future__ import annotations

import json
from collections.abc import Collection, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy import Connection
from sqlmodel import SQLModel

from canary.consent import consent_findings
from canary.report import EXAMPLES_KEPT
from data.mailstore import insert_ignoring_duplicates
from data.models import SenderTally
from data.summary import EXPECTED, consent_histories, findings_json, own_marketing

_CHUNK = 500
"""Aliases recounted per query (bound parameters stay well under every backend's limit)."""


@dataclass(frozen=True, slots=True)
class TallyKey:
    alias_id: int
    relation: str
    organisation: str
    """The sender's name; "" when it has none (the report names it `UNKNOWN_SENDER`)."""
    kind: str
    """A `canary.senders.SenderKind` value; "" when none was recorded."""


@dataclass(frozen=True, slots=True)
class Tally:
    """One row of `sendertally`, decoded."""

    key: TallyKey
    count: int
    marketing: int
    first_seen: datetime
    last_seen: datetime
    examples: tuple[tuple[datetime, int, str | None, str, str | None], ...]
    """The first `EXAMPLES_KEPT` messages, oldest first: (received, message row id,
    Message-ID, SHA-256, via)."""
    authentications: tuple[tuple[datetime, int, str | None, str | None], ...]
    """Each distinct way the sender authenticated, with the first message that did:
    (received, message row id, method, domain); method None when none was recorded."""


def _table() -> sa.Table:
    return SQLModel.metadata.tables["sendertally"]


def decode(row: Any) -> Tally:
    """A `sendertally` row (selected whole) as a `Tally`."""
    return Tally(
        TallyKey(row.alias_id, row.relation, row.organisation, row.kind),
        row.count, row.marketing, row.first_seen, row.last_seen,
        tuple((datetime.fromisoformat(at), number, message_id, sha256, via)
              for at, number, message_id, sha256, via in json.loads(row.examples)),
        tuple((datetime.fromisoformat(at), number, method, domain)
              for at, number, method, domain in json.loads(row.authentications)),
    )


def _encode(tally: Tally) -> dict[str, Any]:
    return {
        "alias_id": tally.key.alias_id, "relation": tally.key.relation,
        "organisation": tally.key.organisation, "kind": tally.key.kind,
        "count": tally.count, "marketing": tally.marketing,
        "first_seen": tally.first_seen, "last_seen": tally.last_seen,
        "examples": json.dumps([[at.isoformat(), number, message_id, sha256, via]
                                for at, number, message_id, sha256, via in tally.examples]),
        "authentications": json.dumps([[at.isoformat(), number, method, domain]
                                       for at, number, method, domain in tally.authentications]),
    }


@dataclass(frozen=True, slots=True)
class Counted:
    """A message whose relation was just decided, as its tally counts it."""

    key: TallyKey
    id: int
    received_at: datetime
    message_id: str | None
    sha256: str
    via: str | None
    auth_method: str | None
    auth_domain: str | None
    marketing: bool


def _fold(tally: Tally, messages: Sequence[Counted]) -> Tally:
    """The tally with these messages counted in."""
    examples = list(tally.examples)
    ways = {(method, domain): (at, number) for at, number, method, domain in tally.authentications}
    count, marketing = tally.count, tally.marketing
    first, last = tally.first_seen, tally.last_seen
    for message in messages:
        order = (message.received_at, message.id)
        examples.append((*order, message.message_id, message.sha256, message.via))
        way = (message.auth_method, message.auth_domain)
        if way not in ways or order < ways[way]:
            ways[way] = order
        first = min(first, message.received_at) if count else message.received_at
        last = max(last, message.received_at) if count else message.received_at
        count, marketing = count + 1, marketing + message.marketing
    return Tally(tally.key, count, marketing, first, last, tuple(sorted(examples)[:EXAMPLES_KEPT]),
                 tuple(sorted((at, number, method, domain)
                              for (method, domain), (at, number) in ways.items())))


def count_in(connection: Connection, messages: Sequence[Counted]) -> None:
    """Add messages whose relation was just decided to their tallies (the caller's
    transaction): a few statements for the whole group, however many messages.

    Rows are created, locked and written in the order of their keys. On PostgreSQL the
    tally rows stay locked until the caller commits, so two listeners analysing mail of
    the same sender count both messages, and cannot deadlock on the order they lock in.
    """
    if not messages:
        return
    table = _table()
    c = table.c
    grouped: dict[TallyKey, list[Counted]] = {}
    for message in messages:
        grouped.setdefault(message.key, []).append(message)
    keys = sorted(grouped, key=_sort_key)
    connection.execute(insert_ignoring_duplicates(connection.dialect.name, SenderTally), [
        _encode(Tally(key, 0, 0, grouped[key][0].received_at, grouped[key][0].received_at,
                      (), ()))
        for key in keys])
    columns = (c.alias_id, c.relation, c.organisation, c.kind)
    rows = connection.execute(
        sa.select(table).where(sa.tuple_(*columns).in_([_sort_key(key) for key in keys]))
        .order_by(*columns).with_for_update()).all()
    counted = [_fold(tally, grouped[tally.key]) for tally in map(decode, rows)]
    connection.execute(
        sa.update(table).where(*(column == sa.bindparam(f"key_{column.name}")
                                 for column in columns)),
        [{**{f"key_{name}": value for name, value in values.items() if name in _KEY_COLUMNS},
          **{name: value for name, value in values.items() if name not in _KEY_COLUMNS}}
         for values in map(_encode, counted)])
    marketing = {m.key.alias_id for m in messages if m.marketing and m.key.relation in EXPECTED}
    if marketing:
        _forget_reviews(connection, marketing)


def _sort_key(key: TallyKey) -> tuple[int, str, str, str]:
    return (key.alias_id, key.relation, key.organisation, key.kind)


_KEY_COLUMNS = ("alias_id", "relation", "organisation", "kind")


def _counted(connection: Connection, alias_ids: Collection[int] | None) -> Iterator[Tally]:
    """The tallies of these aliases (or of all), computed from their messages."""
    m = SQLModel.metadata.tables["message"].c
    organisation = sa.func.coalesce(m.sender_org, "")
    kind = sa.func.coalesce(m.sender_kind, "")
    group = (m.alias_id, m.relation, organisation, kind)
    order = (m.received_at, m.id)
    selling = sa.case((m.marketing.is_(True), 1), else_=0)
    where = [m.relation.is_not(None)]
    if alias_ids is not None:
        where.append(m.alias_id.in_(list(alias_ids)))
    numbered = (
        sa.select(
            m.alias_id, m.relation, organisation.label("organisation"), kind.label("kind"),
            m.received_at, m.id, m.message_id, m.sha256, m.sender_via, m.auth_method,
            m.auth_domain,
            sa.func.row_number().over(partition_by=group, order_by=order).label("rank"),
            sa.func.row_number().over(partition_by=(*group, m.auth_method, m.auth_domain),
                                      order_by=order).label("way_rank"),
            sa.func.count().over(partition_by=group).label("total"),
            sa.func.sum(selling).over(partition_by=group).label("selling"),
            sa.func.max(m.received_at).over(partition_by=group).label("last"))
        .where(*where).subquery())
    n = numbered.c
    rows = connection.execute(
        sa.select(numbered).where(sa.or_(n.rank <= EXAMPLES_KEPT, n.way_rank == 1)))
    spans: dict[TallyKey, tuple[int, int, datetime, datetime]] = {}
    examples: dict[TallyKey, list[tuple[datetime, int, str | None, str, str | None]]] = {}
    ways: dict[TallyKey, list[tuple[datetime, int, str | None, str | None]]] = {}
    for row in rows:
        key = TallyKey(row.alias_id, row.relation, row.organisation, row.kind)
        if row.rank == 1:
            spans[key] = (row.total, row.selling, row.received_at, row.last)
        if row.rank <= EXAMPLES_KEPT:
            examples.setdefault(key, []).append(
                (row.received_at, row.id, row.message_id, row.sha256, row.sender_via))
        if row.way_rank == 1:
            ways.setdefault(key, []).append(
                (row.received_at, row.id, row.auth_method, row.auth_domain))
    for key, (count, marketing, first, last) in spans.items():
        yield Tally(key, count, marketing, first, last, tuple(sorted(examples[key])),
                    tuple(sorted(ways[key])))


def rebuild(connection: Connection) -> int:
    """Compute every tally, and every company's consent findings, again from the stored
    mail (`canary analyse --rebuild`, the migration that made them); return how many
    tallies there are."""
    tallies = recount(connection)
    review_consent(connection)
    return tallies


def recount(connection: Connection, alias_ids: Collection[int] | None = None) -> int:
    """Compute the tallies of these aliases (or of every alias) again from their messages,
    in the caller's transaction; return how many tallies there are now. A caller with an
    ORM session flushes it first, so that the messages read here are as it changed them."""
    table = _table()
    chunks: list[Collection[int] | None] = [None]
    if alias_ids is not None:
        ordered = sorted(set(alias_ids))
        chunks = [ordered[start:start + _CHUNK] for start in range(0, len(ordered), _CHUNK)]
    written = 0
    for chunk in chunks:
        _forget_reviews(connection, chunk)
        if chunk is None:
            connection.execute(sa.delete(table))
        else:
            connection.execute(sa.delete(table).where(table.c.alias_id.in_(list(chunk))))
        batch: list[dict[str, Any]] = []
        for tally in _counted(connection, chunk):
            batch.append(_encode(tally))
            if len(batch) >= 5_000:
                connection.execute(sa.insert(table), batch)
                written, batch = written + len(batch), []
        if batch:
            connection.execute(sa.insert(table), batch)
            written += len(batch)
    return written


def tallies(connection: Connection, alias_ids: Collection[int] | None = None) -> list[Tally]:
    """The stored tallies of these aliases (or of all), in a stable order."""
    table = _table()
    query = sa.select(table)
    if alias_ids is not None:
        query = query.where(table.c.alias_id.in_(list(alias_ids)))
    return sorted((decode(row) for row in connection.execute(query)),
                  key=lambda t: (t.key.alias_id, t.key.relation, t.key.organisation, t.key.kind))


def _tables(*names: str) -> tuple[sa.Table, ...]:
    return tuple(SQLModel.metadata.tables[name] for name in names)


def _forget_reviews(connection: Connection, alias_ids: Collection[int] | None) -> None:
    """Drop the consent reviews of these aliases' companies (of all, for None)."""
    review, alias = _tables("consentreview", "alias")
    if alias_ids is None:
        connection.execute(sa.delete(review))
        return
    connection.execute(sa.delete(review).where(review.c.company_id.in_(
        sa.select(alias.c.company_id).where(alias.c.id.in_(list(alias_ids))))))


def review_consent(connection: Connection, limit: int | None = None) -> int:
    """Work out and keep the consent findings of up to `limit` companies (all, for None)
    whose kept ones are missing or stale, in the caller's transaction; return how many."""
    driver = connection.connection.driver_connection
    histories = consent_histories(driver)
    (review,) = _tables("consentreview")
    kept = {company for company, consent in connection.execute(
        sa.select(review.c.company_id, review.c.consent_id))
            if company in histories and consent == histories[company].newest}
    due = sorted(company for company in histories if company not in kept)[:limit]
    if not due:
        return 0
    connection.execute(sa.delete(review).where(review.c.company_id.in_(due)))
    mail = own_marketing(driver, due)
    written = []
    for company in due:
        findings, messages = findings_json(consent_findings(histories[company].records,
                                                            mail.get(company, ())))
        written.append({"company_id": company, "consent_id": histories[company].newest,
                        "findings": findings, "messages": messages})
    connection.execute(sa.insert(review), written)
    return len(due)
