"""Issue 13.3: STARTTLS for the relay's clients, with the configured pair, reloaded on SIGHUP.

The pairs are written by `relay tls selfsigned`, the command an operator uses
for development; clients check the certificate against that very file.
"""
from __future__ import annotations

import asyncio
import logging
import os
import signal
import ssl
import stat

import aiosmtplib
import pytest
from conftest import BUYER, crlf, eventually, make_config, open_conversation, run_cli, settled
from test_crash import Node, write_config

from relay.server import Relay

HOSTNAME = "relay.localhost"


def _pair(tmp_path, name: str):
    cert, key = tmp_path / f"{name}-cert.pem", tmp_path / f"{name}-key.pem"
    done = run_cli("tls", "selfsigned", "--cert", str(cert), "--key", str(key), "--hostname", HOSTNAME)
    assert done.returncode == 0, done.stderr
    return cert, key


def _trusting(cert) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=str(cert))
    return context


@pytest.fixture
async def tls_relay(tmp_path, sink, request):
    cert, key = _pair(tmp_path, "relay")
    server = {"tls_cert": str(cert), "tls_key": str(key), "hostname": HOSTNAME, **getattr(request, "param", {})}
    relay = Relay(make_config(tmp_path, sink.port, server=server))
    await relay.start()
    relay.test_cert = cert
    yield relay
    await relay.stop()


async def _served_certificate(port: int) -> bytes:
    """The certificate a client is shown after STARTTLS (not checked: the test compares it)."""
    unchecked = ssl.create_default_context()
    unchecked.check_hostname, unchecked.verify_mode = False, ssl.CERT_NONE
    async with aiosmtplib.SMTP(hostname="127.0.0.1", port=port, start_tls=False, timeout=10) as client:
        await client.starttls(tls_context=unchecked)
        return client.transport.get_extra_info("ssl_object").getpeercert(binary_form=True)


def _der(cert) -> bytes:
    return ssl.PEM_cert_to_DER_cert(cert.read_text())


def test_relay_tls_selfsigned_writes_a_pair_with_a_private_key(tmp_path):
    cert, key = _pair(tmp_path, "dev")
    assert stat.S_IMODE(os.stat(key).st_mode) == 0o600
    assert "BEGIN CERTIFICATE" in cert.read_text()
    again = run_cli("tls", "selfsigned", "--cert", str(cert), "--key", str(key))
    assert again.returncode == 1 and "exists" in again.stderr and "Traceback" not in again.stderr


async def test_starttls_offers_the_configured_certificate_and_mail_flows_over_it(tls_relay, sink):
    opened = await open_conversation(tls_relay)
    async with aiosmtplib.SMTP(hostname="127.0.0.1", port=tls_relay.port, start_tls=False, timeout=10) as client:
        await client.ehlo()
        assert client.supports_extension("starttls")
        await client.starttls(tls_context=_trusting(tls_relay.test_cert), server_hostname=HOSTNAME)
        assert client.transport.get_extra_info("ssl_object").getpeercert(binary_form=True) == _der(tls_relay.test_cert)
        assert client.transport.get_extra_info("ssl_object").version() in ("TLSv1.2", "TLSv1.3")
        await client.sendmail(BUYER, [opened.seller_alias], crlf(f"From: {BUYER}\nSubject: over TLS\n\nHello\n"))
    await sink.wait_for(1)
    await settled(tls_relay)


@pytest.mark.parametrize("tls_relay", [{"require_tls": True}], indirect=True)
async def test_require_tls_refuses_mail_before_starttls(tls_relay, sink):
    opened = await open_conversation(tls_relay)
    async with aiosmtplib.SMTP(hostname="127.0.0.1", port=tls_relay.port, start_tls=False, timeout=10) as client:
        await client.ehlo()
        with pytest.raises(aiosmtplib.SMTPResponseException) as refused:
            await client.mail(BUYER)
        assert refused.value.code == 530 and refused.value.message.startswith("5.7.0")
        await client.starttls(tls_context=_trusting(tls_relay.test_cert), server_hostname=HOSTNAME)
        await client.sendmail(BUYER, [opened.seller_alias], crlf(f"From: {BUYER}\nSubject: now\n\nHello\n"))
    await sink.wait_for(1)


