"""Authentication results and the DMARC rules that combine them.

The DNS-facing checks (SPF with pyspf, DKIM with dkimpy, the DMARC record
lookup) live in `smtp_listener.authenticate` and hand their results here as
plain values. This module decides alignment and the DMARC outcome, and
reads `Authentication-Results` headers from the user's own upstream MTA —
only from the authserv-ids the user trusts, and only the topmost ones, since
anyone can write such a header further down.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import authres

from canary.domains import normalise_domain, organisational_domain
from canary.errors import InvalidDomain


class Result(enum.StrEnum):
    PASS = "pass"
    FAIL = "fail"
    SOFTFAIL = "softfail"
    NEUTRAL = "neutral"
    NONE = "none"
    TEMPERROR = "temperror"
    PERMERROR = "permerror"
    POLICY = "policy"

    @classmethod
    def read(cls, text: str | None) -> Result:
        """A result word as written by pyspf, dkimpy or an MTA; unknown words are `none`."""
        word = (text or "").strip().lower()
        if word in ("hardfail",):
            return cls.FAIL
        if word in ("error",):
            return cls.TEMPERROR
        try:
            return cls(word)
        except ValueError:
            return cls.NONE


class Disposition(enum.StrEnum):
    """A DMARC policy: what the domain asks receivers to do with mail that fails."""

    NONE = "none"
    QUARANTINE = "quarantine"
    REJECT = "reject"

    @property
    def enforced(self) -> bool:
        """The domain has locked its name down: a failure is a forgery, not a misconfiguration."""
        return self is not Disposition.NONE


class Alignment(enum.StrEnum):
    """DMARC identifier alignment (`adkim=`, `aspf=`)."""

    RELAXED = "r"
    """The same organisational domain."""
    STRICT = "s"
    """The very same name."""


class AuthMethod(enum.StrEnum):
    """How a sender proved a domain: a DKIM signature, an SPF pass, an ARC seal of a
    trusted forwarder that recorded its authentication, or not at all."""

    DKIM = "dkim"
    SPF = "spf"
    ARC = "arc"
    NONE = "none"


@dataclass(frozen=True, slots=True)
class AuthenticatedBy:
    """How a sender organisation was authenticated: the method and the domain it proved.

    `str()` is for display only (`DKIM d=acme.example`, `SPF acme.example`,
    `none`); nothing parses it back. Stored and exported as its fields.
    """

    method: AuthMethod
    domain: str | None = None

    def __str__(self) -> str:
        if self.method is AuthMethod.DKIM:
            return f"DKIM d={self.domain}"
        if self.method is AuthMethod.SPF:
            return f"SPF {self.domain}"
        if self.method is AuthMethod.ARC:
            return f"ARC sealed by {self.domain}"
        return "none"

    @property
    def authenticated(self) -> bool:
        return self.method is not AuthMethod.NONE

    def to_dict(self) -> dict[str, str | None]:
        return {"method": self.method.value, "domain": self.domain}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> AuthenticatedBy:
        return cls(AuthMethod(data["method"]), data.get("domain"))


NOT_AUTHENTICATED = AuthenticatedBy(AuthMethod.NONE)


def authenticated_by(method: str | None, domain: str | None) -> AuthenticatedBy | None:
    """The typed form of a stored method and domain (None when none was stored)."""
    return None if method is None else AuthenticatedBy(AuthMethod(method), domain)


@dataclass(frozen=True, slots=True)
class DnsAnswer:
    name: str
    rdtype: str
    records: tuple[str, ...]
    """Records in presentation form; TXT records as their joined text."""
    txt_strings: tuple[tuple[bytes, ...], ...] = ()
    """For TXT: each record's character-strings, exactly as served."""
    exists: bool = True
    """False for NXDOMAIN."""

    def to_dict(self) -> dict[str, object]:
        """The recorded form kept with each message and written into evidence bundles."""
        return {"name": self.name, "type": self.rdtype, "records": list(self.records),
                "exists": self.exists}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> DnsAnswer:
        """Read the recorded form back; a TXT record comes back as one character-string."""
        rdtype = str(data.get("type", ""))
        records = tuple(str(r) for r in data.get("records", []))
        return cls(
            str(data.get("name", "")), rdtype, records,
            txt_strings=tuple((r.encode(),) for r in records) if rdtype == "TXT" else (),
            exists=bool(data.get("exists", True)),
        )


@dataclass(frozen=True, slots=True)
class SpfResult:
    result: Result
    domain: str | None
    """The domain checked: MAIL FROM's, or HELO's for a null sender."""
    explanation: str = ""


