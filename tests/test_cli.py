"""The command line as the marketplace backend and operators use it, and configuration errors."""
from __future__ import annotations

import asyncio
import json
import re
import socket
import sys

import aiosmtplib
import pytest
from conftest import BUYER, ROOT, SELLER, crlf, make_config, run_cli, run_cli_here, send

from relay.server import Relay

ALIAS = re.compile(r"^[a-z0-9]{16}@relay\.test$")


@pytest.fixture
def config_file(tmp_path):
    path = tmp_path / "relay.toml"
    path.write_text('[aliases]\ndomain = "relay.test"\n[database]\nurl = "sqlite:///relay.db"\n')
    return str(path)


def relay_cli(config_file, *args):
    """The command's own main(), in this process: these tests are about what it says, not how it starts
    (the tests below that start it as a program keep run_cli)."""
    return run_cli_here("--config", config_file, *args)


def test_open_is_idempotent_per_order_and_aliases_are_random(config_file):
    first = json.loads(relay_cli(config_file, "conversation", "open", "--buyer", BUYER, "--seller", SELLER,
                                 "--order", "A-1", "--category", "Handmade").stdout)
    again = json.loads(relay_cli(config_file, "conversation", "open", "--buyer", BUYER.upper(), "--seller", SELLER,
                                 "--order", "A-1").stdout)
    other = json.loads(relay_cli(config_file, "conversation", "open", "--buyer", BUYER, "--seller", SELLER,
                                 "--order", "A-2").stdout)
    assert set(first) == {"conversation_id", "buyer_alias", "seller_alias"}
    assert first == again
    assert other["conversation_id"] != first["conversation_id"]
    aliases = [first["buyer_alias"], first["seller_alias"], other["buyer_alias"], other["seller_alias"]]
    assert all(ALIAS.match(a) for a in aliases) and len(set(aliases)) == 4


def test_invalid_addresses_are_refused_clearly(config_file):
    result = relay_cli(config_file, "conversation", "open", "--buyer", "not-an-address", "--seller", SELLER)
    assert result.returncode == 1
    assert result.stderr.startswith("relay: 'not-an-address' is not a valid email address")
    assert "Traceback" not in result.stderr and result.stdout == ""


def test_show_optout_and_seller_addresses(config_file):
    opened = json.loads(relay_cli(config_file, "conversation", "open", "--buyer", BUYER, "--seller", SELLER,
                                  "--seller-name", "Seller Shop").stdout)
    assert relay_cli(config_file, "optout", "add", BUYER).returncode == 0
    assert relay_cli(config_file, "seller", "add-address", "--seller", SELLER,
                     "--address", "shop.owner@gmail.example").returncode == 0
    shown = json.loads(relay_cli(config_file, "conversation", "show", opened["conversation_id"]).stdout)
    assert shown["buyer"]["opted_out"] is True
    assert shown["seller"]["sender_addresses"] == ["orders@seller-shop.example", "shop.owner@gmail.example"]
    assert shown["seller"]["display_name"] == "Seller Shop" and shown["messages"] == []
    assert relay_cli(config_file, "optout", "remove", BUYER).returncode == 0
    shown = json.loads(relay_cli(config_file, "conversation", "show", opened["conversation_id"]).stdout)
    assert shown["buyer"]["opted_out"] is False

    unknown = relay_cli(config_file, "seller", "add-address", "--seller", "nobody@example.org", "--address", BUYER)
    assert unknown.returncode == 1 and "no seller is registered as nobody@example.org" in unknown.stderr
    missing = relay_cli(config_file, "conversation", "show", "nope")
    assert missing.returncode == 1 and "no conversation nope" in missing.stderr


async def test_a_registered_extra_address_may_write_for_the_seller(tmp_path, sink):
    relay = Relay(make_config(tmp_path, sink.port))
    await relay.start()
    try:
        opened = await relay.store.open_conversation(BUYER, SELLER)
        await relay.store.add_seller_address(SELLER, "Shop.Owner@Gmail.example")
        await send(relay, "shop.owner@gmail.example", opened.buyer_alias,
                   crlf("From: Shop <shop.owner@gmail.example>\nSubject: hi\n\nWrite to shop.owner@gmail.example\n"))
        [arrived] = await sink.wait_for(1)
        assert b"gmail.example" not in arrived.content and opened.seller_alias.encode() in arrived.content
        shown = await relay.store.show(opened.conversation_id)
        assert [(m["direction"], m["verdict"]) for m in shown["messages"]] == [("seller_to_buyer", "forwarded")]
    finally:
        await relay.stop()


@pytest.mark.parametrize("content,expected", [
    ("[server]\nprot = 2525\n", "[server] prot: unknown key"),
    ('[server]\nport = "high"\n', "[server] port: Input should be a valid integer"),
    ("[log]\nformat = \"xml\"\n", "[log] format: Input should be 'json' or 'text'"),
    ('[delivery]\nsmarthost = "nohost"\n', "[delivery] smarthost: must be HOST:PORT"),
    ("[surver]\n", "[surver]: unknown section"),
    ("[server\n", "not valid TOML"),
])
def test_a_broken_config_stops_with_one_line_and_status_2(tmp_path, content, expected):
    path = tmp_path / "relay.toml"
    path.write_text(content)
    result = run_cli("--config", str(path), "serve")
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1 and str(path) in result.stderr and expected in result.stderr


def test_config_is_found_through_the_environment(tmp_path):
    path = tmp_path / "env.toml"
    path.write_text("[server]\nport = -1\n")
    result = run_cli("db", "upgrade", env={"RELAY_CONFIG": str(path)})
    assert result.returncode == 2 and "env.toml: [server] port" in result.stderr


def test_db_upgrade_and_an_unreachable_database(tmp_path):
    path = tmp_path / "relay.toml"
    path.write_text('[database]\nurl = "sqlite:///store.db"\n')
    upgraded = run_cli("--config", str(path), "db", "upgrade")
    assert upgraded.returncode == 0 and (tmp_path / "store.db").exists()
    path.write_text('[database]\nurl = "postgresql://relay:secret@127.0.0.1:9/relay"\n')
    unreachable = run_cli("--config", str(path), "conversation", "show", "x")
    assert unreachable.returncode == 1
    assert unreachable.stderr.startswith("relay: database postgresql://relay:***@127.0.0.1:9/relay")
    assert "secret" not in unreachable.stderr and "Traceback" not in unreachable.stderr


async def test_relay_sink_prints_what_it_receives(tmp_path):
    """The README's debugging next hop: a message sent to it is printed on stdout."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    sink = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "relay.cli", "sink", "--port", str(port), cwd=ROOT,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    try:
        assert b"listening" in await asyncio.wait_for(sink.stderr.readline(), 30)
        async with aiosmtplib.SMTP(hostname="127.0.0.1", port=port, start_tls=False) as client:
            await client.sendmail("", ["orders@shop.example"], b"Subject: hello sink\r\n\r\nBody text\r\n")
        lines = []

        async def read_until_end():
            while not lines or not lines[-1].startswith(b"----- end of message 1"):
                lines.append(await sink.stdout.readline())
        await asyncio.wait_for(read_until_end(), 15)
        printed = b"".join(lines).decode()
        assert "MAIL FROM:<> RCPT TO:<orders@shop.example>" in printed
        assert "Subject: hello sink" in printed and "Body text" in printed
    finally:
        sink.terminate()
        assert await asyncio.wait_for(sink.wait(), 15) == 0
