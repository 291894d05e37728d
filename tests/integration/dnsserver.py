"""A real DNS server for integration tests: dnsmasq serving TXT records.

Two ways to use it:

  Dnsmasq(records, port=...)   a context manager running dnsmasq on a
                               loopback port, for programs that can be told
                               which server and port to ask (sealpost's
                               --resolver 127.0.0.1@PORT).
  run_in_namespace(records, argv)
                               runs argv in a private network and mount
                               namespace where dnsmasq answers on
                               127.0.0.1:53 and /etc/resolv.conf names it,
                               for programs that only ask the system
                               resolver (OpenDKIM's tools).  Needs root, or
                               at least the right to unshare.

records maps a domain name to a TXT value: a str, cut into strings of 255
characters as DNS requires, or a list of str, served as exactly those
strings.  The zones named in local_zones are answered from the records
alone, so a name under them that is not in records is NXDOMAIN rather than
forwarded anywhere.

query_txt() is a minimal DNS client over UDP, to see what the server really
sends.  Run as a script ("dnsserver.py --inside CONFIG RESOLV -- argv"), this
file is the part of run_in_namespace that runs inside the namespace.
"""
import fcntl
import json
import os
import pathlib
import random
import socket
import struct
import subprocess
import sys
import tempfile
import time

DNSMASQ = "/usr/sbin/dnsmasq"
UNSHARE = "unshare"
STRING_MAX = 255

RCODE_NOERROR = 0
RCODE_SERVFAIL = 2
RCODE_NXDOMAIN = 3
RCODE_REFUSED = 5

TYPE_TXT = 16
CLASS_IN = 1


def txt_strings(value, size=STRING_MAX):
    """The character-strings that carry value: pieces of at most size."""
    if isinstance(value, (list, tuple)):
        return list(value)
    return [value[i:i + size] for i in range(0, len(value), size)] or [""]


def dnsmasq_config(records, local_zones=(), mx=(), hosts=()):
    """dnsmasq configuration text serving records (TXT), mx ((domain,
    host, preference) each), hosts ((name, address) each: an A or AAAA
    record) and owning local_zones."""
    lines = [f"mx-host={domain},{host},{preference}"
             for domain, host, preference in mx]
    lines += [f"host-record={name},{address}" for name, address in hosts]
    for zone in local_zones:
        lines.append(f"local=/{zone.strip('.')}/")
    for name, value in records.items():
        strings = txt_strings(value)
        for string in strings:
            if len(string.encode()) > STRING_MAX:
                raise ValueError(f"{name}: a TXT string over 255 octets")
            if any(c in string for c in '"\\\n'):
                raise ValueError(f"{name}: quote, backslash or newline in "
                                 f"a TXT string")
        quoted = ",".join(f'"{s}"' for s in strings)
        lines.append(f"txt-record={name.rstrip('.')},{quoted}")
    return "\n".join(lines) + "\n"


def free_port():
    """A UDP and TCP port on 127.0.0.1 that nothing listens on right now."""
    for _ in range(50):
        port = random.randint(20000, 60000)
        try:
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp, \
                    socket.socket(socket.AF_INET, socket.SOCK_STREAM) as tcp:
                udp.bind(("127.0.0.1", port))
                tcp.bind(("127.0.0.1", port))
                return port
        except OSError:
            continue
    raise RuntimeError("no free port on 127.0.0.1")


def _encode_name(name):
    out = b""
    for label in name.strip(".").split("."):
        out += bytes([len(label)]) + label.encode()
    return out + b"\0"


def _skip_name(packet, pos):
    while True:
        length = packet[pos]
        if length == 0:
            return pos + 1
        if length & 0xC0 == 0xC0:
            return pos + 2
        pos += 1 + length