@dataclass(frozen=True, slots=True)
class DkimResult:
    result: Result
    domain: str
    selector: str = ""
    algorithm: str = ""
    reason: str = ""


@dataclass(frozen=True, slots=True)
class DmarcPolicy:
    domain: str
    """Where the record was found: the From domain or its organisational domain."""
    policy: Disposition
    subdomain_policy: Disposition | None = None
    adkim: Alignment = Alignment.RELAXED
    aspf: Alignment = Alignment.RELAXED
    pct: int = 100
    """The share of failing mail the domain asks receivers to treat by its policy."""


@dataclass(frozen=True, slots=True)
class DmarcResult:
    result: Result
    policy: Disposition | None
    record_domain: str | None
    dkim_aligned: str | None
    """The DKIM domain that passed in alignment, if any."""
    spf_aligned: str | None
    """The SPF domain that passed in alignment, if any."""
    pct: int = 100

    @property
    def enforced(self) -> bool:
        """The domain asks for every failing message to be quarantined or rejected: a
        failure is a forgery. With `pct` under 100 it is still partly monitoring."""
        return self.policy is not None and self.policy.enforced and self.pct >= 100


@dataclass(frozen=True, slots=True)
class Authentication:
    spf: SpfResult
    dkim: tuple[DkimResult, ...]
    dmarc: DmarcResult
    upstream: str | None = None
    """The authserv-id of the trusted MTA whose results were used; None: Canary's own checks."""
    from_spf: SpfResult | None = None
    """SPF of the From domain itself, checked when it claims the company and publishes no
    DMARC: without DMARC its SPF record still says which hosts may send for it."""
    arc: ArcResult = field(default_factory=lambda: ArcResult(Result.NONE))
    historic: bool = False
    """Imported mail, checked long after it was received: only what still verifies (or the
    provider attested at receipt) counts; a failure proves nothing (keys rotate, SPF records
    change)."""

    @property
    def temporary(self) -> bool:
        """A DNS failure left the outcome open: analyse again later."""
        return (
            self.spf.result is Result.TEMPERROR
            or self.dmarc.result is Result.TEMPERROR
            or any(d.result is Result.TEMPERROR for d in self.dkim)
            or (self.from_spf is not None and self.from_spf.result is Result.TEMPERROR)
            or self.arc.chain is Result.TEMPERROR
        )

    @property
    def dkim_pass_domains(self) -> tuple[str, ...]:
        return tuple(d.domain for d in self.dkim if d.result is Result.PASS)


_DMARC_TAG = re.compile(r"\s*([a-z]+)\s*=\s*([^;]*)")


def parse_dmarc_record(domain: str, text: str) -> DmarcPolicy | None:
    """Read a DMARC TXT record; None if it is not a valid `v=DMARC1` record."""
    tags: dict[str, str] = {}
    for part in text.split(";"):
        match = _DMARC_TAG.match(part)
        if match:
            tags.setdefault(match.group(1).lower(), match.group(2).strip().lower())
    if tags.get("v", "").upper() != "DMARC1":
        return None
    policy = _disposition(tags.get("p"))
    if policy is None:
        # RFC 7489 6.6.3: a record with an invalid p= but a valid rua= counts as p=none.
        if "rua" not in tags:
            return None
        policy = Disposition.NONE
    pct = tags.get("pct", "100")
    return DmarcPolicy(
        domain=domain,
        policy=policy,
        subdomain_policy=_disposition(tags.get("sp")),
        adkim=Alignment.STRICT if tags.get("adkim") == "s" else Alignment.RELAXED,
        aspf=Alignment.STRICT if tags.get("aspf") == "s" else Alignment.RELAXED,
        pct=min(int(pct), 100) if pct.isdigit() else 100,
    )


def _disposition(text: str | None) -> Disposition | None:
    try:
        return Disposition(text or "")
    except ValueError:
        return None


def aligned(domain: str | None, from_domain: str, mode: Alignment) -> bool:
    """DMARC identifier alignment: strict is the same name, relaxed the same organisation."""
    if not domain:
        return False
    try:
        name = normalise_domain(domain)
    except InvalidDomain:
        return False
    if mode is Alignment.STRICT:
        return name == from_domain
    org = organisational_domain(name)
    return org is not None and org == organisational_domain(from_domain)


