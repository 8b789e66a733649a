"""Look-alike domains: names made to pass for the company's own.

A phisher who knows an address belongs to a company's customer writes from
a domain that reads like the company's: the same letters from another
script (Cyrillic `\u0430` for Latin `a`), a swapped or doubled letter, `rn` for
`m`, the company's name with `-security` or `support` added. Such mail
proves the address is out, but names no one the company gave it to: it is
impersonation, never a third party the company shared with.

The skeleton of a label follows Unicode's UTS #39 idea: every character is
replaced by the plain Latin letter or digit it can be mistaken for, using
the confusables data of `confusable_homoglyphs` (derived from Unicode's
confusables.txt), after accents are stripped. Pure: nothing here does I/O
beyond that library's data, read on first use.
"""

from __future__ import annotations

import enum
import functools
import re
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass

from canary.domains import organisational_domain

MIN_LABEL = 4
"""Shorter company labels (`hp`, `ibm`) look like too many honest names to judge by."""
TYPO_DISTANCE_FROM = 5
"""A label of at least this many letters can be a typo of the company's: a swapped letter,
or a doubled one added or dropped (`fabel`, `faable` for `fable`)."""
ANY_EDIT_FROM = 7
"""From this many letters any single edit counts; shorter names have too many honest
neighbours one letter away (`table` is not a typo of `fable`)."""
LONG_LABEL = 9
"""…and from this many, two edits."""

PHISHING_WORDS = frozenset({
    "account", "accounts", "alert", "alerts", "auth", "billing", "care", "check", "client",
    "confirm", "customer", "customers", "deals", "delivery", "help", "helpdesk", "id", "info",
    "login", "mail", "mailer", "member", "members", "notice", "notification", "notify",
    "official", "online", "order", "orders", "pay", "payment", "portal", "promo", "refund",
    "rewards", "secure", "security", "service", "services", "shop", "signin", "support",
    "team", "update", "verify", "verification", "web", "www",
})
"""Words a phisher adds to a brand's name; an honest business rarely is `brand-verify`."""

_ASCII_LOOKALIKE = str.maketrans({"0": "o", "1": "l"})
_PAIRS = (("rn", "m"), ("vv", "w"), ("cl", "d"))
_SEPARATORS = re.compile(r"[-0-9]+")


class LookAlikeKind(enum.StrEnum):
    HOMOGLYPH = "homoglyph"
    """Other characters that render like the company's name (Cyrillic letters, `rn` for `m`)."""
    TYPO = "typo"
    """One or two letters changed, added, dropped or swapped."""
    BRAND_ADDITION = "brand_addition"
    """The company's name with words a phisher adds (`megamart-security`)."""
    OTHER_SUFFIX = "other_suffix"
    """The very same name under another suffix: the company's own other domain, or not."""
    SUBDOMAIN = "subdomain"
    """The company's name as a subdomain of another domain (`megamart.verify-account.example`)."""


@dataclass(frozen=True, slots=True)
class LookAlike:
    kind: LookAlikeKind
    imitates: str
    """The company's domain (or name) it imitates."""

    def describe(self, domain: str) -> str:
        if self.kind is LookAlikeKind.OTHER_SUFFIX:
            return (f"{domain} has the name of the company's {self.imitates} under another "
                    "suffix: its own undeclared domain (trust it if so) or an impersonator")
        how = {LookAlikeKind.HOMOGLYPH: "is written to look like",
               LookAlikeKind.TYPO: "is a misspelling of",
               LookAlikeKind.BRAND_ADDITION: "dresses up the name of",
               LookAlikeKind.SUBDOMAIN: "puts in a subdomain the name of"}[self.kind]
        return f"{domain} {how} the company's {self.imitates}"


@functools.cache
def _confusable(char: str) -> str:
    """The plain Latin letter or digit `char` can be mistaken for, else `char` itself."""
    from confusable_homoglyphs import confusables

    found = confusables.is_confusable(char, greedy=True, preferred_aliases=[])
    for entry in found or ():
        for glyph in entry["homoglyphs"]:
            text = str(glyph["c"]).lower()
            if len(text) == 1 and text.isascii() and text.isalnum():
                return text
    return char


def _unicode_label(label: str) -> str:
    if label.startswith("xn--"):
        try:
            return label.encode("ascii").decode("idna")
        except UnicodeError:
            return label
    return label


def skeleton(label: str) -> str:
    """What a label looks like, in plain Latin letters and digits.

    `megamart` written with Cyrillic `\u0435` and `\u0430` gives `megamart`.
    """
    text = unicodedata.normalize("NFKD", _unicode_label(label).lower())
    text = "".join(c for c in text if not unicodedata.combining(c))
    text = "".join(c if c.isascii() else _confusable(c) for c in text)
    text = text.translate(_ASCII_LOOKALIKE)
    for pair, single in _PAIRS:
        text = text.replace(pair, single)
    return text