def query_txt(name, address="127.0.0.1", port=53, timeout=1.0):
    """Ask address:port for the TXT records at name, over UDP.

    Returns (rcode, records), each record the list of its strings (bytes).
    Raises OSError (socket.timeout included) when nothing answers.
    """
    ident = random.randint(0, 0xFFFF)
    question = _encode_name(name) + struct.pack("!HH", TYPE_TXT, CLASS_IN)
    # EDNS0 with a 4096-octet buffer, so long records come back whole.
    edns = b"\0" + struct.pack("!HHIH", 41, 4096, 0, 0)
    query = struct.pack("!HHHHHH", ident, 0x0100, 1, 0, 0, 1) + question \
        + edns
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.settimeout(timeout)
        sock.sendto(query, (address, port))
        while True:
            packet = sock.recv(65535)
            if len(packet) >= 12 and \
                    struct.unpack("!H", packet[:2])[0] == ident:
                break

    flags, qdcount, ancount = struct.unpack("!HHH", packet[2:8])
    pos = 12
    for _ in range(qdcount):
        pos = _skip_name(packet, pos) + 4
    records = []
    for _ in range(ancount):
        pos = _skip_name(packet, pos)
        rtype, _, _, rdlength = struct.unpack("!HHIH", packet[pos:pos + 10])
        pos += 10
        rdata = packet[pos:pos + rdlength]
        pos += rdlength
        if rtype != TYPE_TXT:
            continue
        strings, at = [], 0
        while at < len(rdata):
            strings.append(rdata[at + 1:at + 1 + rdata[at]])
            at += 1 + rdata[at]
        records.append(strings)
    return flags & 0x000F, records


class ServerProcess:
    """What the DNS servers of the tests share: a process writing to a log.

    Subclasses set self.process (a Popen, or None) and self.log_path.
    """

    stop_timeout = 10

    def stop(self):
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=self.stop_timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def log(self):
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return ""


class Dnsmasq(ServerProcess):
    """dnsmasq serving records on address:port while the context lasts.

    The configuration and log live in a temporary directory; log() returns
    what dnsmasq wrote (queries included), also after the server stopped.
    """

    def __init__(self, records, local_zones=(), address="127.0.0.1",
                 port=None, workdir=None, mx=(), hosts=()):
        self.records = records
        self.local_zones = local_zones
        self.mx = mx
        self.hosts = hosts
        self.address = address
        self._any_port = port is None
        self.port = port if port is not None else free_port()
        self._own_dir = None
        if workdir is None:
            self._own_dir = tempfile.TemporaryDirectory(prefix="dnsmasq.")
            workdir = self._own_dir.name
        self.dir = pathlib.Path(workdir)
        self.conf = self.dir / "dnsmasq.conf"
        self.log_path = self.dir / "dnsmasq.log"
        self.process = None

    def argv(self):
        args = [DNSMASQ, "--keep-in-foreground", "--no-resolv", "--no-hosts",
                f"--listen-address={self.address}", f"--port={self.port}",
                "--bind-interfaces", f"--conf-file={self.conf}",
                "--pid-file=", "--log-facility=-", "--log-queries"]
        # As root dnsmasq would switch to a "dnsmasq" user, which a bare
        # dnsmasq-base install may lack; staying root is harmless here.
        if os.geteuid() == 0:
            args.append("--user=root")
        return args

    def start(self, wait=10.0):
        self.conf.write_text(dnsmasq_config(self.records, self.local_zones,
                                            self.mx, self.hosts))
        for attempt in range(5):
            log = open(self.log_path, "wb")
            try:
                self.process = subprocess.Popen(
                    self.argv(), stdin=subprocess.DEVNULL, stdout=log,
                    stderr=log)
            finally:
                log.close()
            try:
                self._wait_ready(wait)
                return self
            except RuntimeError:
                # A port found free can be taken before dnsmasq binds it.
                if not self._any_port or attempt == 4 or \
                        "in use" not in self.log():
                    raise
                self.port = free_port()
        return self

    def _wait_ready(self, wait):
        """Return once dnsmasq answers a query; raise if it never does."""
        probe = next(iter(self.records), "ready.invalid")
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(
                    f"dnsmasq exited with status {self.process.returncode}: "
                    f"{self.log()}")
            try:
                query_txt(probe, self.address, self.port, timeout=0.2)
                return
            except OSError:
                time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"dnsmasq did not answer on {self.address}:"
                           f"{self.port} within {wait} s: {self.log()}")

    def server(self):
        """The ADDR@PORT form that sealpost's --resolver takes."""
        return f"{self.address}@{self.port}"

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()
        if self._own_dir is not None:
            self._own_dir.cleanup()


