"""`relay logs`: what an operator reads, from the file `relay serve` writes with `[log] file`."""
from __future__ import annotations

import asyncio
import json
import signal
import socket
import stat
import subprocess
import sys
from datetime import datetime, timedelta

import aiosmtplib
import pytest
from conftest import BUYER, DEADLINE, ROOT, SELLER, crlf, eventually, on_a_terminal, run_cli

from relay import cli, logview
from relay.commands import Failure
from relay.config import Config, load

OTHER_BUYER = "bob.buyer@example.com"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def entries(path) -> list[dict]:
    """The JSON objects in a log file; a line still being written is not one yet."""
    found = []
    for line in path.read_text().splitlines() if path.exists() else []:
        try:
            found.append(json.loads(line))
        except ValueError:
            pass
    return found


def entry(minutes_ago: float = 0, **fields) -> str:
    when = (datetime.now().astimezone() - timedelta(minutes=minutes_ago)).strftime("%Y-%m-%dT%H:%M:%S%z")
    return json.dumps({"time": when, "level": "INFO", "logger": "relay.decision", **fields})


def shown(capsys, config: Config, *argv: str) -> list[str]:
    """`relay logs ARGV` in this process, parsed by the relay's own parser; its output lines."""
    logview.run(cli._parser().parse_args(["logs", *argv]), config)
    return capsys.readouterr().out.splitlines()


def event_of(line: str) -> str:
    return line.split()[3]  # date, time, level, event


async def open_conversation(config, buyer: str) -> dict:
    """`relay conversation open`, as the marketplace backend runs it beside the running relay."""
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "relay.cli", "--config", str(config), "conversation", "open", "--buyer", buyer,
        "--seller", SELLER, stdout=asyncio.subprocess.PIPE, cwd=ROOT)
    output, _ = await asyncio.wait_for(process.communicate(), 60)
    return json.loads(output)


async def test_conversation_shows_exactly_its_lines_from_the_file_serve_writes(tmp_path, sink, capsys):
    config = tmp_path / "relay.toml"
    config.write_text(
        f'[server]\nport = {free_port()}\nworkers = 1\nshutdown_grace = 5\n'
        f'[delivery]\nsmarthost = "127.0.0.1:{sink.port}"\n'
        '[aliases]\ndomain = "relay.test"\n[database]\nurl = "sqlite:///relay.db"\n[auth]\nrequire = "none"\n'
        '[log]\nformat = "text"\nfile = "relay.jsonl"\n'
    )
    log_file = tmp_path / "relay.jsonl"
    with open(tmp_path / "stderr.log", "wb") as stderr:
        process = await asyncio.create_subprocess_exec(sys.executable, "-m", "relay.cli", "--config", str(config),
                                                       "serve", stderr=stderr, cwd=ROOT)
    try:
        [listening] = await eventually(lambda: [e for e in entries(log_file) if e["event"] == "listening"],
                                       what="the listening line in [log] file", timeout=60)
        port = int(listening["address"].rsplit(":", 1)[1])
        opened = await asyncio.gather(*(open_conversation(config, buyer) for buyer in (BUYER, OTHER_BUYER)))
        first, second = (conversation["conversation_id"] for conversation in opened)
        for conversation, buyer in zip(opened, (BUYER, OTHER_BUYER)):
            async with aiosmtplib.SMTP(hostname="127.0.0.1", port=port, start_tls=False) as client:
                await client.sendmail(buyer, [conversation["seller_alias"]],
                                      crlf(f"From: {buyer}\nSubject: hello\n\nIs it still for sale?\n"))
        async with aiosmtplib.SMTP(hostname="127.0.0.1", port=port, start_tls=False) as client:
            await client.mail("stranger@example.net")
            with pytest.raises(aiosmtplib.SMTPRecipientRefused):
                await client.rcpt(opened[0]["seller_alias"])  # refused at RCPT, in the first conversation
        await sink.wait_for(2)
        await eventually(lambda: len([e for e in entries(log_file) if e["event"] == "delivered"]) == 2,
                         what="both deliveries in the log")
    finally:
        process.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(process.wait(), 30) == 0

    assert stat.S_IMODE(log_file.stat().st_mode) == 0o600
    assert b" INFO listening" in (tmp_path / "stderr.log").read_bytes()  # stderr keeps format = "text"
    written = log_file.read_bytes()
    expected = [e["event"] for e in entries(log_file) if e.get("conversation") == first]
    assert sorted(expected) == ["delivered", "forwarded", "refused"]  # the delivery line names it too

    result = run_cli("--config", str(config), "logs", "--conversation", first, "--file", str(log_file))
    assert result.returncode == 0 and result.stderr == "" and "\x1b" not in result.stdout  # a pipe: no colour
    lines = result.stdout.splitlines()
    assert [event_of(line) for line in lines] == expected
    assert all(f" conv={first} " in line for line in lines) and second not in result.stdout
    forwarded = next(line for line in lines if event_of(line) == "forwarded")
    assert " buyer_to_seller rule=- reply=\"250 2.0.0 Queued" in forwarded and BUYER not in forwarded

    # Without --file it reads [log] file, relative to relay.toml; the filters combine.
    loaded = load(str(config))
    [line] = shown(capsys, loaded, "--conversation", second, "--verdict", "forwarded")
    assert event_of(line) == "forwarded" and f" conv={second} " in line
    [line] = shown(capsys, loaded, "--verdict", "refused", "--since", "1h")
    assert event_of(line) == "refused" and f" conv={first} " in line and "stage=rcpt" in line
    assert log_file.read_bytes() == written  # reading the log did not add to it


