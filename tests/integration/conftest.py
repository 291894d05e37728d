"""Shared helpers for sealpost's integration tests.

The tests drive the real binaries named by the environment that meson sets
(SEALPOST, SEALPOSTD) and read test material from SEALPOST_TESTDATA.  Run
them through "meson test" (or "make check"), which sets all of it.
"""
import json
import os
import pathlib
import subprocess

import pytest

SEALPOST = os.environ.get("SEALPOST", "sealpost")
SEALPOSTD = os.environ.get("SEALPOSTD", "sealpostd")
DATA = pathlib.Path(os.environ.get(
    "SEALPOST_TESTDATA",
    pathlib.Path(__file__).resolve().parent.parent / "data"))
CASES = DATA / "cases"
CORPUS = DATA / "corpus" / "dkim"


def sealpost(*args, stdin=None, timeout=60):
    """Run the sealpost CLI; returns the CompletedProcess (bytes output)."""
    return subprocess.run([SEALPOST, *map(str, args)], input=stdin,
                          capture_output=True, timeout=timeout)


def verify_json(path, dns_file, *extra):
    """Verify one file and return (exit status, parsed JSON report)."""
    done = sealpost("dkim", "verify", "--json", "--dns-file", dns_file,
                    *extra, path)
    assert done.stderr == b"", done.stderr.decode(errors="replace")
    return done.returncode, json.loads(done.stdout)


def statuses(report):
    """The RFC 8601 status of each signature in a JSON report."""
    return [sig["status"] for sig in report["signatures"]]


@pytest.fixture
def tmp(tmp_path):
    return tmp_path
