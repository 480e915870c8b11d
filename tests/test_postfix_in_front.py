"""Issue 12.7: a real Postfix in front of the relay, as operators deploy it (clients -> Postfix -> relay).

A private Postfix instance (its own config directory, spool and log, listening
on a loopback port only) relays the alias domain to the relay over SMTP or LMTP,
as the README shows. It needs root and Debian's postfix package (.ci/run
installs it); without them the test is skipped, except in CI, where it fails.
"""
from __future__ import annotations

import os
import shutil
import smtplib
import subprocess
import tempfile
from pathlib import Path

import pytest
from conftest import BUYER, SELLER, crlf, eventually, make_config, open_conversation, settled
from test_lifecycle import free_port

from relay.server import Relay

POSTFIX = shutil.which("postfix") or ("/usr/sbin/postfix" if os.path.exists("/usr/sbin/postfix") else None)


def _postfix_or_skip() -> str:
    if POSTFIX is None or os.geteuid() != 0:
        if os.environ.get("CI"):
            pytest.fail("CI must provide Postfix (Debian's postfix package, run as root; see .ci/run)")
        pytest.skip("needs root and Debian's postfix package")
    return POSTFIX


class FrontPostfix:
    """A Postfix instance of the test's own, relaying relay.test to the relay."""

    def __init__(self, relay_port: int, transport: str):
        self.port = free_port()
        self.dir = Path(tempfile.mkdtemp(prefix="relay-postfix-", dir="/tmp"))
        self.dir.chmod(0o755)  # the postfix user walks into its spool here
        (self.dir / "spool").mkdir()
        (self.dir / "data").mkdir()
        shutil.chown(self.dir / "data", "postfix")
        target = f"lmtp:inet:127.0.0.1:{relay_port}" if transport == "lmtp" else f"smtp:[127.0.0.1]:{relay_port}"
        (self.dir / "main.cf").write_text(f"""
compatibility_level = 3.6
queue_directory = {self.dir}/spool
data_directory = {self.dir}/data
maillog_file = {self.dir}/maillog
maillog_file_prefixes = {self.dir}
inet_interfaces = 127.0.0.1
inet_protocols = ipv4
myhostname = front.localhost
mydestination =
local_transport = error:local delivery is off
alias_maps =
alias_database =
relay_domains = relay.test
transport_maps = inline:{{ relay.test={target} }}
smtp_destination_recipient_limit = 50
lmtp_destination_recipient_limit = 50
mynetworks = 127.0.0.0/8
smtpd_recipient_restrictions = permit_mynetworks, reject_unauth_destination
disable_dns_lookups = yes
smtp_dns_support_level = disabled
smtpd_peername_lookup = no
smtp_tls_security_level = none
""")
        # The distribution's master.cf, not /etc/postfix's: the machine's own Postfix may be set up to
        # listen elsewhere (the benchmark's setup-postfix.sh moves it to 127.0.0.1:2525).
        shipped = Path("/usr/share/postfix/master.cf.dist")
        master = (shipped if shipped.exists() else Path("/etc/postfix/master.cf")).read_text().splitlines()
        lines = []
        for line in master:
            fields = line.split()
            if len(fields) >= 8 and not line.startswith(("#", " ")) and fields[1] == "inet":
                if fields[7] != "smtpd":
                    continue  # the test's instance listens once, for smtpd
                line = line.replace(fields[0], f"127.0.0.1:{self.port}", 1)
            fields = line.split()
            if len(fields) >= 8 and not line.startswith(("#", " ")) and fields[4] == "y":
                fields[4] = "n"  # no chroot: the spool is the test's own
                line = "  ".join(fields)
            lines.append(line)
        (self.dir / "master.cf").write_text("\n".join(lines) + "\n")

    def postfix(self, *args: str) -> subprocess.CompletedProcess:
        return subprocess.run([POSTFIX, "-c", str(self.dir), *args], capture_output=True, text=True, timeout=60)

    def start(self) -> None:
        self.postfix("set-permissions")
        started = self.postfix("start")
        assert started.returncode == 0, self.log()

    def stop(self) -> None:
        self.postfix("stop")
        shutil.rmtree(self.dir, ignore_errors=True)

    def log(self) -> str:
        path = self.dir / "maillog"
        return path.read_text() if path.exists() else "(no maillog)"


@pytest.mark.parametrize("protocol", ["smtp", "lmtp"])
async def test_three_aliases_through_postfix_arrive_at_once(tmp_path, sink, protocol):
    _postfix_or_skip()
    relay = Relay(make_config(tmp_path, sink.port, server={"protocol": protocol, "port": free_port()}))
    await relay.start()
    front = FrontPostfix(relay.port, protocol)
    front.start()
    try:
        conversations = [await open_conversation(relay, order_id=f"P-{index}") for index in range(3)]
        message = crlf(f"From: {BUYER}\nTo: three sellers\nSubject: through Postfix\n\nHello to you all.\n")
        try:
            await eventually(lambda: _listening(front.port), what="Postfix listening")
        except AssertionError:
            raise AssertionError(f"Postfix did not listen; its log:\n{front.log()}") from None
        with smtplib.SMTP("127.0.0.1", front.port, timeout=30) as client:
            refused = client.sendmail(BUYER, [c.seller_alias for c in conversations], message)
        assert refused == {}
        await sink.wait_for(3, timeout=60)  # not deferred one by one at Postfix's backoff
        await settled(relay)
        assert len(sink.messages) == 3, front.log()
        senders = sorted(m.content.split(b"From: ", 1)[1].split(b"\r\n", 1)[0] for m in sink.messages)
        assert len(set(senders)) == 3 and all(m.rcpt_tos == [SELLER] for m in sink.messages)
        assert "status=deferred" not in front.log()
    finally:
        front.stop()
        await relay.stop()


def _listening(port: int) -> bool:
    import socket
    with socket.socket() as probe:
        return probe.connect_ex(("127.0.0.1", port)) == 0
