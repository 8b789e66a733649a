"""SPF, DKIM and DMARC checks, all through Canary's one resolver.

pyspf checks SPF on the stored peer IP, MAIL FROM and HELO; dkimpy verifies
every DKIM signature, not only the first; the DMARC record of the From
domain (or its organisational domain) is looked up and evaluated by
`canary.authentication`. Every DNS question goes through `Resolver`, and the
answers are recorded as evidence. A DNS timeout becomes `temperror`, never
a verdict.

pyspf's DNS hook is its module-level `DNSLookup`. Canary installs its own
the first time it checks SPF (never on import), and that hook asks the
resolver of the check under way (a context variable), so concurrent checks
with different resolvers do not mix.
"""

from __future__ import annotations

import contextvars
import functools
import ipaddress
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from typing import Any

import dkim
import dkim.util
import spf

from canary.authentication import (
    NO_ARC,
    ArcResult,
    ArcVouch,
    Authentication,
    DkimResult,
    DmarcPolicy,
    DmarcResult,
    DnsAnswer,
    Result,
    SpfResult,
    evaluate_dmarc,
    parse_dmarc_record,
    read_arc_results,
    read_upstream,
)
from canary.domains import organisational_domain
from canary.message import MessageFacts
from smtp_listener.resolver import DnsTemporaryFailure, Lookup, Recorder, Resolver

MAX_DKIM_SIGNATURES = 10
"""Signatures verified per message; honest mail carries one to three."""
SPF_LOOKUP_SECONDS = 20.0


@dataclass(frozen=True, slots=True)
class EnvelopeFacts:
    peer_ip: str
    mail_from: str
    helo: str | None


_current: contextvars.ContextVar[tuple[Resolver, Recorder]] = contextvars.ContextVar(
    "canary_spf_resolver"
)


def _spf_records(answer: DnsAnswer, qtype: str) -> Iterator[Any]:
    if qtype in ("TXT", "SPF"):
        yield from answer.txt_strings
    elif qtype == "MX":
        for record in answer.records:
            preference, _, exchange = record.partition(" ")
            yield int(preference), exchange.rstrip(".")
    elif qtype in ("PTR", "CNAME"):
        yield from (r.rstrip(".") for r in answer.records)
    else:
        yield from answer.records


def _spf_lookup(name: str, qtype: str, *_args: object, **_kwargs: object) -> list[Any]:
    """pyspf's DNS hook, answered by the resolver of the check under way."""
    resolver, recorder = _current.get()
    try:
        answer = resolver.lookup(name, qtype, recorder)
    except DnsTemporaryFailure as error:
        raise spf.TempError(f"DNS {error}") from error
    return [((name, qtype), value) for value in _spf_records(answer, qtype)]


@functools.cache
def _install_spf_hook() -> None:
    """Route pyspf's lookups through Canary's resolver; done once, on first use."""
    spf.DNSLookup = _spf_lookup


@contextmanager
def _resolving(resolver: Resolver, recorder: Recorder) -> Iterator[None]:
    _install_spf_hook()
    token = _current.set((resolver, recorder))
    try:
        yield
    finally:
        _current.reset(token)


def check_spf(resolver: Resolver, recorder: Recorder, envelope: EnvelopeFacts) -> SpfResult:
    helo = (envelope.helo or "").strip()
    mail_from = envelope.mail_from.strip().strip("<>")  # "<>" is the null sender of bounces
    sender = mail_from or (f"postmaster@{helo}" if helo else "")
    domain = sender.rpartition("@")[2].lower() or None
    try:
        ipaddress.ip_address(envelope.peer_ip)
    except ValueError:
        return SpfResult(Result.NONE, domain, "no client IP address")
    if not sender:
        return SpfResult(Result.NONE, None, "no MAIL FROM or HELO domain")
    with _resolving(resolver, recorder):
        try:
            result, _code, explanation = spf.query(
                i=envelope.peer_ip, s=sender, h=helo or domain or "unknown",
                querytime=SPF_LOOKUP_SECONDS,
            ).check()
        except (spf.TempError, DnsTemporaryFailure) as error:
            return SpfResult(Result.TEMPERROR, domain, str(error))
    return SpfResult(Result.read(result), domain, str(explanation))


def _signature_tags(value: bytes) -> dict[bytes, bytes]:
    try:
        tags: dict[bytes, bytes] = dkim.util.parse_tag_value(value)
        return tags
    except (dkim.util.InvalidTagValueList, ValueError, IndexError):
        return {}


