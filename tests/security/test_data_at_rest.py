"""Issue 13.6: what the relay leaves on disk and in its log tells a reader nothing about the parties.

The database holds every real address: it and its journal are the owner's alone.
The log names parties by keyed pseudonyms, so an address someone already knows
cannot be looked up in it, and it never carries what a message says.
"""
from __future__ import annotations

import hashlib
import hmac
import json
import os
import stat
from email.message import EmailMessage
from email.policy import SMTP

import aiosmtplib
import pytest
from conftest import BUYER, SELLER, crlf, eventually, run_cli
from test_crash import Node

from bench.common import free_port

SUBJECT = "Quilted jacket, the hem"
BODY = "The hem of the quilted jacket came loose after one wash."
LINK = "https://shop-of-the-seller.example/jackets"


def _config(folder, sink_port: int, extra: str = "") -> str:
    folder.mkdir(exist_ok=True)
    path = folder / "relay.toml"
    path.write_text(
        f'[server]\nport = {free_port()}\nworkers = 1\nshutdown_grace = 5\n'
        f'[delivery]\nsmarthost = "127.0.0.1:{sink_port}"\n[aliases]\ndomain = "relay.test"\n'
        f'[database]\nurl = "sqlite:///relay.db"\n[auth]\nrequire = "none"\n[log]\nlevel = "INFO"\n{extra}')
    return str(path)


def _mode(path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


@pytest.fixture
def open_umask():
    """A umask that lets anyone read new files: the relay must not depend on the operator's."""
    previous = os.umask(0o022)
    yield
    os.umask(previous)


def _with_named_attachment() -> bytes:
    """A seller's reply whose text attachment, named after the buyer's address, carries a link."""
    message = EmailMessage()
    message["From"], message["Subject"] = SELLER, f"Re: {SUBJECT}"
    message.set_content("A price list is attached.")
    message.add_attachment(f"Prices: {LINK}", filename=f"prices for {BUYER}.txt")
    return message.as_bytes(policy=SMTP)


async def _exchange(node: Node, opened: dict, sink) -> None:
    """A buyer's message forwarded, a seller's reply with a link bounced, one with a text attachment that
    carries a link forwarded without it, a stranger refused."""
    async with aiosmtplib.SMTP(hostname="127.0.0.1", port=node.port, start_tls=False) as client:
        await client.sendmail(BUYER, [opened["seller_alias"]],
                              crlf(f"From: {BUYER}\nSubject: {SUBJECT}\n\n{BODY}\n"))
        await client.sendmail(SELLER, [opened["buyer_alias"]],
                              crlf(f"From: {SELLER}\nSubject: Re: {SUBJECT}\n\nSee {LINK} for a new one.\n"))
        await client.sendmail(SELLER, [opened["buyer_alias"]], _with_named_attachment())
        await client.mail("stranger@example.net")
        with pytest.raises(aiosmtplib.SMTPRecipientRefused):
            await client.rcpt(opened["buyer_alias"])
    await sink.wait_for(4)  # two forwards, the seller's two notices


async def _serve_one_exchange(config: str, log, sink, while_running=None) -> None:
    """`relay serve` on config for one exchange, then stopped; while_running() is awaited before the stop."""
    opened = json.loads(run_cli("--config", config, "conversation", "open", "--buyer", BUYER,
                                "--seller", SELLER).stdout)
    node = Node(config, log=log)
    await node.start()
    try:
        await _exchange(node, opened, sink)
        if while_running:
            await while_running()
    finally:
        await node.stop()


async def test_database_journal_and_key_are_created_readable_by_their_owner_only(tmp_path, sink, open_umask):
    folder = tmp_path / "node"
    files = [folder / name for name in ("relay.db", "relay.db-wal", "relay.db-shm", "log-pseudonym.key")]

    async def owner_only():
        await eventually(lambda: all(f.exists() for f in files), what="the database, its journal and the key")
        assert {f.name: oct(_mode(f)) for f in files} == {f.name: "0o600" for f in files}

    await _serve_one_exchange(_config(folder, sink.port), tmp_path / "relay.log", sink, owner_only)


async def test_a_known_address_cannot_be_found_in_the_log_nor_what_the_message_said(tmp_path, sink):
    logs = {}
    for name in ("one", "two"):  # two installations, each with its own key
        await _serve_one_exchange(_config(tmp_path / name, sink.port), tmp_path / f"{name}.log", sink)
        sink.messages.clear()
        key = (tmp_path / name / "log-pseudonym.key").read_text().strip().encode()
        logs[name] = ((tmp_path / f"{name}.log").read_text(), key)

    for text, key in logs.values():
        lines = [json.loads(line) for line in text.splitlines()]
        assert {"forwarded", "bounced", "refused"} <= {line["event"] for line in lines}, text
        for address in (BUYER, SELLER, "stranger@example.net"):
            assert address not in text and address.split("@")[0] not in text
            plain = hashlib.sha256(address.encode()).hexdigest()
            assert plain[:12] not in text  # a label anyone could compute from the address
        for said in (SUBJECT, BODY, LINK, "shop-of-the-seller", "quilted jacket"):
            assert said.lower() not in text.lower(), said
        keyed = "addr-" + hmac.new(key, BUYER.encode(), hashlib.sha256).hexdigest()[:12]
        assert keyed in text  # lines about one party still match up, for whoever holds the key
    (one, key_one), (two, key_two) = logs.values()
    assert key_one != key_two
    label = "addr-" + hmac.new(key_one, BUYER.encode(), hashlib.sha256).hexdigest()[:12]
    assert label not in two


async def test_nodes_given_one_key_write_the_same_pseudonyms(tmp_path, sink):
    shared = 'pseudonym_key = "' + "k" * 40 + '"\n'
    label = "addr-" + hmac.new(b"k" * 40, BUYER.encode(), hashlib.sha256).hexdigest()[:12]
    await _serve_one_exchange(_config(tmp_path / "node", sink.port, shared), tmp_path / "relay.log", sink)
    assert label in (tmp_path / "relay.log").read_text()
    assert not (tmp_path / "node" / "log-pseudonym.key").exists()


def test_a_short_configured_key_is_refused_by_name(tmp_path):
    config = _config(tmp_path / "node", 25, 'pseudonym_key = "short"\n')
    result = run_cli("--config", config, "serve")
    assert result.returncode == 2 and "[log] pseudonym_key" in result.stderr and "Traceback" not in result.stderr
