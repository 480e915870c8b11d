"""Is the sender who they say? SPF, DKIM and DMARC for every message to an alias.

- SPF (RFC 7208, pyspf) for the envelope sender against the connecting
  address: the peer's, or the one a trusted MTA in front reports by XFORWARD.
- DKIM (RFC 6376, dkimpy): the keys are fetched here, the signatures checked
  in a worker (hashing a body is CPU work).
- DMARC (RFC 7489) for the From domain, with organizational domains from the
  public-suffix list: a pass is an SPF or DKIM pass for a domain aligned with
  the From domain.

All DNS goes through the relay's one async resolver (relay/resolver.py) and
its cache; pyspf, which is synchronous, runs in a thread and asks that
resolver through the event loop. The results are an RFC 8601
Authentication-Results value for the message log; the other party never sees
them. What is required is `[auth] require` (relay/config.py).
"""
from __future__ import annotations

import asyncio
import ipaddress
import logging
import re
from dataclasses import dataclass

import dns.rdatatype
import spf

from filters.domains import registered_domain

from .config import Config
from .mime import Entity, field_value
from .resolver import DnsFailure, Resolver
from .sender import domain_of
from .signing import verify_signatures
from .workers import WorkerPool

log = logging.getLogger(__name__)
PASS, FAIL, NONE, TEMPERROR = "pass", "fail", "none", "temperror"
_TAG = re.compile(r"(?:^|;)\s*([a-z]+)\s*=\s*([^;]*)", re.IGNORECASE)
_MOST_SIGNATURES = 5


@dataclass(frozen=True)
class Results:
    spf: str
    """pass, fail, softfail, neutral, none, temperror, permerror."""
    spf_domain: str
    dkim: tuple[tuple[bool, str], ...]
    """(verified, d= domain) for each signature."""
    dmarc: str
    """pass, fail, none (no policy published), temperror."""
    policy: str | None
    """The From domain's DMARC policy (reject, quarantine, none), if it publishes one."""
    from_domain: str

    def aligned_pass(self) -> bool:
        """An SPF or DKIM pass for a domain in the From domain's organization (relaxed alignment)."""
        organization = _organization(self.from_domain)
        return (self.spf == PASS and _organization(self.spf_domain) == organization) or any(
            verified and _organization(domain) == organization for verified, domain in self.dkim)

    def header(self, authserv_id: str) -> str:
        """The RFC 8601 Authentication-Results value, for the message log."""
        parts = [authserv_id, f"spf={self.spf} smtp.mailfrom={self.spf_domain or '(null)'}"]
        parts += [f"dkim={'pass' if verified else 'fail'} header.d={domain}" for verified, domain in self.dkim] \
            or ["dkim=none"]
        parts.append(f"dmarc={self.dmarc}" + (f" (p={self.policy})" if self.policy else "")
                     + f" header.from={self.from_domain or '(none)'}")
        return "; ".join(parts)


def _organization(domain: str) -> str:
    return registered_domain(domain) or domain.lower().strip(".")


def _tags(record: str) -> dict[str, str]:
    return {key.lower(): value.strip() for key, value in _TAG.findall(record)}


