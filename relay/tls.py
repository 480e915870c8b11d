"""STARTTLS for clients of the relay (RFC 3207): the certificate, and reading it again on SIGHUP.

A certificate is renewed while the relay runs (certbot and its kin write new
files, then signal): SIGHUP reads them again, and sessions that start after
it use the new pair. A pair that cannot be read leaves the old one in use,
and says so in the log, so a bad renewal never takes TLS away.
"""
from __future__ import annotations

import datetime
import logging
import os
import ssl
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

log = logging.getLogger(__name__)


class TlsError(Exception):
    """A certificate or key the relay cannot use, worded as one line for the operator."""


def server_context(cert: Path, key: Path) -> ssl.SSLContext:
    """TLS 1.2 or newer with the default ciphers; clients do not present certificates."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    for path in (cert, key):
        if not path.is_file():
            raise TlsError(f"{path}: no such file ([server] tls_cert, tls_key)")
    try:
        context.load_cert_chain(cert, key)
    except OSError as exc:
        raise TlsError(f"{exc.filename or cert}: cannot read: {exc.strerror}") from None
    except ssl.SSLError as exc:
        raise TlsError(f"{cert} with {key}: not a PEM certificate and its private key ({exc.reason})") from None
    return context


def describe(cert: Path) -> dict:
    """What the log says of a certificate: its subject and when it expires."""
    try:
        loaded = x509.load_pem_x509_certificate(cert.read_bytes())
    except (OSError, ValueError):
        return {"certificate": str(cert)}
    return {"certificate": str(cert), "subject": loaded.subject.rfc4514_string(),
            "expires": loaded.not_valid_after_utc.isoformat()}


class Certificates:
    """The context sessions start TLS with; replaced whole on reload, never changed in place."""

    def __init__(self, cert: Path, key: Path):
        self.cert, self.key = cert, key
        self.context = server_context(cert, key)

    def reload(self) -> bool:
        try:
            self.context = server_context(self.cert, self.key)
        except TlsError as exc:
            log.error("certificate not reloaded; the one in use stays", extra={"error": str(exc)})
            return False
        log.info("certificate reloaded", extra=describe(self.cert))
        return True


def selfsigned(hostname: str, days: int = 365) -> tuple[bytes, bytes]:
    """A development certificate for hostname (PEM), and its P-256 key (PEM, PKCS #8)."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, hostname)])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5)).not_valid_after(now + datetime.timedelta(days=days))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName(hostname)]), critical=False)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))
    return (cert.public_bytes(serialization.Encoding.PEM),
            key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                              serialization.NoEncryption()))


def write_pair(cert: Path, key: Path, hostname: str) -> None:
    """Writes a self-signed pair, never over existing files; the key is mode 0600 from its first byte."""
    for path in (cert, key):
        if path.exists():
            raise FileExistsError(path)
    cert_pem, key_pem = selfsigned(hostname)
    for path, data, mode in ((key, key_pem, 0o600), (cert, cert_pem, 0o644)):
        path.parent.mkdir(parents=True, exist_ok=True)
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
        with os.fdopen(descriptor, "wb") as out:
            out.write(data)
