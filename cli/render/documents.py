"""The `--json` documents of every command but `report`, one function each.

Each document has a `schema_version` and a JSON Schema of its own in
`canary/schemas/<command>.schema.json` (the report's is built by
`canary.report.report_document`). Times are ISO 8601 UTC with `Z`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from canary.wording import iso_time

if TYPE_CHECKING:  # types only: `canary aliases` should not load the report or the listener
    from canary.consent import Consent
    from canary.report import CompanyReport, Sighting
    from data.analyses import Trusted
    from data.deliveries import JobListing
    from data.directory import AliasListing
    from data.registry import IssuedAlias, Rotation
    from smtp_listener.delivery import Pass
    from smtp_listener.evidence import Verification
    from smtp_listener.importer import Found, ImportRun

SCHEMA_VERSION = 1


def _document(**fields: Any) -> dict[str, Any]:
    return {"schema_version": SCHEMA_VERSION, **fields}


def issue_document(issued: IssuedAlias) -> dict[str, Any]:
    return _document(company=issued.company, address=issued.address,
                     issued_at=iso_time(issued.issued_at), domains=list(issued.domains),
                     note=issued.note)


def issued_document(issued: Sequence[IssuedAlias]) -> dict[str, Any]:
    """`canary issue --from FILE --json`: every alias issued, in the file's order."""
    return _document(issued=[{k: v for k, v in issue_document(i).items()
                              if k != "schema_version"} for i in issued])


def aliases_document(listing: Sequence[AliasListing]) -> dict[str, Any]:
    return _document(aliases=[
        {"company": a.company, "address": a.address, "issued_at": iso_time(a.issued_at),
         "domains": list(a.domains), "note": a.note, "messages": a.messages,
         "unexpected": a.unexpected,
         "retired_at": iso_time(a.retired_at) if a.retired_at else None,
         "retire_reply": a.retire_reply.value if a.retire_reply else None}
        for a in listing
    ])


def _sighting(s: Sighting) -> dict[str, Any]:
    return {
        "received_at": iso_time(s.received_at), "alias": s.alias_slug,
        "relation": s.relation.value if s.relation else None, "sender": s.sender_org,
        "from_address": s.from_address, "subject": s.subject, "message_id": s.message_id,
        "sha256": s.sha256, "reason": s.reason,
        "authenticated_by": s.authenticated_by.to_dict() if s.authenticated_by else None,
        "problem": s.problem, "temperror": s.temperror, "marketing": s.marketing,
    }


def show_document(report: CompanyReport, limit: int) -> dict[str, Any]:
    from canary.report import company_json

    return _document(company=company_json(report),
                     timeline=[_sighting(s) for s in report.timeline[-limit:]],
                     timeline_total=report.counts.total)


def consent_document(company: str, consent: Consent) -> dict[str, Any]:
    return _document(company=company, since=iso_time(consent.since),
                     marketing=consent.marketing,
                     frequency=consent.frequency.value if consent.frequency else None,
                     opted_out=consent.opted_out)


def retire_document(company: str, reply: str, addresses: Sequence[str]) -> dict[str, Any]:
    return _document(company=company, reply=reply, retired=list(addresses))


def rotate_document(rotation: Rotation) -> dict[str, Any]:
    return _document(company=rotation.company, reply=rotation.reply.value,
                     retired=list(rotation.retired),
                     issued={"address": rotation.issued.address,
                             "issued_at": iso_time(rotation.issued.issued_at)})


def trust_document(trusted: Trusted) -> dict[str, Any]:
    customer = trusted.esp_customer
    return _document(company=trusted.company, organisation=trusted.organisation,
                     esp_customer={"esp": customer[0], "customer_id": customer[1]}
                     if customer else None,
                     reclassified=trusted.reclassified)


def flag_document(company: str, organisation: str) -> dict[str, Any]:
    return _document(company=company, organisation=organisation)


def verify_document(result: Verification) -> dict[str, Any]:
    return _document(ok=result.ok, files=result.files, messages=result.messages,
                     signatures=result.signatures, problems=list(result.problems))


def analyse_document(analysed: int, pending: int, tallies: int | None = None) -> dict[str, Any]:
    if tallies is None:
        return _document(analysed=analysed, pending=pending)
    return _document(analysed=analysed, pending=pending, tallies=tallies)


def upgrade_document(before: str | None, after: str) -> dict[str, Any]:
    return _document(**{"from": before, "to": after})


def _job(job: JobListing) -> dict[str, Any]:
    return {"id": job.message_id, "received_at": iso_time(job.received_at),
            "company": job.company, "alias": job.alias, "relation": job.relation,
            "sender": job.sender, "subject": job.subject}


def held_document(listing: Sequence[tuple[JobListing, Sequence[str]]]) -> dict[str, Any]:
    return _document(held=[{**_job(job), "destinations": list(destinations)}
                           for job, destinations in listing])


def deliveries_document(listing: Sequence[JobListing]) -> dict[str, Any]:
    return _document(deliveries=[
        {**_job(job), "destination": job.destination, "state": job.state.value,
         "attempts": job.attempts, "last_error": job.last_error,
         "delivered_at": iso_time(job.delivered_at) if job.delivered_at else None}
        for job in listing
    ])


def deliver_document(done: Pass) -> dict[str, Any]:
    return _document(delivered=done.delivered, held=done.held, retrying=done.retrying,
                     failed=done.failed, errors=list(done.errors))


def discover_document(found: Sequence[Found], known: Mapping[str, int], problems: int
                      ) -> dict[str, Any]:
    """`canary discover --json`: the person's addresses a mailbox was sent to."""
    return _document(
        problems=problems,
        addresses=[
            {"address": f.address, "messages": f.messages,
             "first": iso_time(f.first) if f.first else None,
             "last": iso_time(f.last) if f.last else None,
             "senders": [{"organisation": s, "messages": n}
                         for s, n in f.senders.most_common(5)],
             "first_sender": f.first_sender, "adopted": f.address in known}
            for f in found
        ],
    )


def import_document(source: str, run: ImportRun, analysed: int) -> dict[str, Any]:
    """`canary import --json`: what one run read, stored, skipped and analysed."""
    counts = run.counts
    return _document(
        source=source, read=counts.read, stored=counts.stored, skipped=counts.skipped,
        duplicates=counts.duplicates, problems=counts.problems,
        problem_list=[{"position": p, "problem": why} for p, why in run.problems],
        analysed=analysed, stopped=run.stopped)
