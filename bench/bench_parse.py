"""Parse throughput: Jeeves' parser vs the bare ``email.message_from_bytes`` on the same messages.

    python bench/bench_parse.py [N]

The reference only builds a compat32 message tree; Jeeves also decodes headers and charsets
(policy.default), converts HTML, and splits new text from quoted history — the ratio is the
price of that work.
"""

from __future__ import annotations

import email
import statistics
import sys
import time

sys.path.insert(0, str(__import__("pathlib").Path(__file__).resolve().parent.parent))

from bench.common import message_pool  # noqa: E402
from jeeves.parsing import parse_email  # noqa: E402


def rate(fn, raws, repeats=3) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        for raw in raws:
            fn(raw)
        times.append(time.perf_counter() - start)
    return len(raws) / statistics.median(times)


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 20_000
    raws = message_pool(n)
    repeats = 1 if n >= 10_000 else 3
    bare = rate(email.message_from_bytes, raws, repeats)
    bare_text = rate(lambda r: email.message_from_bytes(r).get_payload(decode=True), raws, repeats)
    jeeves = rate(parse_email, raws, repeats)
    print(f"parse: {n} real messages, {sum(map(len, raws)) / n / 1024:.1f} KiB average")
    print(f"{'parser':45} {'msg/s':>10} {'ratio':>8}")
    print(f"{'email.message_from_bytes (reference)':45} {bare:10.0f} {1.0:8.2f}")
    print(f"{'  + decode the body payload':45} {bare_text:10.0f} {bare_text / bare:8.2f}")
    print(f"{'jeeves.parsing.parse_email':45} {jeeves:10.0f} {jeeves / bare:8.2f}")


if __name__ == "__main__":
    main()
