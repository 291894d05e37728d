"""A running sealpostd for tests that talk SMTP to it.

  Sealpostd(tmp_path, config="", port=None, open_files=None)
      A context manager: writes a configuration (data_dir under tmp_path,
      smtp_listen on 127.0.0.1 and a free port, plus the lines in config),
      starts sealpostd and waits until its SMTP listener is up.  Unless
      config says where mail goes (a smart host, routes, a resolver),
      delivery is held, so messages stay in the spool.  With
      open_files, sealpostd runs under that limit on open files (soft and
      hard).

  Methods and attributes:
      port, address, data_dir, config_path
      http_port                  the HTTP API's (unless config sets one)
      start() / stop(sig=SIGTERM) / kill() (SIGKILL) / restart()
      log()                      everything sealpostd wrote to stderr
      sealpost(*args)            the CLI on the same configuration
      queue()                    [dict] from "queue list --json"
      raw(queue_id)              the stored bytes of a message
      apikey(name, *domains)     a new API key
      strip_added(raw)           raw without the fields sealpost added
                                 (DKIM-Signature, Received, and Message-ID
                                 and Date when they were added), for byte
                                 comparisons
"""
import json
import os
import re
import resource
import signal
import subprocess
import sys
import time

from conftest import SEALPOST, SEALPOSTD
from dnsserver import free_port


class Sealpostd:
    def __init__(self, tmp_path, config="", port=None, open_files=None):
        self.dir = tmp_path
        self.data_dir = tmp_path / "data"
        self.port = port or free_port()
        self.address = f"127.0.0.1:{self.port}"
        self.config_path = tmp_path / "sealpost.conf"
        self.http_port = free_port()
        http = "" if "http_listen" in config else \
            f"http_listen = 127.0.0.1:{self.http_port}\n"
        self.config_path.write_text(
            f"data_dir = {self.data_dir}\n"
            f"smtp_listen = {self.address}\n"
            "dkim_check_interval = 1h\n" + http + self.hold(config) + config)
        self.log_path = tmp_path / "sealpostd.log"
        self.process = None
        self.open_files = open_files

    @staticmethod
    def hold(config):
        """Messages stay in the spool unless the test configures where
        they go: nothing leaves for the Internet's MX hosts."""
        if any(key in config for key in ("delivery_smarthost",
                                         "delivery_routes", "resolver",
                                         "delivery_hold")):
            return ""
        return "delivery_hold = yes\n"

    def _limit_files(self):
        """In the child, before exec: the open-file limit asked for."""
        if self.open_files is not None:
            resource.setrlimit(resource.RLIMIT_NOFILE,
                               (self.open_files, self.open_files))

    def start(self, wait=20):
        self.log_file = open(self.log_path, "ab")
        self.process = subprocess.Popen(
            [SEALPOSTD, "--config", str(self.config_path)],
            stdout=self.log_file, stderr=self.log_file,
            preexec_fn=self._limit_files)
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            if "listening service=smtp" in self.log():
                return self
            if self.process.poll() is not None:
                break
            time.sleep(0.05)
        raise RuntimeError(f"sealpostd did not listen: {self.log()}")

    def stop(self, sig=signal.SIGTERM):
        if self.process is not None and self.process.poll() not in (None, 0):
            # It ended by itself (a crash, a sanitizer's report): its log
            # goes where pytest shows it beside the failure it causes.
            print(f"sealpostd had ended, status {self.process.returncode}:"
                  f"\n{self.log()[-8000:]}", file=sys.stderr)
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(sig)
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        if self.process is not None:
            self.log_file.close()
        return self.process.returncode if self.process else None

    def kill(self):
        return self.stop(signal.SIGKILL)

    def restart(self):
        self.stop()
        # The log is kept across restarts: cut it so start() waits anew.
        self.log_path.write_bytes(b"")
        return self.start()

    def log(self):
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return ""

    def sealpost(self, *args, stdin=None, check=True):
        done = subprocess.run([SEALPOST, "--config", str(self.config_path),
                               *map(str, args)], input=stdin,
                              capture_output=True, timeout=60)
        if check:
            assert done.returncode == 0, done.stderr.decode()
        return done

    def queue(self):
        out = self.sealpost("queue", "list", "--json").stdout
        return [json.loads(line) for line in out.splitlines()]

    def raw(self, queue_id):
        return self.sealpost("queue", "show", queue_id, "--raw").stdout

    def apikey(self, name, *domains):
        args = ["apikey", "create", "--name", name]
        for domain in domains:
            args += ["--domain", domain]
        return self.sealpost(*args).stdout.decode().strip()

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()


def strip_added(raw, original=b""):
    """The stored message without the fields sealpost adds: its
    DKIM-Signature fields (at the top), its Received field (next), and
    Message-ID and Date unless the original had them."""
    while raw.startswith(b"DKIM-Signature: "):
        raw = raw[re.search(rb"\r\n(?![ \t])", raw).end():]
    assert raw.startswith(b"Received: "), raw[:80]
    end = re.search(rb"\r\n(?![ \t])", raw).end()
    rest = raw[end:]
    head = original.split(b"\r\n\r\n", 1)[0].lower()
    for name in (b"message-id", b"date"):
        if not re.search(rb"(^|\r\n)" + name + rb":", head):
            field = re.match(rb"(?i)" + name + rb":.*?\r\n(?![ \t])", rest,
                             re.S)
            if field:
                rest = rest[field.end():]
    return rest
