"""Issue 13, acceptance: hypothesis drives the fuzz generator through the parse-filter-rewrite path.

The generator of tests/test_fuzz.py (corpus seeds, the mutations the probes
found trouble with) makes its choices from a Random that hypothesis controls,
so a failure is shrunk to the fewest mutations that still show it. Each message
goes through `relay.worker.prepare`, the code a worker process runs, here in
this process. For every message:
- it is decided: a judgement, or MalformedMessage (the relay's 550 5.6.0), and
  nothing else is raised;
- what would be delivered has no real address of the sender readable in it
  (tests/reader.py) and nothing the relay's own leak check would stop;
- it is done within HANG seconds (a hang, not a speed test: how many took over
  2 s is printed with the other figures).

RELAY_FUZZ_MESSAGES sets the number of examples (default 150; the issue's long
run used 10,000). The SMTP half of the fuzzing is tests/test_fuzz.py.
"""
from __future__ import annotations

import os
import signal
import time
from collections import Counter

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from reader import readable_addresses
from test_fuzz import PARTIES, Generator, _dump

from filters.view import Facts
from relay.config import Config
from relay.mime import MalformedMessage
from relay.rewrite import Plan
from relay.scrub import AddressScrubber
from relay.worker import prepare

EXAMPLES = int(os.environ.get("RELAY_FUZZ_MESSAGES", "150"))
HANG = 30
FILTERS = Config().filters
SENDER_ALIAS, RECIPIENT_ALIAS = "k3v9q2x7mzp4t8wd@relay.test", "p8wd2x7mzk3v9q4t@relay.test"
tally: Counter = Counter()
slowest = [0.0]


@pytest.fixture(scope="module", autouse=True)
def figures():
    yield
    print(f"\nfuzz (pipeline): {sum(tally.values())} messages: {dict(tally)}, slowest {slowest[0]:.2f} s")


def _hang(signum, frame):
    raise TimeoutError(f"a message took over {HANG} s")


def _plan(sender: str, recipient: str) -> Plan:
    return Plan(sender_name="Shop", sender_alias=SENDER_ALIAS, recipient_address=recipient,
                message_id="<fuzz@relay.test>", in_reply_to=(), references=(),
                scrubber=AddressScrubber({sender: SENDER_ALIAS, recipient: RECIPIENT_ALIAS}),
                domain="relay.test", cid_key=b"k" * 16)


@settings(max_examples=EXAMPLES, deadline=None, database=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(choices=st.randoms(use_true_random=False), parties=st.sampled_from(PARTIES), seller_writes=st.booleans())
def test_every_fuzzed_message_is_decided_and_leaks_no_address(choices, parties, seller_writes):
    buyer, seller = parties
    sender, recipient = (seller, buyer) if seller_writes else (buyer, seller)
    raw = Generator(choices).message(sender, recipient, 0)
    facts = Facts(direction="seller_to_buyer" if seller_writes else "buyer_to_seller",
                  conversation_aliases=frozenset({SENDER_ALIAS, RECIPIENT_ALIAS}),
                  party_addresses=frozenset({sender, recipient}))
    previous = signal.signal(signal.SIGALRM, _hang)
    signal.setitimer(signal.ITIMER_REAL, HANG)
    started = time.monotonic()
    try:
        outgoing = prepare(raw, _plan(sender, recipient), FILTERS, facts, "en")
    except MalformedMessage:
        tally["refused as malformed"] += 1
        return
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
        took = time.monotonic() - started
        slowest[0] = max(slowest[0], took)
        tally["over 2 s"] += took > 2
    if outgoing.message is None:
        tally[f"bounced ({outgoing.judgement.bounce.rule})"] += 1
        return
    tally["delivered"] += 1
    if outgoing.leaks or readable_addresses(outgoing.message, [sender]):
        _dump(0, raw, outgoing.message)  # RELAY_FUZZ_DUMP: the input and the output, to read
    assert not outgoing.leaks, outgoing.leaks
    assert not readable_addresses(outgoing.message, [sender])
