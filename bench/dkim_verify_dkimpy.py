#!/usr/bin/python3
"""dkim_verify_dkimpy.py: how fast dkimpy verifies the benchmark's messages.

Owns the dkimpy figures of the DKIM benchmark (bench/run runs it after
dkim_bench).  It reads what dkim_bench left in --dir: keys.txt, one
"name record" line per key, and index.txt, one "size alg file" line per
message signed by sealpost.  Each message is verified with dkim.verify and a
dnsfunc answering from those records in memory, in rounds of --seconds of
CPU time, as dkim_bench counts it, and the median rate of --rounds rounds is
printed in dkim_bench's format:

    result op=verify size=4k bytes=4866 alg=rsa-sha256 impl=dkimpy
           rate=350.2 messages=700 rounds=5

Run it with Debian's Python (/usr/bin/python3), where python3-dkim lives.
A verification that does not pass stops it with exit status 1.
"""

import argparse
import os
import statistics
import sys
import time

import dkim


def read_records(path):
    """The key records of keys.txt, by name without the final dot."""
    records = {}
    with open(path, encoding="ascii") as lines:
        for line in lines:
            name, record = line.rstrip("\n").split(" ", 1)
            records[name.lower()] = record.encode("ascii")
    return records


def memory_dns(records):
    """A dnsfunc for dkim.verify that answers from records."""

    def lookup(name, timeout=5):
        del timeout  # nothing to wait for
        text = name.decode("ascii") if isinstance(name, bytes) else name
        return records.get(text.rstrip(".").lower())

    return lookup


def verify_once(message, dnsfunc, label):
    if not dkim.verify(message, dnsfunc=dnsfunc):
        sys.exit(f"dkim_verify_dkimpy: {label}: dkimpy did not verify "
                 "sealpost's signature")


def time_message(message, dnsfunc, label, rounds, seconds):
    """Median messages per second over the rounds, and messages done."""
    rates = []
    done_total = 0

    # One warm-up round, untimed, as dkim_bench does.
    verify_once(message, dnsfunc, label)
    for _ in range(rounds):
        done = 0
        start = time.process_time()
        while True:
            verify_once(message, dnsfunc, label)
            done += 1
            elapsed = time.process_time() - start
            if elapsed >= seconds:
                break
        rates.append(done / elapsed)
        done_total += done
    return statistics.median(rates), done_total


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--dir", required=True,
                        help="dkim_bench's output directory")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--seconds", type=float, default=0.4)
    args = parser.parse_args()

    dnsfunc = memory_dns(read_records(os.path.join(args.dir, "keys.txt")))
    with open(os.path.join(args.dir, "index.txt"), encoding="ascii") as index:
        entries = [line.split() for line in index if line.strip()]
    for size, alg, name in entries:
        with open(os.path.join(args.dir, name), "rb") as file:
            message = file.read()
        rate, done = time_message(message, dnsfunc, f"{size} {alg}",
                                  args.rounds, args.seconds)
        print(f"result op=verify size={size} bytes={len(message)} alg={alg} "
              f"impl=dkimpy rate={rate:.1f} messages={done} "
              f"rounds={args.rounds}", flush=True)


if __name__ == "__main__":
    main()