def _key_lookup(resolver: Lookup, recorder: Recorder, temporary: list[str]
                ) -> Callable[..., bytes | None]:
    """dkimpy's DNS hook for DKIM and ARC keys, through Canary's resolver.

    A temporary failure is noted in `temporary` and raised as dkimpy's timeout,
    so the signature is never judged on a DNS hiccup.
    """

    def lookup(name: bytes | str, timeout: float = 5) -> bytes | None:
        text = name.decode("ascii", "replace") if isinstance(name, bytes) else name
        try:
            answer = resolver.lookup(text.rstrip("."), "TXT", recorder)
        except DnsTemporaryFailure as error:
            temporary.append(str(error))
            raise dkim.DnsTimeoutError(str(error)) from error
        return b"".join(answer.txt_strings[0]) if answer.txt_strings else None

    return lookup


def check_arc(resolver: Lookup, recorder: Recorder, raw: bytes, facts: MessageFacts
              ) -> ArcResult:
    """Validate the message's ARC chain (RFC 8617), and read what each seal recorded."""
    names = {name.strip().lower() for name, _ in facts.headers}
    if "arc-seal" not in names:
        return NO_ARC
    temporary: list[str] = []
    try:
        chain, instances, reason = dkim.arc_verify(
            raw, dnsfunc=_key_lookup(resolver, recorder, temporary), minkey=1024,
            timeout=max(1, int(resolver.lifetime)))
    except (dkim.DKIMException, ValueError, IndexError, TypeError) as error:
        return ArcResult(Result.PERMERROR, (), f"unreadable ARC set: {error}"[:200])
    if temporary:
        return ArcResult(Result.TEMPERROR, (), temporary[0])
    recorded = read_arc_results(
        f"i={i};" + value.decode("utf-8", "replace").split(";", 1)[1]
        for i, value in ((d.get("instance", 0), d.get("aar-value", b"")) for d in instances)
        if b";" in value)
    vouches = tuple(sorted(
        (ArcVouch(int(d["instance"]), d.get("as-domain", b"").decode("ascii", "replace").lower(),
                  recorded[int(d["instance"])])
         for d in instances if int(d.get("instance", 0)) in recorded),
        key=lambda v: v.instance))
    outcome = {b"pass": Result.PASS, b"none": Result.NONE}.get(chain or b"", Result.FAIL)
    return ArcResult(outcome, vouches, str(reason)[:200])


def check_dkim(resolver: Lookup, recorder: Recorder, raw: bytes) -> tuple[DkimResult, ...]:
    """Verify the message's DKIM signatures: the first `MAX_DKIM_SIGNATURES`, each once.

    A message with hundreds of signatures is no honest message; the ones past
    the cap are recorded as not checked (`none`), so they neither pass nor
    fail, and the message costs bounded time.
    """
    try:
        verifier = dkim.DKIM(raw, minkey=1024, timeout=max(1, int(resolver.lifetime)))
    except (dkim.DKIMException, ValueError, IndexError) as error:
        return (DkimResult(Result.PERMERROR, "", reason=f"unreadable message: {error}"),)
    signatures = [v for k, v in verifier.headers if k.lower() == b"dkim-signature"]
    results = []
    for index, value in enumerate(signatures):
        tags = _signature_tags(value)
        domain = tags.get(b"d", b"").decode("ascii", "replace").strip().lower()
        selector = tags.get(b"s", b"").decode("ascii", "replace").strip()
        algorithm = tags.get(b"a", b"").decode("ascii", "replace").strip()
        if index >= MAX_DKIM_SIGNATURES:
            results.append(DkimResult(Result.NONE, domain, selector, algorithm,
                                      f"not checked: only the first {MAX_DKIM_SIGNATURES} "
                                      "signatures are"))
            continue
        temporary: list[str] = []
        lookup = _key_lookup(resolver, recorder, temporary)

        try:
            passed = verifier.verify(idx=index, dnsfunc=lookup)
        except dkim.ValidationError as error:  # e.g. body hash mismatch: the signature fails
            results.append(DkimResult(Result.FAIL, domain, selector, algorithm, str(error)[:200]))
            continue
        except (dkim.DKIMException, ValueError, IndexError, TypeError) as error:
            # A malformed signature or key (dkimpy raises ValueError for some bad tags):
            # that signature is a permerror; the message's other signatures still count.
            results.append(
                DkimResult(Result.PERMERROR, domain, selector, algorithm, str(error)[:200])
            )
            continue
        if temporary:
            results.append(DkimResult(Result.TEMPERROR, domain, selector, algorithm, temporary[0]))
        elif passed:
            results.append(DkimResult(Result.PASS, domain, selector, algorithm))
        else:
            results.append(DkimResult(Result.FAIL, domain, selector, algorithm,
                                      "signature or key did not verify"))
    return tuple(results)


