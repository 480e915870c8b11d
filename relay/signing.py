"""DKIM (RFC 6376): signing everything that leaves (dkimpy reads and canonicalises, OpenSSL signs), and
checking what arrives (dkimpy, in a worker, with keys the relay fetched).

dkimpy's own RSA is pure Python, about 8.5 ms per message here; the same
signature through `cryptography` takes under half a millisecond. So dkimpy
parses the message and canonicalises its body and header fields (relaxed/
relaxed) exactly as its verifier will, and builds the DKIM-Signature field the
way its own `sign` does; only the RSA step is OpenSSL's. `bench/signing.py`
shows both.

From is signed once more than it occurs, so a From added on the way breaks
the signature instead of being shown (RFC 6376 8.15).
"""
from __future__ import annotations

import base64
import hashlib
import logging
import re
import time
from dataclasses import dataclass
from pathlib import Path

import dkim
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa, utils
from dkim.canonicalization import correct_empty_body, strip_trailing_lines

SIGNED = (b"from", b"to", b"cc", b"subject", b"date", b"message-id", b"mime-version", b"content-type",
          b"content-transfer-encoding", b"in-reply-to", b"references", b"auto-submitted", b"content-language")
_RELAXED = dkim.CanonicalizationPolicy.from_c_value(b"relaxed/relaxed")
_WHITE_RUN = re.compile(rb"[\t ]{2,}|\t")
_NAME = b"DKIM-Signature"


class SigningKeyError(Exception):
    """A signing key that cannot be used, worded for the operator."""


@dataclass(frozen=True)
class Signer:
    domain: str
    selector: str
    key_pem: bytes

    def __post_init__(self) -> None:
        object.__setattr__(self, "_key", load_key(self.key_pem))

    def sign(self, message: bytes) -> bytes:
        """The message with a DKIM-Signature field for the domain on top."""
        end = message.find(b"\r\n\r\n")
        head, body = (message, b"") if end < 0 else (message[:end + 4], memoryview(message)[end + 4:])
        parsed = dkim.DKIM(head, linesep=b"\r\n")  # dkimpy reads the header fields; the body is hashed here
        names = [name.lower() for name, _ in parsed.headers]
        include = [name for name in SIGNED for _ in range(names.count(name))] + [b"from"]
        body_hash = base64.b64encode(hashlib.sha256(relaxed_body(bytes(body))).digest())
        fields = [
            (b"v", b"1"), (b"a", b"rsa-sha256"), (b"c", b"relaxed/relaxed"), (b"d", self.domain.encode()),
            (b"s", self.selector.encode()), (b"t", str(int(time.time())).encode()),
            (b"h", b" : ".join(include)), (b"bh", body_hash),
            (b"b", b"0" * 60),  # as dkimpy does: b= folds onto a line of its own, so filling it in moves nothing
        ]
        unsigned = dkim.RE_BTAG.sub(b"\\1", dkim.fold(b"; ".join(b"=".join(f) for f in fields), namelen=len(_NAME)))
        digest = hashlib.sha256()
        dkim.hash_headers(digest, _RELAXED, _RELAXED.canonicalize_headers(parsed.headers), include,
                          (_NAME, b" " + unsigned), dict(fields))
        signature = self._key.sign(digest.digest(), padding.PKCS1v15(), utils.Prehashed(hashes.SHA256()))
        fields[-1] = (b"b", base64.b64encode(signature))
        value = dkim.fold(b"; ".join(b"=".join(f) for f in fields) + b"\r\n", namelen=len(_NAME))
        return _NAME + b": " + value + message


def relaxed_body(body: bytes) -> bytes:
    """RFC 6376 3.4.4, the same octets as dkimpy's Relaxed.canonicalize_body, at C speed.

    dkimpy replaces every run of white space, each single space included, and
    costs 4.5 ms on 100 KB; only runs of two or more, and tabs, change. After
    that, white space before a line end is one space.
    """
    compressed = _WHITE_RUN.sub(b" ", body) if b"\t" in body or b"  " in body else body
    return correct_empty_body(strip_trailing_lines(compressed.replace(b" \r\n", b"\r\n")))


def load_key(pem: bytes) -> rsa.RSAPrivateKey:
    try:
        key = serialization.load_pem_private_key(pem, password=None)
    except (ValueError, TypeError) as exc:
        raise SigningKeyError(f"not a PEM private key without a passphrase ({exc})") from None
    if not isinstance(key, rsa.RSAPrivateKey) or key.key_size < 1024:
        raise SigningKeyError("DKIM needs an RSA key of at least 1024 bits (2048 recommended)")
    return key


def read_signer(domain: str, selector: str, path: Path) -> Signer:
    try:
        pem = path.read_bytes()
    except OSError as exc:
        raise SigningKeyError(f"cannot read the DKIM key {path}: {exc.strerror}") from None
    try:
        return Signer(domain, selector, pem)
    except SigningKeyError as exc:
        raise SigningKeyError(f"DKIM key {path}: {exc}") from None


def new_key() -> tuple[bytes, str]:
    """A 2048-bit RSA key as PEM, and the p= value of its DNS record."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption())
    public = key.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return pem, base64.b64encode(public).decode("ascii")


def txt_record(domain: str, selector: str, public: str) -> str:
    """The record to publish, its value in strings of at most 255 characters (RFC 1035 3.3.14)."""
    value = f"v=DKIM1; k=rsa; p={public}"
    strings = " ".join(f'"{value[i:i + 250]}"' for i in range(0, len(value), 250))
    return f"{selector}._domainkey.{domain}. IN TXT ( {strings} )"


_QUIET = logging.getLogger("relay.signing.dkimpy")
_QUIET.setLevel(logging.CRITICAL)  # dkimpy logs every bad signature as an error; the verdict says it


def verify_signatures(message: bytes, keys: dict[str, str], most: int = 5) -> list[tuple[bool, str]]:
    """(verified, d= domain) for each of the first `most` DKIM-Signature fields, with the key records
    fetched beforehand (keys: "selector._domainkey.domain" -> TXT). CPU work: run in a worker."""
    checker = dkim.DKIM(message, logger=_QUIET)
    found = [name for name, _ in checker.headers if name.lower() == b"dkim-signature"][:most]

    def record(name: bytes, timeout: int = 5) -> bytes:
        return keys.get(name.decode("ascii", "replace").rstrip(".").lower(), "").encode()

    results = []
    for index in range(len(found)):
        try:
            verified = bool(checker.verify(idx=index, dnsfunc=record))
        except (dkim.DKIMException, ValueError, IndexError, TypeError):
            verified = False
        results.append((verified, (checker.domain or b"").decode("ascii", "replace").lower()))
    return results
