"""Issue 12.6: what an operator sees of the queue and does with it, through the `relay` command."""
from __future__ import annotations

import asyncio
import json

from conftest import BUYER, SELLER, Sink, crlf, eventually, make_config, open_conversation, run_cli, send, settled
from test_lifecycle import free_port

from relay.server import Relay


def config_file(tmp_path, hop_port: int) -> str:
    path = tmp_path / "relay.toml"
    path.write_text(f'[delivery]\nsmarthost = "127.0.0.1:{hop_port}"\n[aliases]\ndomain = "relay.test"\n'
                    f'[database]\nurl = "sqlite:///{tmp_path / "relay.db"}"\n')
    return str(path)


async def test_list_show_retry_and_drop(tmp_path):
    hop = free_port()  # the next hop is down: messages wait
    relay = Relay(make_config(tmp_path, hop, delivery={"retry_base": 3600, "retry_cap": 3600}))
    await relay.start()
    sink = None
    try:
        opened = await open_conversation(relay)
        for subject in ("first", "second"):
            await send(relay, BUYER, opened.seller_alias,
                       crlf(f"From: {BUYER}\nSubject: {subject}\nMessage-ID: <{subject}@example.com>\n\nHello\n"))
        config = config_file(tmp_path, hop)
        await eventually(lambda: _tried(relay), timeout=30, what="two messages that tried once")
        listed = await _waiting(config)
        assert [w["kind"] for w in listed] == ["forward", "forward"]
        assert all(w["recipient"] == SELLER and w["conversation"] == opened.conversation_id for w in listed)
        assert all(w["last_answer"] and "Connect" in w["last_answer"] for w in listed), listed

        table = await cli("--config", config, "queue", "list")
        assert table.returncode == 0 and len(table.stdout.splitlines()) == 3 and SELLER in table.stdout
        shown = json.loads((await cli("--config", config, "queue", "show", str(listed[0]["id"]))).stdout)
        assert shown["id"] == listed[0]["id"] and shown["attempts"] >= 1
        missing = await cli("--config", config, "queue", "show", "999999")
        assert missing.returncode == 1 and missing.stderr.strip() == "relay: no queued message 999999"

        sink = await Sink().start(port=hop)
        dropped = await cli("--config", config, "queue", "drop", str(listed[1]["id"]))
        assert dropped.stdout.strip() == f"dropped {listed[1]['id']}; its sender gets a notice"
        assert (await cli("--config", config, "queue", "retry", "--all")).returncode == 0
        await sink.wait_for(2)  # the first message, and the notice that the second was given up
        await settled(relay)
        assert sorted(m.rcpt_tos[0] for m in sink.messages) == sorted([SELLER, BUYER])
        assert await _waiting(config) == []
        states = [m["delivery"] for m in (await relay.store.show(opened.conversation_id))["messages"]]
        assert sorted(states) == ["delivered", "failed"]
    finally:
        await relay.stop()
        if sink is not None:
            await sink.stop()


async def cli(*args: str):
    """The command in a thread: the relay under test shares this event loop, and a blocked loop would
    hold its store transaction open until the command gave up waiting for the database."""
    return await asyncio.to_thread(run_cli, *args)


def _tried(relay) -> bool:
    """Both queued messages have had an attempt (read from the store file, without awaiting)."""
    import sqlite3
    with sqlite3.connect(relay.config.database_url().removeprefix("sqlite:///")) as db:
        return db.execute("SELECT count(*) FROM outgoing WHERE attempts > 0").fetchone()[0] == 2


async def _waiting(config: str) -> list[dict]:
    result = await cli("--config", config, "queue", "list", "--json")
    assert result.returncode == 0, result.stderr
    return [json.loads(line) for line in result.stdout.splitlines()]


def test_a_database_held_by_another_writer_is_named_in_one_line(tmp_path):
    import sqlite3

    config = config_file(tmp_path, free_port())
    assert run_cli("--config", config, "queue", "list").returncode == 0  # creates the store
    holder = sqlite3.connect(tmp_path / "relay.db", isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")
    try:
        result = run_cli("--config", config, "queue", "retry", "--all")
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    assert result.returncode == 1
    assert result.stderr.startswith("relay: database sqlite:///") and "locked" in result.stderr
    assert len(result.stderr.splitlines()) == 1 and "Traceback" not in result.stderr
