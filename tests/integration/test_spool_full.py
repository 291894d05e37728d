"""The spool on a full filesystem: refuse, lose nothing, recover.

The test mounts a tmpfs of 8 MiB (as root: CI runs as root, and a run
that may not mount fails with the reason rather than skipping), starts the
spool driver's serve mode on it (tests/spool_driver.c), and then:

1. submits messages that are acknowledged;
2. fills the filesystem and submits again: with no free-space threshold
   set, every submission must fail with SP_EIO from its done callback;
3. frees the space and submits again in the same process: the spool must
   take messages again;
4. with a free-space threshold (min_free_bytes), fills the filesystem to
   under it: submissions are refused at once with SP_ELIMIT, and taken
   again once space is freed;
5. reads everything back: every acknowledged message is there, equal to
   what was sent.
"""
import os
import subprocess
import time

import pytest

DRIVER = os.environ.get("SEALPOST_SPOOL_DRIVER", "spool_driver")
MIB = 1 << 20


@pytest.fixture
def small_fs(tmp_path):
    """An 8 MiB tmpfs, unmounted afterwards."""
    mount = tmp_path / "small"
    mount.mkdir()
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=8m", "tmpfs", str(mount)],
        capture_output=True, text=True)
    if done.returncode != 0:
        pytest.fail("test_spool_full must mount a small tmpfs and could "
                    f"not ({done.stderr.strip()}); run it as root, as CI "
                    "does")
    try:
        yield mount
    finally:
        if subprocess.run(["umount", str(mount)]).returncode != 0:
            subprocess.run(["umount", "-l", str(mount)])


class Driver:
    """The driver's serve mode: submit on request, report each result."""

    def __init__(self, spool, min_free=None):
        args = [DRIVER, str(spool), "serve"]
        if min_free is not None:
            args.append(str(min_free))
        self.proc = subprocess.Popen(args, stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, text=True)

    def submit(self, count, size):
        """Submit count messages; return (acked {id: line}, failures)."""
        self.proc.stdin.write(f"submit {count} {size}\n")
        self.proc.stdin.flush()
        acked, failures = {}, []
        for line in self.proc.stdout:
            word = line.split()
            if word[0] == "end":
                return acked, failures
            if word[0] == "ok":
                acked[word[1]] = (word[2], word[3])
            elif word[0] == "fail":
                failures.append(word[2])
            elif word[0] == "refused":
                failures.append(word[1])
        raise AssertionError(f"driver ended early ({self.proc.wait()})")

    def quit(self):
        self.proc.stdin.write("quit\n")
        self.proc.stdin.close()
        assert self.proc.wait(timeout=60) == 0


def fill(path, leave=0):
    """Write path until the filesystem is full, or has only leave left.
    Unbuffered, so that closing the file cannot fail."""
    chunk = b"\0" * 65536
    with open(path, "wb", buffering=0) as filler:
        try:
            while True:
                stat = os.statvfs(path)
                room = stat.f_bavail * stat.f_frsize - leave
                if leave and room <= 0:
                    break
                filler.write(chunk[:room] if leave and room < 65536
                             else chunk)
        except OSError:
            pass


def test_full_filesystem_refuses_loses_nothing_and_recovers(small_fs,
                                                           capsys):
    spool = small_fs / "spool"
    filler = small_fs / "filler"
    acked = {}

    # Space: messages are taken.
    driver = Driver(spool)
    ok, failures = driver.submit(5, 10000)
    assert len(ok) == 5 and not failures
    acked.update(ok)

    # Full: every submission fails, through done, and nothing is taken.
    fill(filler)
    ok, failures = driver.submit(10, 300000)
    assert not ok, "a message was acknowledged on a full filesystem"
    assert failures == ["SP_EIO"] * 10, failures

    # Space again: the same process takes messages again.
    filler.unlink()
    ok, failures = driver.submit(10, 300000)
    assert len(ok) == 10 and not failures, failures
    acked.update(ok)
    driver.quit()

    # A threshold: refused at once under it, taken again above it.
    driver = Driver(spool, min_free=2 * MIB)
    fill(filler, leave=MIB)
    ok, failures = driver.submit(3, 1000)
    assert not ok and failures == ["SP_ELIMIT"] * 3, failures
    filler.unlink()
    time.sleep(0.6)  # the free-space answer is cached for 500 ms
    ok, failures = driver.submit(3, 1000)
    assert len(ok) == 3 and not failures, failures
    acked.update(ok)
    driver.quit()

    # Nothing acknowledged was lost or changed.
    done = subprocess.run([DRIVER, str(spool), "check"], capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    found = {}
    for line in done.stdout.splitlines():
        word = line.split()
        if word[0] == "have":
            assert word[4] == "good", line
            found[word[1]] = (word[2], word[3])
    for queue_id, expected in acked.items():
        assert found.get(queue_id) == expected, queue_id
    with capsys.disabled():
        print(f"\nspool full test: acknowledged={len(acked)} "
              f"recovered={len(found)}")