def distance(a: str, b: str, limit: int) -> int:
    """Optimal-string-alignment edit distance (a swap is one edit), or `limit + 1` beyond."""
    if abs(len(a) - len(b)) > limit:
        return limit + 1
    previous2: list[int] = []
    previous = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        current = [i] + [0] * len(b)
        for j, cb in enumerate(b, 1):
            cost = 0 if ca == cb else 1
            current[j] = min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + cost)
            if i > 1 and j > 1 and ca == b[j - 2] and a[i - 2] == cb:
                current[j] = min(current[j], previous2[j - 2] + 1)
        if min(current) > limit:
            return limit + 1
        previous2, previous = previous, current
    return previous[-1]


def _slip(a: str, b: str) -> bool:
    """One adjacent swap (`fabel`), or one doubled letter added or dropped (`faable`)."""
    if len(a) == len(b):
        diff = [i for i in range(len(a)) if a[i] != b[i]]
        return (len(diff) == 2 and diff[1] == diff[0] + 1
                and a[diff[0]] == b[diff[1]] and a[diff[1]] == b[diff[0]])
    short, long = sorted((a, b), key=len)
    if len(long) != len(short) + 1:
        return False
    for i in range(len(long)):
        if long[:i] + long[i + 1:] == short:
            return long[i] in long[max(i - 1, 0):i] + long[i + 1:i + 2]
    return False


def _typo(shape: str, brand: str) -> bool:
    if len(brand) < TYPO_DISTANCE_FROM:
        return False
    if len(brand) < ANY_EDIT_FROM:
        return _slip(shape, brand)
    limit = 2 if len(brand) >= LONG_LABEL else 1
    return distance(shape, brand, limit) <= limit


def _label(organisation: str) -> str:
    """The registrable label: `megamart` of `megamart.co.uk`."""
    return organisation.split(".", 1)[0]


def _suffix(organisation: str) -> str:
    return organisation.split(".", 1)[1] if "." in organisation else ""


def _brand_addition(label: str, brand: str) -> bool:
    """`megamart-security`, `securemegamart`, `megamart24`: the brand with phishing words."""
    plain = label.replace("-", "")
    if plain == brand or brand not in plain:
        return False
    if label.startswith(brand + "-") or label.endswith("-" + brand):
        return True
    rest = plain.replace(brand, " ", 1).split()
    return bool(rest) and all(word in PHISHING_WORDS or word.isdigit()
                              for part in rest for word in _SEPARATORS.split(part) if word)


def lookalike(organisation: str, own: Iterable[str], names: Iterable[str] = ()
              ) -> LookAlike | None:
    """Whether `organisation` imitates one of the company's own domains or names.

    `own` are the company's registrable domains; `names` its names as slugs
    (`megamart`, `fretwork-guitars`). The company's own domains are never
    look-alikes of themselves.
    """
    own_set = {o for o in own if o}
    if organisation in own_set or organisational_domain(organisation) != organisation:
        return None
    label = _label(organisation)
    shape = skeleton(label)
    for brand, what in _brands(own_set, names):
        if label == brand:
            if what in own_set and _suffix(organisation) != _suffix(what):
                return LookAlike(LookAlikeKind.OTHER_SUFFIX, what)
            continue
        if shape == skeleton(brand):
            return LookAlike(LookAlikeKind.HOMOGLYPH, what)
        if _brand_addition(label, brand) or _brand_addition(shape, skeleton(brand)):
            return LookAlike(LookAlikeKind.BRAND_ADDITION, what)
        if _typo(shape, skeleton(brand)):
            return LookAlike(LookAlikeKind.TYPO, what)
    return None


def _brands(own: set[str], names: Iterable[str]) -> list[tuple[str, str]]:
    brands = [(_label(o), o) for o in sorted(own)]
    plain = [("".join(c for c in n.lower() if c.isalnum()), n) for n in names]
    brands += [(brand, n) for brand, n in plain if len(brand) >= MIN_LABEL + 2]
    return [(brand, what) for brand, what in brands if len(brand) >= MIN_LABEL]


def lookalike_host(host: str, own: Iterable[str], names: Iterable[str] = ()
                   ) -> LookAlike | None:
    """Whether a From host imitates the company: its registrable domain (`lookalike`), or a
    subdomain label that is the company's name (`megamart.verify-account.example`)."""
    organisation = organisational_domain(host)
    own_set = {o for o in own if o}
    if organisation is None or organisation in own_set:
        return None
    names = tuple(names)
    if (found := lookalike(organisation, own_set, names)) is not None:
        return found
    below = host.removesuffix(organisation).rstrip(".")
    labels = [skeleton(part) for label in below.split(".") if label
              for part in (label, label.replace("-", ""))]
    for brand, what in _brands(own_set, names):
        if skeleton(brand) in labels:
            return LookAlike(LookAlikeKind.SUBDOMAIN, what)
    return None