def evaluate_dmarc(
    from_domain: str | None,
    policy: DmarcPolicy | None,
    spf: SpfResult,
    dkim: Iterable[DkimResult],
) -> DmarcResult:
    """The DMARC result for the From domain, given its record and the checks' results."""
    if from_domain is None:
        return DmarcResult(Result.NONE, None, None, None, None)
    adkim = policy.adkim if policy else Alignment.RELAXED
    aspf = policy.aspf if policy else Alignment.RELAXED
    dkim_aligned = next(
        (
            d.domain
            for d in dkim
            if d.result is Result.PASS and aligned(d.domain, from_domain, adkim)
        ),
        None,
    )
    spf_aligned = (
        spf.domain
        if spf.result is Result.PASS and aligned(spf.domain, from_domain, aspf)
        else None
    )
    if policy is None:
        return DmarcResult(Result.NONE, None, None, dkim_aligned, spf_aligned)
    applied = policy.policy
    if policy.domain != from_domain and policy.subdomain_policy:
        applied = policy.subdomain_policy
    outcome = Result.PASS if (dkim_aligned or spf_aligned) else Result.FAIL
    return DmarcResult(outcome, applied, policy.domain, dkim_aligned, spf_aligned, policy.pct)


@dataclass(frozen=True, slots=True)
class UpstreamResults:
    """What one Authentication-Results (or ARC-Authentication-Results) header says."""

    authserv_id: str
    spf: SpfResult | None
    dkim: tuple[DkimResult, ...]
    dmarc: Result | None
    dmarc_from: str | None = None
    """The From domain the DMARC result was for (`header.from`), when it says."""

    @property
    def dkim_pass_domains(self) -> tuple[str, ...]:
        return tuple(d.domain for d in self.dkim if d.result is Result.PASS)


def _parse_results(value: str) -> UpstreamResults | None:
    """One header's results; None when it cannot be read."""
    try:
        header = authres.AuthenticationResultsHeader.parse_value(value)
    except (authres.AuthResError, ValueError, IndexError, AttributeError):
        return None
    spf: SpfResult | None = None
    dkim: list[DkimResult] = []
    dmarc: Result | None = None
    dmarc_from: str | None = None
    for result in header.results:
        props = {f"{p.type}.{p.name}".lower(): str(p.value) for p in result.properties}
        method = str(result.method).lower()
        if method == "spf" and spf is None:
            domain = props.get("smtp.mailfrom", "").rpartition("@")[2] or props.get("smtp.helo")
            spf = SpfResult(Result.read(result.result), (domain or "").lower() or None,
                            "upstream")
        elif method == "dkim":
            domain = props.get("header.d") or props.get("header.i", "").rpartition("@")[2]
            if domain:
                dkim.append(DkimResult(Result.read(result.result), domain.lower(),
                                       props.get("header.s", ""), props.get("header.a", ""),
                                       "upstream"))
        elif method == "dmarc" and dmarc is None:
            dmarc = Result.read(result.result)
            dmarc_from = props.get("header.from", "").lower() or None
    return UpstreamResults(str(header.authserv_id or "").lower(), spf, tuple(dkim), dmarc,
                           dmarc_from)


def read_upstream(headers: Sequence[str], trusted_ids: Iterable[str]) -> UpstreamResults | None:
    """Results from the topmost `Authentication-Results` headers of trusted authserv-ids.

    `headers` are the message's Authentication-Results values, top first.
    Reading stops at the first header that is not from a trusted id: what
    lies below it was written before the message reached the user's MTA.
    """
    trusted = {t.lower() for t in trusted_ids}
    if not trusted:
        return None
    found: UpstreamResults | None = None
    for value in headers:
        parsed = _parse_results(value)
        if parsed is None or parsed.authserv_id not in trusted:
            break
        found = UpstreamResults(
            parsed.authserv_id,
            found.spf if found and found.spf else parsed.spf,
            (found.dkim if found else ()) + parsed.dkim,
            found.dmarc if found and found.dmarc else parsed.dmarc,
        )
    return found


_ARC_INSTANCE = re.compile(r"^\s*i\s*=\s*(\d{1,2})\s*;(.*)$", re.DOTALL)


def read_arc_results(values: Iterable[str]) -> dict[int, UpstreamResults]:
    """The ARC-Authentication-Results of each ARC instance (`i=1; authserv-id; …`)."""
    found: dict[int, UpstreamResults] = {}
    for value in values:
        match = _ARC_INSTANCE.match(value)
        if match is None:
            continue
        parsed = _parse_results(match.group(2))
        if parsed is not None:
            found.setdefault(int(match.group(1)), parsed)
    return found


@dataclass(frozen=True, slots=True)
class ArcVouch:
    """One ARC instance: who sealed it, and the results it recorded on arrival."""

    instance: int
    sealer: str
    """The ARC-Seal's d= domain."""
    results: UpstreamResults