class NamespaceError(RuntimeError):
    """A private network and mount namespace could not be made."""


def check_namespace():
    """Raise NamespaceError unless unshare --net --mount works here."""
    try:
        done = subprocess.run([UNSHARE, "--net", "--mount", "true"],
                              capture_output=True, timeout=30)
    except FileNotFoundError as exc:
        raise NamespaceError(f"{UNSHARE} is not installed: {exc}") from exc
    if done.returncode != 0:
        raise NamespaceError(
            "cannot make a private network and mount namespace "
            f"('{UNSHARE} --net --mount' exited {done.returncode}: "
            f"{done.stderr.decode(errors='replace').strip()}); these "
            "tests need root or CAP_SYS_ADMIN")


def run_in_namespace(records, argv, local_zones=(), workdir=None,
                     timeout=300):
    """Run argv where the system resolver is dnsmasq serving records.

    argv runs in a new network namespace (only lo, brought up) and mount
    namespace (a resolv.conf saying "nameserver 127.0.0.1" bound over
    /etc/resolv.conf), with dnsmasq on 127.0.0.1:53.  Nothing leaves the
    namespace: the host's network and files are untouched.  Returns the
    CompletedProcess of argv (bytes output); raises NamespaceError when the
    namespace cannot be made and RuntimeError when dnsmasq does not start.
    """
    check_namespace()
    own = None
    if workdir is None:
        own = tempfile.TemporaryDirectory(prefix="dnsns.")
        workdir = own.name
    try:
        work = pathlib.Path(workdir)
        resolv = work / "resolv.conf"
        (work / _READY).unlink(missing_ok=True)
        (work / "records.json").write_text(json.dumps(
            {"records": records, "local_zones": list(local_zones)}))
        resolv.write_text("nameserver 127.0.0.1\noptions attempts:1\n")
        inner = [sys.executable or "/usr/bin/python3",
                 str(pathlib.Path(__file__).resolve()), "--inside",
                 str(work), "--", *map(str, argv)]
        done = subprocess.run([UNSHARE, "--net", "--mount", *inner],
                              capture_output=True, timeout=timeout)
        if not (work / _READY).exists():
            raise RuntimeError("the DNS namespace could not be set up: " +
                               done.stderr.decode(errors="replace"))
        return done
    finally:
        if own is not None:
            own.cleanup()


_SETUP_FAILED = 1
_READY = "namespace-ready"
_SIOCGIFFLAGS = 0x8913
_SIOCSIFFLAGS = 0x8914
_IFF_UP = 0x1


def _loopback_up():
    """Bring up lo in this (new) network namespace."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        request = struct.pack("16sH14x", b"lo", 0)
        flags = struct.unpack("16sH14x",
                              fcntl.ioctl(sock, _SIOCGIFFLAGS, request))[1]
        fcntl.ioctl(sock, _SIOCSIFFLAGS,
                    struct.pack("16sH14x", b"lo", flags | _IFF_UP))


def _inside(work, argv):
    """In the namespace: lo up, resolv.conf bound, dnsmasq up, run argv."""
    work = pathlib.Path(work)
    try:
        _loopback_up()
        subprocess.run(["mount", "--bind", str(work / "resolv.conf"),
                        "/etc/resolv.conf"], check=True, capture_output=True)
        wanted = json.loads((work / "records.json").read_text())
        server = Dnsmasq(wanted["records"], wanted["local_zones"], port=53,
                         workdir=work).start()
    except (OSError, RuntimeError, subprocess.CalledProcessError) as exc:
        detail = getattr(exc, "stderr", b"") or b""
        print(f"{exc} {detail.decode(errors='replace')}", file=sys.stderr)
        return _SETUP_FAILED
    (work / _READY).write_text("dnsmasq answers on 127.0.0.1:53\n")
    try:
        return subprocess.run(argv).returncode
    finally:
        server.stop()


if __name__ == "__main__":
    if len(sys.argv) < 5 or sys.argv[1] != "--inside" or sys.argv[3] != "--":
        print("usage: dnsserver.py --inside WORKDIR -- argv...",
              file=sys.stderr)
        sys.exit(2)
    sys.exit(_inside(sys.argv[2], sys.argv[4:]))