async def test_commands_pipelined_before_starttls_are_discarded(tls_relay, sink):
    """CVE-2024-34083's class: plaintext behind STARTTLS must not become commands of the TLS session."""
    opened = await open_conversation(tls_relay)
    reader, writer = await asyncio.open_connection("127.0.0.1", tls_relay.port)
    await reader.readline()
    writer.write(b"EHLO attacker.example\r\n")
    while not (await reader.readline()).startswith(b"250 "):
        pass
    writer.write(f"STARTTLS\r\nMAIL FROM:<{BUYER}>\r\nRCPT TO:<{opened.seller_alias}>\r\n".encode())
    await writer.drain()
    assert (await reader.readline()).startswith(b"220")
    await writer.start_tls(_trusting(tls_relay.test_cert), server_hostname=HOSTNAME)
    writer.write(f"EHLO client.example\r\nRCPT TO:<{opened.seller_alias}>\r\n".encode())
    lines = []
    while not lines or not lines[-1].startswith(b"503"):
        line = await asyncio.wait_for(reader.readline(), 10)
        assert line, f"connection closed after {lines!r}"
        lines.append(line)
    # The first answer after the handshake is the EHLO's, and RCPT has no MAIL to belong to.
    assert lines[0].startswith(b"250-") and lines[-1].startswith(b"503")
    writer.close()
    assert sink.messages == []


async def test_a_failed_handshake_costs_one_log_line_and_frees_the_connection(tls_relay, sink, caplog):
    caplog.set_level(logging.INFO)
    reader, writer = await asyncio.open_connection("127.0.0.1", tls_relay.port)
    await reader.readline()
    writer.write(b"EHLO scanner.example\r\nSTARTTLS\r\n")
    while not (await reader.readline()).startswith(b"220"):
        pass
    writer.write(b"\x16\x03\x01\x00\x05hello not a handshake\r\n" * 4)
    await eventually(lambda: reader.at_eof() or writer.is_closing() or tls_relay.connections.total == 0,
                     what="the relay closing the connection")
    await eventually(lambda: tls_relay.connections.total == 0, what="the connection released")
    writer.close()
    assert not [record for record in caplog.records if record.exc_info]
    assert any(record.getMessage() == "TLS handshake failed" for record in caplog.records), [
        (r.name, r.getMessage()) for r in caplog.records]


async def test_the_certificate_is_read_again_on_sighup(tmp_path, sink):
    first, key = _pair(tmp_path, "first")
    config = write_config(tmp_path, "tls", sink.port, f"sqlite:///{tmp_path / 'relay.db'}")
    text = open(config).read().replace("[server]\n", f'[server]\ntls_cert = "{first}"\ntls_key = "{key}"\n'
                                       f'hostname = "{HOSTNAME}"\n', 1)
    open(config, "w").write(text)
    log = tmp_path / "relay.log"
    node = Node(config, log=log)
    await node.start()
    try:
        assert await _served_certificate(node.port) == _der(first)
        # A renewal as certbot does it: new files moved into place, then SIGHUP.
        second, second_key = _pair(tmp_path, "second")
        os.replace(second, first)
        os.replace(second_key, key)
        renewed = _der(first)
        node.process.send_signal(signal.SIGHUP)

        deadline = asyncio.get_running_loop().time() + 10
        while await _served_certificate(node.port) != renewed:
            assert asyncio.get_running_loop().time() < deadline, "the renewed certificate is not served"

        # A broken renewal leaves the working pair in use.
        key.write_text("not a key\n")
        node.process.send_signal(signal.SIGHUP)
        await eventually(lambda: "certificate not reloaded" in log.read_text(), what="the refusal logged")
        assert await _served_certificate(node.port) == renewed
        assert node.process.returncode is None
    finally:
        await node.stop()


@pytest.mark.parametrize("content, expected", [
    ('[server]\ntls_cert = "a.pem"\n', "[server]: tls_cert and tls_key go together"),
    ("[server]\nrequire_tls = true\n", "[server]: require_tls needs tls_cert and tls_key"),
    ('[server]\ntls_cert = "missing.pem"\ntls_key = "missing.key"\n', "missing.pem: no such file"),
])
def test_a_tls_setting_that_cannot_work_stops_the_relay_with_one_line(tmp_path, content, expected):
    path = tmp_path / "relay.toml"
    path.write_text(content + f'[database]\nurl = "sqlite:///{tmp_path / "relay.db"}"\n')
    done = run_cli("--config", str(path), "serve")
    assert done.returncode == 2 and expected in done.stderr and "Traceback" not in done.stderr