@dataclass(frozen=True, slots=True)
class ArcResult:
    """The message's ARC chain (RFC 8617), as validated with dkimpy."""

    chain: Result
    """PASS (every seal verifies), FAIL, NONE (no chain), or TEMPERROR."""
    vouches: tuple[ArcVouch, ...] = ()
    """Instance 1 first."""
    reason: str = ""

    def vouched(self, trusted: Callable[[str], bool]) -> ArcVouch | None:
        """The earliest instance sealed by a sealer `trusted` accepts, if the chain passes.

        Only a trusted sealer's word about the message as it arrived is believed:
        anyone can seal a chain.
        """
        if self.chain is not Result.PASS:
            return None
        return next((v for v in self.vouches if trusted(v.sealer)), None)


NO_ARC = ArcResult(Result.NONE)


def _spf_dict(spf: SpfResult) -> dict[str, object]:
    return {"result": spf.result.value, "domain": spf.domain, "explanation": spf.explanation}


def _spf_from(data: dict[str, Any]) -> SpfResult:
    return SpfResult(Result.read(data["result"]), data.get("domain"), data.get("explanation", ""))


def _dkim_dicts(results: Iterable[DkimResult]) -> list[dict[str, object]]:
    return [{"result": d.result.value, "domain": d.domain, "selector": d.selector,
             "algorithm": d.algorithm, "reason": d.reason} for d in results]


def _dkim_from(data: Iterable[dict[str, Any]]) -> tuple[DkimResult, ...]:
    return tuple(DkimResult(Result.read(d["result"]), d["domain"], d.get("selector", ""),
                            d.get("algorithm", ""), d.get("reason", "")) for d in data)


def _arc_dict(arc: ArcResult) -> dict[str, object]:
    return {
        "chain": arc.chain.value, "reason": arc.reason,
        "vouches": [{
            "instance": v.instance, "sealer": v.sealer, "authserv_id": v.results.authserv_id,
            "spf": _spf_dict(v.results.spf) if v.results.spf else None,
            "dkim": _dkim_dicts(v.results.dkim),
            "dmarc": v.results.dmarc.value if v.results.dmarc else None,
            "dmarc_from": v.results.dmarc_from,
        } for v in arc.vouches],
    }


def _arc_from(data: dict[str, Any] | None) -> ArcResult:
    if not data:
        return NO_ARC
    return ArcResult(
        Result.read(data.get("chain")),
        tuple(ArcVouch(int(v["instance"]), str(v["sealer"]), UpstreamResults(
            str(v.get("authserv_id", "")), _spf_from(v["spf"]) if v.get("spf") else None,
            _dkim_from(v.get("dkim", [])),
            Result.read(v["dmarc"]) if v.get("dmarc") else None, v.get("dmarc_from"),
        )) for v in data.get("vouches", [])),
        str(data.get("reason", "")),
    )


def authentication_to_dict(auth: Authentication) -> dict[str, object]:
    """A JSON-ready form, stored with the message so it can be reclassified offline."""
    return {
        "upstream": auth.upstream,
        "spf": _spf_dict(auth.spf),
        "from_spf": _spf_dict(auth.from_spf) if auth.from_spf else None,
        "arc": _arc_dict(auth.arc),
        "dkim": _dkim_dicts(auth.dkim),
        "dmarc": {"result": auth.dmarc.result.value,
                  "policy": auth.dmarc.policy.value if auth.dmarc.policy else None,
                  "record_domain": auth.dmarc.record_domain,
                  "dkim_aligned": auth.dmarc.dkim_aligned,
                  "spf_aligned": auth.dmarc.spf_aligned, "pct": auth.dmarc.pct},
        "historic": auth.historic,
    }


def authentication_from_dict(data: dict[str, Any]) -> Authentication:
    spf = data["spf"]
    dmarc = data["dmarc"]
    return Authentication(
        spf=_spf_from(spf),
        dkim=_dkim_from(data["dkim"]),
        dmarc=DmarcResult(Result.read(dmarc["result"]), _disposition(dmarc.get("policy")),
                          dmarc.get("record_domain"), dmarc.get("dkim_aligned"),
                          dmarc.get("spf_aligned"), int(dmarc.get("pct", 100))),
        upstream=data.get("upstream"),
        from_spf=_spf_from(data["from_spf"]) if data.get("from_spf") else None,
        arc=_arc_from(data.get("arc")),
        historic=bool(data.get("historic", False)),
    )