def lookup_dmarc(resolver: Resolver, recorder: Recorder, from_domain: str) -> DmarcPolicy | None:
    """The DMARC record for the From domain, falling back to its organisational domain."""
    candidates = [from_domain]
    org = organisational_domain(from_domain)
    if org and org != from_domain:
        candidates.append(org)
    for domain in candidates:
        answer = resolver.lookup(f"_dmarc.{domain}", "TXT", recorder)
        policies = [p for text in answer.records if (p := parse_dmarc_record(domain, text))]
        if len(policies) == 1:
            return policies[0]
    return None


def check_dmarc(
    resolver: Resolver, recorder: Recorder, from_domain: str | None, spf_result: SpfResult,
    dkim_results: Iterable[DkimResult],
) -> DmarcResult:
    if from_domain is None:
        return DmarcResult(Result.NONE, None, None, None, None)
    try:
        policy = lookup_dmarc(resolver, recorder, from_domain)
    except DnsTemporaryFailure:
        return DmarcResult(Result.TEMPERROR, None, None, None, None)
    return evaluate_dmarc(from_domain, policy, spf_result, dkim_results)


def authenticate(
    raw: bytes,
    facts: MessageFacts,
    envelope: EnvelopeFacts,
    resolver: Resolver,
    trusted_upstream: Iterable[str] = (),
    *,
    claimed: Iterable[str] = (),
    budget: float | None = None,
    stopping: Callable[[], bool] = lambda: False,
    historic: bool = False,
) -> tuple[Authentication, list[DnsAnswer]]:
    """All checks for one message, and the DNS answers they used.

    `claimed` are the organisations of the company whose alias received the
    message: when From claims one of them and its domain publishes no DMARC,
    the From domain's own SPF is checked too. After `budget` seconds (or once
    `stopping` says so) DNS questions not answered from the cache fail as
    temporary: the message is tried again later, and other mail goes on.

    `historic` mail (imported, received long ago) is judged by what still holds:
    signatures that verify against today's DNS, and the results a trusted
    provider recorded at receipt. SPF is not checked (the sending host's
    authorisation then is unknowable now), a signature whose key is no longer
    published is `none` ("DKIM key no longer published"), and a DMARC failure
    Canary computes today is no proof of forgery (`none`), unless the provider
    recorded it.
    """
    recorder = Recorder(deadline=time.monotonic() + budget if budget is not None else None,
                        stopping=stopping)
    upstream = read_upstream(facts.authentication_results, trusted_upstream)
    vouched_by = None
    if upstream is not None and upstream.spf is not None:
        spf_result = upstream.spf
        vouched_by = upstream.authserv_id
    elif historic:
        spf_result = SpfResult(Result.NONE, None, "imported mail: SPF is not checked after "
                                                  "the fact")
    else:
        spf_result = check_spf(resolver, recorder, envelope)
    dkim_results = check_dkim(resolver, recorder, raw)
    if historic:
        dkim_results = tuple(_unpublished(d, recorder) for d in dkim_results)
    if upstream is not None and upstream.dkim:
        ours = {d.domain for d in dkim_results if d.result is Result.PASS}
        dkim_results += tuple(d for d in upstream.dkim if d.domain not in ours)
        vouched_by = upstream.authserv_id
    dmarc = check_dmarc(resolver, recorder, facts.from_domain, spf_result, dkim_results)
    if historic and dmarc.result is Result.FAIL and not (
            upstream is not None and upstream.dmarc is Result.FAIL):
        dmarc = replace(dmarc, result=Result.NONE)
    from_spf = None
    if (facts.from_domain and dmarc.policy is None and dmarc.result is not Result.TEMPERROR
            and not historic and organisational_domain(facts.from_domain) in set(claimed)):
        from_spf = check_spf(resolver, recorder, EnvelopeFacts(
            envelope.peer_ip, f"postmaster@{facts.from_domain}", envelope.helo))
    arc = check_arc(resolver, recorder, raw, facts)
    return Authentication(spf_result, dkim_results, dmarc, vouched_by, from_spf, arc,
                          historic), recorder.answers


def _unpublished(result: DkimResult, recorder: Recorder) -> DkimResult:
    """A signature of old mail that fails only because its key is gone (or revoked with an
    empty `p=`): not checked (`none`), not forged."""
    if result.result not in (Result.FAIL, Result.PERMERROR) or not result.selector:
        return result
    name = f"{result.selector}._domainkey.{result.domain}".lower()
    answer = next((a for a in recorder.answers
                   if a.name.lower().rstrip(".") == name and a.rdtype == "TXT"), None)
    if answer is None or _has_key(answer.records):
        return result
    return DkimResult(Result.NONE, result.domain, result.selector, result.algorithm,
                      "DKIM key no longer published")


def _has_key(records: Iterable[str]) -> bool:
    for record in records:
        tags = dict(part.split("=", 1) for part in record.split(";") if "=" in part)
        if {k.strip(): v.strip() for k, v in tags.items()}.get("p"):
            return True
    return False
