"""Property: whatever bytes arrive, the parser returns and the message is stored (issue: faults)."""

from __future__ import annotations

import random

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from jeeves.parsing import parse_email
from jeeves.storage import NewMessage, Store

CHARSETS = ["utf-8", "latin-1", "x-unknown", "utf-7", "", "us-ascii\x00", "gb2312", "bogus\"quote"]
ENCODINGS = ["7bit", "8bit", "base64", "quoted-printable", "x-uuencode", "garbage"]


@st.composite
def broken_messages(draw) -> bytes:
    """Plausible-but-broken MIME: bad boundaries, charsets, encodings, nesting, garbage, header floods."""
    headers = [b"From: " + draw(st.binary(max_size=40)), b"Subject: " + draw(st.binary(max_size=80))]
    if draw(st.booleans()):
        headers.append(b"Message-ID: <" + draw(st.binary(max_size=30)) + b">")
    if draw(st.booleans()):
        headers.append(b"Date: " + draw(st.sampled_from([b"Mon, 1 Jan 2001 10:00:00 +0000", b"yesterday", b"", b"32 Foo 99999 99:99"])))
    headers += [b"X-Flood-%d: v" % i for i in range(draw(st.sampled_from([0, 0, 10, 10_000])))]
    depth = draw(st.integers(0, 4))
    boundary = draw(st.sampled_from([b"b1", b"", b"\"unterminated", b"x" * 200]))
    charset = draw(st.sampled_from(CHARSETS)).encode()
    encoding = draw(st.sampled_from(ENCODINGS)).encode()
    body = draw(st.binary(max_size=2000))
    part = b"Content-Type: text/plain; charset=" + charset + b"\nContent-Transfer-Encoding: " + encoding + b"\n\n" + body
    for _ in range(depth):
        close = b"\n--" + boundary + b"--\n" if draw(st.booleans()) else b""
        part = b"Content-Type: multipart/mixed; boundary=" + boundary + b"\n\n--" + boundary + b"\n" + part + close
    return b"\n".join(headers) + b"\n" + part


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(broken_messages())
def test_parser_never_raises_on_broken_mime(raw):
    parsed = parse_email(raw)
    assert isinstance(parsed.new_text, str) and isinstance(parsed.subject, str)


@settings(max_examples=60, deadline=None)
@given(st.binary(max_size=5000))
def test_parser_never_raises_on_binary_garbage(raw):
    parse_email(raw)


def test_broken_messages_are_all_stored(tmp_path):
    """Every generated message is stored, byte for byte, and none is lost."""
    store = Store(f"sqlite:///{tmp_path / 'j.db'}")
    rng = random.Random(7)
    raws = {bytes(rng.getrandbits(8) for _ in range(rng.randint(0, 3000))) + b"%d" % i for i in range(200)}
    raws |= {b"Content-Type: multipart/mixed; boundary=\"\n\n--\n" + b"\xff" * i for i in range(50)}
    refs = store.store_batch([NewMessage(raw=r, parsed=parse_email(r)) for r in raws])
    assert store.counts().messages == len(raws) == len({ref.pk for ref in refs})
    assert {store.get_message(ref.pk).raw for ref in refs} == raws
