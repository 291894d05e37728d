"""Shared helpers for sealpost's integration tests.

The tests drive the real binaries named by the environment that meson sets
(SEALPOST, SEALPOSTD) and read test material from SEALPOST_TESTDATA.  Run
them through "meson test" (or "make check"), which sets all of it.
"""
import fcntl
import json
import os
import pathlib
import shutil
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


def node_clients():
    """The npm packages of tests/integration/node (nodemailer, the
    sparkpost client, mailparser), installed from its lock file into the
    build tree once, under a lock since tests run side by side; returns
    the directory to run node in."""
    source = pathlib.Path(os.environ.get("SEALPOST_SOURCE", ".")) / \
        "tests" / "integration" / "node"
    where = pathlib.Path(os.environ.get("SEALPOST_BUILD", "/tmp")) / \
        "node-clients"
    where.mkdir(parents=True, exist_ok=True)
    with open(where / ".install-lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        wanted = json.loads((source / "package.json").read_text())
        lock_file = (source / "package-lock.json").read_bytes()
        installed = where / "package-lock.json"
        if (not installed.exists() or installed.read_bytes() != lock_file or
                any(not (where / "node_modules" / name).is_dir()
                    for name in wanted["dependencies"])):
            for name in ("package.json", "package-lock.json"):
                shutil.copy(source / name, where)
            done = subprocess.run(["npm", "ci", "--no-audit", "--no-fund"],
                                  cwd=where, capture_output=True,
                                  timeout=300)
            assert done.returncode == 0, done.stderr.decode()
    return str(where)
