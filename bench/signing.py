"""DKIM signing cost per message: dkimpy's own signer against relay/signing.py (dkimpy + OpenSSL).

Signs the same message N times with each, with a fresh 2048-bit key, and prints
CPU milliseconds per message; checks that both signatures verify with dkimpy.

    .venv/bin/python bench/signing.py --size 2k --count 500
"""
from __future__ import annotations

import argparse
import time

import dkim

from relay.signing import Signer, new_key


def message(size: int) -> bytes:
    head = (b"From: Ann <a1b2c3d4e5f6g7h8@relay.example>\r\nTo: orders@shop.example\r\nSubject: Your order\r\n"
            b"Date: Wed, 02 Dec 2026 10:00:00 +0000\r\nMessage-ID: <0123456789abcdef01234567@relay.example>\r\n"
            b"MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n")
    line = b"The parcel arrived today but the box was dented; please check it.\r\n"
    return head + line * max(1, (size - len(head)) // len(line))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", default="2k", help="bytes (k = 1024)")
    parser.add_argument("--count", type=int, default=300)
    args = parser.parse_args()
    size = int(args.size[:-1]) * 1024 if args.size.lower().endswith("k") else int(args.size)
    pem, public = new_key()
    raw = message(size)
    signer = Signer("relay.example", "relay", pem)

    def record(name, timeout=5):
        return f"v=DKIM1; k=rsa; p={public}".encode()

    def timed(sign) -> float:
        assert dkim.verify(sign(), dnsfunc=record)
        started = time.process_time()
        for _ in range(args.count):
            sign()
        return (time.process_time() - started) / args.count * 1000

    ours = timed(lambda: signer.sign(raw))
    theirs = timed(lambda: dkim.sign(raw, b"relay", b"relay.example", pem, canonicalize=(b"relaxed", b"relaxed"))
                   + raw)
    print(f"{len(raw)} bytes, {args.count} signatures each, CPU ms per message: "
          f"relay/signing.py {ours:.2f}, dkimpy's own RSA {theirs:.2f} ({theirs / ours:.0f}x)")


if __name__ == "__main__":
    main()
