"""DNS for the relay: one async resolver (dnspython) with configurable servers and a small cache.

Delivery asks it for a domain's mail exchangers (RFC 5321 5.1), and sender
authentication (issue 13) for SPF, DKIM and DMARC records. An answer that
says "no such domain" is permanent; a timeout or SERVFAIL is temporary, and
the message is tried again later.
"""
from __future__ import annotations

import random
from dataclasses import dataclass

import dns.asyncresolver
import dns.exception
import dns.nameserver
import dns.resolver

from .config import DnsConfig


class DnsFailure(Exception):
    """A lookup that failed; `permanent` says whether trying again can help."""

    def __init__(self, text: str, permanent: bool):
        super().__init__(text)
        self.permanent = permanent


@dataclass(frozen=True)
class Exchanger:
    host: str
    preference: int


class Resolver:
    def __init__(self, config: DnsConfig):
        self._resolver = dns.asyncresolver.Resolver(configure=not config.servers)
        if config.servers:
            self._resolver.nameservers = [dns.nameserver.Do53Nameserver(host, port) for host, port in config.addresses()]
        self._resolver.lifetime = config.timeout
        self._resolver.timeout = min(config.timeout, 2.0)
        self._resolver.cache = dns.resolver.LRUCache(config.cache_size) if config.cache_size else None

    async def answer(self, name: str, kind: str):
        """The records of one kind (None if the name has none); DnsFailure for a missing name or a failure."""
        try:
            return await self._resolver.resolve(name, kind, search=False)
        except dns.resolver.NXDOMAIN:
            raise DnsFailure(f"{name}: no such domain", permanent=True) from None
        except dns.resolver.NoAnswer:
            return None
        except (dns.resolver.NoNameservers, dns.exception.Timeout, dns.resolver.LifetimeTimeout) as exc:
            raise DnsFailure(f"{name} {kind}: {type(exc).__name__}", permanent=False) from None
        except dns.exception.DNSException as exc:
            raise DnsFailure(f"{name} {kind}: {type(exc).__name__}", permanent=False) from None

    async def exchangers(self, domain: str) -> list[Exchanger]:
        """The domain's mail hosts in the order to try (equal preferences shuffled); the domain itself if it has
        no MX; a null MX (RFC 7505) or a missing domain is a permanent failure."""
        answer = await self.answer(domain, "MX")
        if answer is None:
            return [Exchanger(domain, 0)]  # RFC 5321 5.1: the implicit MX
        found = [Exchanger(record.exchange.to_text().rstrip("."), record.preference) for record in answer]
        if len(found) == 1 and found[0].host in ("", "."):
            raise DnsFailure(f"{domain} accepts no mail (null MX)", permanent=True)
        random.shuffle(found)
        return sorted((e for e in found if e.host), key=lambda e: e.preference)

    async def addresses(self, host: str) -> list[str]:
        """A and AAAA addresses of a host (IPv4 first); none is an empty list."""
        found: list[str] = []
        for kind in ("A", "AAAA"):
            try:
                answer = await self.answer(host, kind)
            except DnsFailure as exc:
                if exc.permanent:
                    return found
                raise
            found += [record.address for record in answer or ()]
        return found

    async def txt(self, name: str) -> list[str]:
        answer = await self.answer(name, "TXT")
        return [b"".join(record.strings).decode("utf-8", "replace") for record in answer or ()]
