"""Files wrapped inside text: what a reader can turn back into a file although no MIME part says so.

A uuencoded executable in a text/plain body is an attachment to every mail
client that decodes uuencode, and to every person who runs uudecode. The
attachment rule judges these files as it judges MIME parts: uuencode
(`begin 644 name` ... `end`, and `begin-base64`), yEnc (`=ybegin` ... `=yend`),
BinHex 4.0, base64 blocks pasted into text or carried in `data:` URIs, when
what they decode to is a file type the bytes announce. BinHex is reported
without its bytes: Python 3.11 no longer decodes it, and no allowed file
needs it.

Linear in the text: one scan per wrapping, anchored at line starts.
"""
from __future__ import annotations

import base64
import binascii
import re
from dataclasses import dataclass

import filetype


@dataclass(frozen=True)
class WrappedFile:
    filename: str
    wrapping: str
    """uuencode, yEnc, BinHex, base64."""
    data: bytes | None
    """The file's bytes; None where the relay cannot open the wrapping."""


_UU = re.compile(r"(?m)^begin(-base64)?[ \t]+([0-7]{3,4})[ \t]+([^\r\n]+?)[ \t]*\r?$")
_UU_END = re.compile(r"(?m)^(?:end|====)[ \t]*\r?$")
_YBEGIN = re.compile(r"(?m)^=ybegin[ \t][^\r\n]*?name=([^\r\n]+?)[ \t]*\r?$")
_YEND = re.compile(r"(?m)^=yend\b")
_BINHEX = re.compile(r"(?mi)^\(This file must be converted with BinHex[^\r\n]*\)[ \t]*\r?$")
# Three or more lines of nothing but base64, each at least 40 characters: what a paste of an
# encoded file looks like (and, in a quoted reply, with "> " in front).
_B64_BLOCK = re.compile(r"(?m)(?:^[ \t>]*[A-Za-z0-9+/]{40,}={0,2}[ \t]*\r?\n){2,}^[ \t>]*[A-Za-z0-9+/]{4,}={0,2}[ \t]*\r?$")
# Runs of 400 base64 characters or more, each found from its first character (the lookbehind), so
# ordinary words are stepped over inside the regex engine, not handed out as a match apiece.
_LONG_RUN = 400
_B64_RUN = re.compile(r"(?<![A-Za-z0-9+/])[A-Za-z0-9+/]{%d,}={0,2}" % _LONG_RUN)
_DATA_URI = re.compile(r"(?i)data:([\w.+-]+/[\w.+-]+)?(?:;[\w.+-]+=[^;,\s]*)*;base64,([A-Za-z0-9+/=\s]{16,})")
_NOT_B64 = re.compile(r"[^A-Za-z0-9+/]")


def _uudecode(lines: list[str]) -> bytes:
    out = []
    for line in lines:
        line = line.rstrip("\r")
        if not line:
            continue
        try:
            out.append(binascii.a2b_uu(line))
        except binascii.Error:
            # Some encoders write lines too short for their length byte; decode what is there.
            length = (ord(line[0]) - 32) & 63
            try:
                out.append(binascii.a2b_uu(line[: (length * 4 + 5) // 3 + 1].ljust((length * 4 + 5) // 3 + 1)))
            except binascii.Error:
                pass
    return b"".join(out)


def _b64(text: str) -> bytes | None:
    compact = _NOT_B64.sub("", text)
    try:
        return base64.b64decode(compact[: len(compact) - len(compact) % 4] if len(compact) % 4 == 1 else
                                compact + "=" * (-len(compact) % 4))
    except (binascii.Error, ValueError):
        return None


_YENC = bytes((b - 42) & 0xFF for b in range(256))


def _ydecode(body: str) -> bytes:
    """yEnc: every byte is 42 more than the file's; "=" escapes a byte 64 more again."""
    lines = [line.rstrip(b"\r") for line in body.encode("latin-1", "replace").split(b"\n")]
    raw = b"".join(line for line in lines if not line.startswith(b"=ypart"))
    first, *escaped = raw.split(b"=")
    out = [first.translate(_YENC)]
    for piece in escaped:
        if piece:
            out.append(bytes([(piece[0] - 64 - 42) & 0xFF]) + piece[1:].translate(_YENC))
    return b"".join(out)


def _file_kind(data: bytes | None) -> str | None:
    return filetype.guess_extension(data) if data else None


def find(text: str) -> list[WrappedFile]:
    """Every file wrapped in text, in the order it appears."""
    found: list[tuple[int, WrappedFile]] = []
    taken: list[tuple[int, int]] = []
    for begin in _UU.finditer(text):
        end = _UU_END.search(text, begin.end())
        stop = end.start() if end else len(text)
        lines = text[begin.end():stop].strip("\r\n").split("\n")
        data = _b64("".join(lines)) if begin.group(1) else _uudecode(lines)
        found.append((begin.start(), WrappedFile(begin.group(3).strip(), "uuencode", data)))
        taken.append((begin.start(), end.end() if end else len(text)))
        if end is None:
            break  # the file runs to the end of the text: nothing after it is a second one
    for begin in _YBEGIN.finditer(text):
        end = _YEND.search(text, begin.end())
        body = text[begin.end():end.start() if end else len(text)]
        found.append((begin.start(), WrappedFile(begin.group(1).strip(), "yEnc", _ydecode(body.lstrip("\r\n")))))
        taken.append((begin.start(), end.end() if end else len(text)))
        if end is None:
            break
    for marker in _BINHEX.finditer(text):
        found.append((marker.start(), WrappedFile("binhex-file.hqx", "BinHex", None)))
    pasted = [(m.start(), m.end(), m.group(0)) for m in _B64_BLOCK.finditer(text)]
    pasted += [(m.start(), m.end(), m.group(0)) for m in _B64_RUN.finditer(text)]
    pasted += [(m.start(2), m.end(2), m.group(2)) for m in _DATA_URI.finditer(text)]
    for start, end, block in pasted:
        if any(a <= start < b for a, b in taken):
            continue  # inside a uuencode or yEnc block already reported
        data = _b64(block)
        kind = _file_kind(data)
        if kind:
            # Text that decodes to bytes no file type announces (a PGP signature, a key) is not a file.
            found.append((start, WrappedFile(f"pasted-file.{kind}", "base64", data)))
            taken.append((start, end))
    return [wrapped for _, wrapped in sorted(found, key=lambda item: item[0])]
