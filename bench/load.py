"""A stand-in for the bridge side's CPU: `python -m bench.load --duty 0.12`.

Busy for `duty` of every 10 ms, asleep the rest, doing what a Python service does (dicts,
strings, lists over a working set of a few tens of MB) so that it uses the machine's caches
and memory as such a process does. The Teams -> Matrix throughput scenario runs its baseline
once more beside it, to tell how much of a gap is the machine being shared (the homeserver
slowed by other work on the other cores) and how much is work the bridge gives Synapse.
"""

from __future__ import annotations

import argparse
import random
import time

SLICE = 0.010


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.load")
    parser.add_argument("--duty", type=float, required=True, help="busy share, 0..1")
    args = parser.parse_args()
    duty = min(max(args.duty, 0.0), 1.0)
    words = [f"{i:x}-{i * 7919 % 100003}" for i in range(400_000)]
    table: dict[str, int] = {}
    rng = random.Random(1)
    print("ready", flush=True)
    while True:
        began = time.perf_counter()
        while time.perf_counter() - began < SLICE * duty:
            for _ in range(100):
                k = rng.randrange(len(words))
                table[words[k]] = k
            if len(table) > 100_000:
                table.clear()
        rest = SLICE - (time.perf_counter() - began)
        if rest > 0:
            time.sleep(rest)


if __name__ == "__main__":
    main()
