"""[server] processes = 2: two relays on one port and one store, watched over by `relay serve`."""
from __future__ import annotations

import asyncio
import json
import os
import signal
from pathlib import Path

from conftest import BUYER, SELLER, eventually, run_cli
from test_crash import Node, arrivals, send_until_accepted, write_config


def children(pid: int) -> list[int]:
    return [int(child) for task in Path(f"/proc/{pid}/task").iterdir()
            for child in (task / "children").read_text().split()]


def relay_children(pid: int) -> list[int]:
    """The relays the supervisor started (their own rewrite workers are their children, not its)."""
    return [child for child in children(pid) if b"relay.cli" in Path(f"/proc/{child}/cmdline").read_bytes()]


def logged(log: Path, event: str) -> list[dict]:
    lines = [json.loads(line) for line in log.read_text().splitlines() if line.startswith("{")]
    return [line for line in lines if line.get("event") == event]


def two_processes(tmp_path, sink) -> tuple[str, dict]:
    config = write_config(tmp_path, "pair", sink.port, f"sqlite:///{tmp_path / 'relay.db'}")
    text = Path(config).read_text().replace("workers = 1\n", "workers = 1\nprocesses = 2\n")
    Path(config).write_text(text.replace('level = "WARNING"', 'level = "INFO"'))
    opened = json.loads(run_cli("--config", config, "conversation", "open", "--buyer", BUYER, "--seller", SELLER,
                                "--order", "P-1").stdout)
    return config, opened


async def test_two_processes_share_the_port_and_deliver_everything_once(tmp_path, sink):
    config, opened = two_processes(tmp_path, sink)
    node = Node(config, tmp_path / "relay.log")
    await node.start()
    try:
        await eventually(lambda: len(logged(node.log, "listening")) == 2, what="both relays listening")
        assert sorted(line["node"] for line in logged(node.log, "listening")) == ["pair/1", "pair/2"]
        assert len(relay_children(node.process.pid)) == 2
        deadline = asyncio.get_running_loop().time() + 60
        await asyncio.gather(*(send_until_accepted([node.port], opened["seller_alias"], n, deadline)
                               for n in range(40)))
        await eventually(lambda: len(arrivals(sink)) == 40, what="every message delivered")
        assert set(arrivals(sink).values()) == {1}
        forwarded = logged(node.log, "forwarded")
        assert len(forwarded) == 40
    finally:
        await node.stop()
    assert node.process.returncode == 0
    assert not node._listening()


async def test_a_relay_process_that_dies_is_started_again(tmp_path, sink):
    config, opened = two_processes(tmp_path, sink)
    node = Node(config, tmp_path / "relay.log")
    await node.start()
    try:
        await eventually(lambda: len(relay_children(node.process.pid)) == 2, what="two relays")
        await eventually(lambda: len(logged(node.log, "listening")) == 2, what="both relays listening")
        victim = relay_children(node.process.pid)[0]
        os.kill(victim, signal.SIGKILL)
        await eventually(lambda: len(logged(node.log, "relay process ended; starting it again")) == 1,
                         what="the supervisor noticing")
        await eventually(lambda: len(logged(node.log, "listening")) == 3, what="a new relay listening")
        assert victim not in relay_children(node.process.pid)
        deadline = asyncio.get_running_loop().time() + 60
        await asyncio.gather(*(send_until_accepted([node.port], opened["seller_alias"], n, deadline) for n in range(10)))
        await eventually(lambda: len(arrivals(sink)) == 10, what="mail flowing again")
    finally:
        await node.stop()


async def test_the_relays_end_with_their_supervisor_even_after_kill_9(tmp_path, sink):
    config, _ = two_processes(tmp_path, sink)
    node = Node(config, tmp_path / "relay.log")
    await node.start()
    await eventually(lambda: len(relay_children(node.process.pid)) == 2, what="two relays")
    relays = relay_children(node.process.pid)
    await node.kill()
    await eventually(lambda: not node._listening(), what="nobody left on the port")
    await eventually(lambda: not any(Path(f"/proc/{pid}").exists() and
                                     b"relay.cli" in Path(f"/proc/{pid}/cmdline").read_bytes() for pid in relays),
                     what="both relays gone")


async def test_a_relay_that_cannot_start_stops_the_supervisor_with_a_reason(tmp_path, sink):
    config, _ = two_processes(tmp_path, sink)
    text = Path(config).read_text()
    Path(config).write_text(text.replace("[dkim]", "[dkim_]") + '\n[dkim]\nkey_file = "missing.pem"\n')
    done = run_cli("--config", config, "serve")
    assert done.returncode != 0
    assert "missing.pem" in done.stderr and "Traceback" not in done.stderr
