"""A small authoritative DNS server on loopback for the tests: MX, A, AAAA and TXT records they set.

Public DNS cannot be reached here, so the relay's resolver is pointed at this
one (its [dns] servers), the way an operator points it at their own resolver.
It answers UDP and TCP queries with dnspython's message code; a name it does
not know is NXDOMAIN, a known name without the asked type is an empty answer,
and a name in `failing` gets SERVFAIL.
"""
from __future__ import annotations

import asyncio
import logging
import struct

import dns.flags
import dns.message
import dns.name
import dns.rcode
import dns.rdata
import dns.rdataclass
import dns.rdatatype
import dns.rrset


class Zone:
    def __init__(self):
        self.records: dict[tuple[str, str], list[str]] = {}
        self.failing: set[str] = set()
        self.queries: list[tuple[str, str]] = []

    def add(self, name: str, kind: str, value: str) -> None:
        self.records.setdefault((name.lower().rstrip(".") + ".", kind.upper()), []).append(value)

    def answer(self, wire: bytes) -> bytes:
        query = dns.message.from_wire(wire)
        response = dns.message.make_response(query)
        response.flags |= dns.flags.AA
        question = query.question[0]
        name, kind = question.name.to_text().lower(), dns.rdatatype.to_text(question.rdtype)
        self.queries.append((name, kind))
        if name.rstrip(".") in self.failing:
            response.set_rcode(dns.rcode.SERVFAIL)
            return response.to_wire()
        values = self.records.get((name, kind))
        if values:
            rrset = dns.rrset.RRset(question.name, dns.rdataclass.IN, question.rdtype)
            for value in values:
                rrset.add(dns.rdata.from_text(dns.rdataclass.IN, question.rdtype, value), ttl=60)
            response.answer.append(rrset)
        elif not any(known == name for known, _ in self.records):
            response.set_rcode(dns.rcode.NXDOMAIN)
        return response.to_wire()


class _Udp(asyncio.DatagramProtocol):
    def __init__(self, zone: Zone):
        self.zone = zone

    def connection_made(self, transport):
        self.transport = transport

    def datagram_received(self, data, address):
        try:
            self.transport.sendto(self.zone.answer(data), address)
        except Exception:  # a zone the test wrote wrong: say so in the test's log, answer nothing
            logging.getLogger(__name__).exception("test DNS server could not answer")


class DnsServer:
    """Serves `zone` on 127.0.0.1:port over UDP and TCP."""

    def __init__(self, zone: Zone | None = None):
        self.zone = zone or Zone()
        self.port = 0
        self._udp = None
        self._tcp = None

    async def _tcp_client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                length = struct.unpack("!H", await reader.readexactly(2))[0]
                answer = self.zone.answer(await reader.readexactly(length))
                writer.write(struct.pack("!H", len(answer)) + answer)
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            writer.close()

    async def start(self) -> DnsServer:
        loop = asyncio.get_running_loop()
        self._tcp = await asyncio.start_server(self._tcp_client, "127.0.0.1", 0)
        self.port = self._tcp.sockets[0].getsockname()[1]
        self._udp, _ = await loop.create_datagram_endpoint(lambda: _Udp(self.zone), local_addr=("127.0.0.1", self.port))
        return self

    async def stop(self) -> None:
        if self._udp is not None:
            self._udp.close()
        if self._tcp is not None:
            self._tcp.close()
            await self._tcp.wait_closed()