def test_verdict_and_since_filter_and_combine(tmp_path, capsys):
    log_file = tmp_path / "relay.jsonl"
    log_file.write_text("\n".join([
        entry(120, event="bounced", verdict="bounced", conversation="c1", rule="links", reason="a link"),
        entry(10, event="forwarded", verdict="forwarded", conversation="c1", direction="buyer_to_seller"),
        entry(5, event="bounced", verdict="bounced", conversation="c2", rule="contact"),
        entry(2, event="refused", stage="rcpt", reply="550 5.7.1 no"),
        entry(1, event="delivered", logger="relay.delivery", queue_id=7, answer="250 ok"),
    ]) + "\n")
    config = Config(log={"file": str(log_file)})

    assert [event_of(line) for line in shown(capsys, config)] == ["bounced", "forwarded", "bounced", "refused",
                                                                   "delivered"]
    assert [event_of(line) for line in shown(capsys, config, "--since", "1h")] == ["forwarded", "bounced", "refused",
                                                                                  "delivered"]
    assert len(shown(capsys, config, "--since", "30s")) == 0
    [old, new] = shown(capsys, config, "--verdict", "bounced")
    assert " conv=c1 rule=links reason=\"a link\"" in old and " conv=c2 rule=contact" in new
    assert shown(capsys, config, "--verdict", "bounced", "--since", "1h") == [new]
    assert [event_of(line) for line in shown(capsys, config, "--verdict", "refused")] == ["refused"]
    assert shown(capsys, config, "--verdict", "bounced", "--conversation", "c1", "--since", "1h") == []
    assert shown(capsys, config, "--conversation", "c") == []  # the whole ID, not a prefix


def test_since_wants_an_age():
    for good, seconds in (("30s", 30), ("15m", 900), ("1h", 3600), ("7d", 604800)):
        assert logview.age(good).total_seconds() == seconds
    with pytest.raises(SystemExit) as exited:
        cli._parser().parse_args(["logs", "--since", "an hour"])
    assert exited.value.code == 2


def test_lines_that_are_not_json_are_shown_as_they_are_unless_filtered(tmp_path, capsys):
    log_file = tmp_path / "mixed.log"
    log_file.write_text("2026-12-04T17:52:21 INFO listening address=127.0.0.1:2525\n"
                        "\n"
                        "[1, 2]\n"
                        "{torn\x1b]0;owned\x07\n"
                        + entry(event="forwarded", verdict="forwarded", conversation="c1", reason="\x1b[2Jgone")
                        + "\n")
    config = Config()
    text, listed, torn, forwarded = shown(capsys, config, "--file", str(log_file))
    assert text == "2026-12-04T17:52:21 INFO listening address=127.0.0.1:2525" and listed == "[1, 2]"
    assert torn == "{torn\\x1b]0;owned\\x07"  # a line cannot drive the terminal it is read on
    assert 'reason="\\x1b[2Jgone"' in forwarded and "\x1b" not in forwarded
    assert [event_of(line) for line in shown(capsys, config, "--file", str(log_file), "--conversation", "c1")] == [
        "forwarded"]


