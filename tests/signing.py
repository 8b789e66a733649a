"""DKIM keys made in the test, their DNS records, and real signatures (dkimpy).

`rsa_key` makes an RSA key with `cryptography`, `ed25519_key` an Ed25519 key
with PyNaCl; `DkimKey.publish` serves its `v=DKIM1` record from the test's
`Zones`, and `DkimKey.sign` prepends the DKIM-Signature dkimpy computes.
Keys are cached per process: RSA-2048 generation is the slow part.
"""

from __future__ import annotations

import base64
import functools
from dataclasses import dataclass

import dkim
import nacl.signing
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from smtp_listener.testing.zone_server import Zones

SIGNED_HEADERS = (b"from", b"to", b"subject", b"date", b"message-id")


def crlf(raw: bytes) -> bytes:
    """SMTP line endings, as a sending server transmits (and signs) a message."""
    return raw.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")


@dataclass(frozen=True)
class DkimKey:
    domain: str
    selector: str
    algorithm: str
    """`rsa-sha256` or `ed25519-sha256`."""
    private: bytes
    """What dkimpy signs with: PEM for RSA, the base64 seed for Ed25519."""
    public: str
    """The base64 `p=` value."""

    @property
    def record_name(self) -> str:
        return f"{self.selector}._domainkey.{self.domain}"

    @property
    def record(self) -> str:
        kind = "ed25519" if self.algorithm.startswith("ed25519") else "rsa"
        return f"v=DKIM1; k={kind}; p={self.public}"

    def publish(self, zones: Zones, *, padding: int = 0) -> str:
        """Serve the key record; `padding` adds a notes tag (n=) to make the record bigger."""
        record = self.record if not padding else f"v=DKIM1; n={'x' * padding}; " + self.record[9:]
        zones.add_txt(self.record_name, record)
        return record

    def signature(self, raw: bytes, *, headers: tuple[bytes, ...] = SIGNED_HEADERS) -> bytes:
        """The DKIM-Signature header line (CRLF-terminated) for `raw`."""
        return dkim.sign(
            raw, self.selector.encode(), self.domain.encode(), self.private,
            canonicalize=(b"relaxed", b"relaxed"), include_headers=list(headers),
            signature_algorithm=self.algorithm.encode(),
        )

    def sign(self, raw: bytes, *, headers: tuple[bytes, ...] = SIGNED_HEADERS) -> bytes:
        """`raw` with CRLF line endings and this key's DKIM-Signature on top."""
        raw = crlf(raw)
        return self.signature(raw, headers=headers) + raw


@functools.cache
def _rsa_private(bits: int, label: str) -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=bits)


def rsa_key(domain: str, selector: str = "s1", bits: int = 2048) -> DkimKey:
    """An RSA key for `domain`; one key per (domain, selector) for the whole test run."""
    private = _rsa_private(bits, f"{selector}._domainkey.{domain}")
    pem = private.private_bytes(serialization.Encoding.PEM,
                                serialization.PrivateFormat.TraditionalOpenSSL,
                                serialization.NoEncryption())
    der = private.public_key().public_bytes(serialization.Encoding.DER,
                                            serialization.PublicFormat.SubjectPublicKeyInfo)
    return DkimKey(domain, selector, "rsa-sha256", pem, base64.b64encode(der).decode())


def ed25519_key(domain: str, selector: str = "ed1") -> DkimKey:
    seed = nacl.signing.SigningKey.generate()
    return DkimKey(domain, selector, "ed25519-sha256", base64.b64encode(bytes(seed)),
                   base64.b64encode(bytes(seed.verify_key)).decode())