class Authenticator:
    def __init__(self, config: Config, resolver: Resolver, workers: WorkerPool):
        self.config = config
        self.resolver = resolver
        self.workers = workers
        self._loop: asyncio.AbstractEventLoop | None = None

    async def check(self, raw: bytes, entity: Entity, client: str, helo: str, mail_from: str,
                    from_domain: str) -> Results:
        spf_result, spf_domain = await self._spf(client, helo, mail_from)
        signatures = await self._dkim(raw, entity)
        dmarc, policy = await self._dmarc(from_domain, spf_result, spf_domain, signatures)
        return Results(spf_result, spf_domain, signatures, dmarc, policy, from_domain)

    # -- SPF ------------------------------------------------------------------------------

    async def _spf(self, client: str, helo: str, mail_from: str) -> tuple[str, str]:
        sender = mail_from if mail_from and mail_from != "<>" else f"postmaster@{helo}"
        try:
            ipaddress.ip_address(client)
        except ValueError:
            return NONE, domain_of(sender)
        self._loop = asyncio.get_running_loop()
        spf.DNSLookup = self._lookup  # pyspf's one hook for DNS: ours, through the shared resolver
        try:
            result, _ = await asyncio.to_thread(spf.check2, i=client, s=sender, h=helo or "unknown",
                                                timeout=self.config.dns.timeout * 2)
        except Exception:
            log.exception("SPF evaluation failed")
            result = TEMPERROR
        return result, domain_of(sender)

    def _lookup(self, name: str, kind: str, strict: bool = True, timeout: float = 20):
        """pyspf's DNSLookup, answered by the relay's resolver on the event loop (called in a thread)."""
        future = asyncio.run_coroutine_threadsafe(self._records(name, kind), self._loop)
        try:
            return future.result(timeout)
        except DnsFailure as exc:
            if exc.permanent:
                return []
            raise spf.TempError(f"DNS {exc}") from None
        except TimeoutError:
            raise spf.TempError(f"DNS {name} {kind}: timeout") from None

    async def _records(self, name: str, kind: str) -> list:
        answer = await self.resolver.answer(name, kind)
        found = []
        for record in answer or ():
            if record.rdtype in (dns.rdatatype.A, dns.rdatatype.AAAA):
                found.append(((name, kind), record.address))
            elif record.rdtype == dns.rdatatype.MX:
                found.append(((name, kind), (record.preference, record.exchange.to_text(True))))
            elif record.rdtype == dns.rdatatype.PTR:
                found.append(((name, kind), record.target.to_text(True)))
            elif record.rdtype in (dns.rdatatype.TXT, dns.rdatatype.SPF):
                found.append(((name, kind), list(record.strings)))
        return found

    # -- DKIM -----------------------------------------------------------------------------

    async def _dkim(self, raw: bytes, entity: Entity) -> tuple[tuple[bool, str], ...]:
        keys: dict[str, str] = {}
        count = 0
        for name, field in entity.fields:
            if name != "dkim-signature" or count >= _MOST_SIGNATURES:
                continue
            count += 1
            tags = _tags(field_value(field).decode("ascii", "replace").replace("\r\n", ""))
            domain, selector = tags.get("d", "").lower(), tags.get("s", "").lower()
            if domain and selector and re.fullmatch(r"[a-z0-9._\-]{1,253}", f"{selector}.{domain}"):
                record = f"{selector}._domainkey.{domain}"
                try:
                    keys[record] = " ".join(await self.resolver.txt(record))
                except DnsFailure:
                    keys[record] = ""
        if not count:
            return ()
        try:
            return tuple(await self.workers.run(self.config.limits.cpu_seconds(len(raw)), verify_signatures,
                                                raw, keys, _MOST_SIGNATURES))
        except Exception:
            log.exception("DKIM verification failed")
            return ((False, ""),)

    # -- DMARC ----------------------------------------------------------------------------

    async def _dmarc(self, from_domain: str, spf_result: str, spf_domain: str,
                     signatures: tuple[tuple[bool, str], ...]) -> tuple[str, str | None]:
        if not from_domain:
            return NONE, None
        try:
            record = await self._policy_record(from_domain)
        except DnsFailure:
            return TEMPERROR, None
        if record is None:
            return NONE, None
        tags = _tags(record)
        organizational = _organization(from_domain) != from_domain
        policy = (tags.get("sp") if organizational and "sp" in tags else tags.get("p", "none")).lower()

        def aligned(domain: str, strict: bool) -> bool:
            domain = domain.lower().strip(".")
            return domain == from_domain if strict else _organization(domain) == _organization(from_domain)

        passed = (spf_result == PASS and aligned(spf_domain, tags.get("aspf", "r").lower() == "s")) or any(
            verified and aligned(domain, tags.get("adkim", "r").lower() == "s") for verified, domain in signatures)
        return (PASS if passed else FAIL), policy

    async def _policy_record(self, from_domain: str) -> str | None:
        """The DMARC record of the From domain, or of its organizational domain (RFC 7489 6.6.3)."""
        for domain in dict.fromkeys([from_domain, _organization(from_domain)]):
            try:
                records = [r for r in await self.resolver.txt(f"_dmarc.{domain}") if r.lower().startswith("v=dmarc1")]
            except DnsFailure as exc:
                if not exc.permanent:
                    raise
                records = []
            if len(records) == 1:
                return records[0]
        return None


def refusal(results: Results | None, mode: str, seller: bool) -> tuple[bool, str] | None:
    """(temporary, reason) when the message may not be accepted under `[auth] require`, else None."""
    if results is None or mode == "none":
        return None
    domain = results.from_domain or results.spf_domain or "the sender's domain"
    if results.aligned_pass():
        return None
    if results.dmarc == TEMPERROR or results.spf == TEMPERROR:
        return True, f"the records of {domain} cannot be read just now"
    if mode == "spf-or-dkim":
        return False, f"neither SPF nor a DKIM signature shows that this message comes from {domain}"
    if results.dmarc == FAIL and results.policy in ("reject", "quarantine"):
        return False, (f"{domain} publishes a DMARC policy of {results.policy}, and this message is neither "
                       f"signed by {domain} nor sent from its servers")
    if results.dmarc == NONE and seller:
        return False, (f"mail from a seller must be signed by {domain} (DKIM) or sent from its servers (SPF); "
                       "this message is neither")
    return None