def test_a_missing_file_is_one_line_and_standard_input_is_read_without_one(tmp_path, capsys):
    with pytest.raises(Failure, match=r"^cannot read .*nowhere\.jsonl: No such file or directory$"):
        shown(capsys, Config(), "--file", str(tmp_path / "nowhere.jsonl"))
    config = tmp_path / "relay.toml"
    config.write_text('[log]\nfile = "gone.jsonl"\n')
    result = run_cli("--config", str(config), "logs")
    assert result.returncode == 1 and result.stderr == f"relay: cannot read {tmp_path / 'gone.jsonl'}: " \
                                                       "No such file or directory\n"

    config.write_text('[log]\nformat = "json"\n')  # no file: journalctl -o cat | relay logs
    result = subprocess.run([sys.executable, "-m", "relay.cli", "--config", str(config), "logs", "--verdict",
                             "forwarded"], input=entry(event="forwarded", verdict="forwarded") + "\nnot json\n",
                            capture_output=True, text=True, timeout=60, cwd=ROOT)
    assert result.returncode == 0 and [event_of(line) for line in result.stdout.splitlines()] == ["forwarded"]


def test_serve_says_in_one_line_when_the_log_file_cannot_be_opened(tmp_path):
    config = tmp_path / "relay.toml"
    config.write_text('[log]\nfile = "no/such/folder/relay.jsonl"\n')
    result = run_cli("--config", str(config), "serve")
    assert result.returncode == 2
    assert result.stderr == f"relay: [log] file {tmp_path / 'no/such/folder/relay.jsonl'}: No such file or directory\n"


def test_colour_on_a_terminal_unless_no_color_is_set(tmp_path):
    log_file = tmp_path / "relay.jsonl"
    log_file.write_text(entry(event="failed", verdict="failed", level="ERROR", conversation="c1") + "\n")
    _, coloured = on_a_terminal("logs", "--file", str(log_file))
    assert b"\x1b[1;31mERROR" in coloured and b"\x1b[31mfailed" in coloured
    assert b"\x1b" not in on_a_terminal("logs", "--file", str(log_file), NO_COLOR="1")[1]


async def test_follow_prints_appended_lines_across_rotation_and_truncation_until_ctrl_c(tmp_path):
    log_file = tmp_path / "relay.jsonl"
    log_file.write_text(entry(event="forwarded", verdict="forwarded", conversation="c1", size=1) + "\n")
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "relay.cli", "logs", "--follow", "--conversation", "c1", "--file", str(log_file),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, cwd=ROOT)

    async def next_line() -> str:
        return (await asyncio.wait_for(process.stdout.readline(), DEADLINE)).decode()

    def append(path, *lines: str, mode: str = "a") -> None:
        with open(path, mode) as handle:
            handle.write("".join(line + "\n" for line in lines))

    try:
        assert "size=1" in await next_line()
        append(log_file, entry(event="bounced", verdict="bounced", conversation="c2", size=2),
               entry(event="bounced", verdict="bounced", conversation="c1", size=3))
        assert "size=3" in await next_line()  # c2's line is not shown

        log_file.rename(tmp_path / "relay.jsonl.1")  # logrotate: moved away, a new file in its place
        append(tmp_path / "relay.jsonl.1", entry(event="refused", conversation="c1", size=4))
        append(log_file, entry(event="forwarded", verdict="forwarded", conversation="c2", size=5),
               entry(event="forwarded", verdict="forwarded", conversation="c1", size=6))
        assert "size=4" in await next_line()  # the old file's last lines first
        assert "size=6" in await next_line()

        append(log_file, entry(event="duplicate", verdict="duplicate", conversation="c1", size=7), mode="w")
        assert "size=7" in await next_line()  # copytruncate: read again from the start

        process.send_signal(signal.SIGINT)
        assert await asyncio.wait_for(process.wait(), DEADLINE) == 0
        assert await process.stderr.read() == b""
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
