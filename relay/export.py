"""A thread as an mbox file, for support staff: every message in order, as the party who received it saw it.

A message whose body is no longer kept (past [retention] days, or refused
before anything was made of it) is still there, as a short note written by
the relay with what the log says of it, so the file holds the whole thread.
Each message carries X-Relay-Verdict and X-Relay-Rule for the reader.
"""
from __future__ import annotations

import mailbox
import os
import tempfile
from datetime import datetime

from .standard import letter


def _stamped(body: bytes, message: dict) -> bytes:
    head = f"X-Relay-Verdict: {message['verdict']}\r\nX-Relay-Rule: {message['rule'] or '-'}\r\n"
    head += f"X-Relay-Message: {message['id']}\r\n"
    return head.encode("ascii") + body


def _note(message: dict, retention_days: float) -> bytes:
    why = ("its body was purged after the retention period" if message["verdict"] == "forwarded"
           else "the relay did not deliver it, so no copy was made")
    lines = [f"{message['from']['role'].capitalize()} to {message['to']['role']}, {message['received_at']}.",
             f"Verdict: {message['verdict']}" + (f" (rule {message['rule']})" if message["rule"] else "") + ".",
             f"Reason: {message['reason']}" if message["reason"] else "",
             f"Not kept: {why} ([retention] days = {retention_days:g}).",
             ]
    return letter(sender_name=message["from"]["role"].capitalize(), sender_alias=message["from"]["alias"],
                  recipient=message["to"]["alias"], subject=message["subject"] or "(no subject)",
                  body="\n".join(line for line in lines if line) + "\n",
                  message_id=f"<export-{message['id']}@relay.invalid>",
                  date=datetime.fromisoformat(message["received_at"]))


def write_mbox(thread: list, out, retention_days: float, progress=None) -> int:
    """thread: MessageCenter.bodies(); writes the mbox to the binary stream out; returns how many messages."""
    handle, path = tempfile.mkstemp(suffix=".mbox")
    os.close(handle)
    count = 0
    try:
        box = mailbox.mbox(path, create=True)
        box.lock()
        items = progress(thread, len(thread), "exporting") if progress else thread
        for message, bodies in items:
            moment = datetime.fromisoformat(message["received_at"])
            for raw in [b.body for b in bodies] or [_note(message, retention_days)]:
                entry = mailbox.mboxMessage(_stamped(raw, message))
                entry.set_from(message["from"]["alias"], moment.utctimetuple())
                box.add(entry)
                count += 1
        box.flush()
        box.unlock()
        box.close()
        with open(path, "rb") as written:
            while chunk := written.read(1 << 16):
                out.write(chunk)
    finally:
        os.unlink(path)
    return count



