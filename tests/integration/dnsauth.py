"""A real authoritative DNS server for integration tests: BIND 9 (named).

dnsserver.py's dnsmasq answers from a fixed list; this module runs the
server that sealpost publishes DKIM records to, with zones that accept
RFC 2136 dynamic updates signed with a TSIG key (RFC 8945).

  Bind(zones, port=None, workdir=None, algorithm="hmac-sha256",
       key_name="sealpost-test-key")
      A context manager running /usr/sbin/named in the foreground on
      127.0.0.1, UDP and TCP, on a free port (another is tried when the
      chosen one is taken before named binds it).  Everything named reads
      or writes is in one temporary directory (workdir, or its own): the
      configuration, the zone files and their journals, the pid and lock
      files, the key named makes for local updates.  No -u, no -t: it
      runs as the current user, with no chroot and no "bind" account
      needed.  It has no control channel, no recursion, no notifies.

      zones maps a zone name to its records, either a dict {owner: TXT
      value} or a list of (owner, rrtype, data) tuples.  An owner is
      relative to the zone ("sel._domainkey", "@") or absolute when it
      ends with a dot.  TXT data is a str, cut into character-strings of
      at most 255 octets (UTF-8) and escaped for the zone file, or a list
      of str served as exactly those strings; other types take data as
      zone-file text ("10 mx.example.com.").  Each zone gets an SOA, an
      NS ns1.ZONE and its address 127.0.0.1; updates signed with the key
      are allowed to every zone.

  Attributes and methods of a running Bind:
      address, port, dir          where it listens and what it uses
      server()                    "127.0.0.1@PORT", sealpost's --server form
      tsig                        the key as "hmac-sha256:NAME:BASE64SECRET"
      key_name, secret, algorithm the parts of that key
      key_file                    the key in named.conf form (nsupdate -k)
      add_txt(name, value, ttl=300)
                                  add one TXT record (nsupdate, signed)
      remove(name, rrtype="TXT")  delete the RRset name/rrtype (nsupdate)
      query_txt(name)             ask over TCP: (rcode, records), each
                                  record the list of its strings (bytes)
      txt_values(name)            the TXT records at name, strings joined
                                  and decoded, sorted
      query(name, rrtype)         (rcode, flags, [(type, rdata bytes)])
      dig(*args)                  dig's output for args, asking this server
      log()                       what named wrote, also after it stopped

  Module functions: txt_strings(value) cuts a value into 255-octet
  strings; zone_text(zone, records) is a zone file; named_conf(...) is
  the configuration; query(...) and query_txt(...) are the TCP client.

Failures to start raise RuntimeError with named's log; an update that
nsupdate cannot make raises subprocess.CalledProcessError.
"""
import base64
import os
import pathlib
import random
import secrets
import socket
import struct
import subprocess
import tempfile
import time

from dnsserver import ServerProcess, free_port

NAMED = "/usr/sbin/named"
NSUPDATE = "nsupdate"
DIG = "dig"
STRING_MAX = 255

TYPE_SOA = 6
TYPE_TXT = 16
CLASS_IN = 1
FLAG_AA = 0x0400
RCODE_NOERROR = 0
RCODE_NXDOMAIN = 3

# named's words for "the port was taken between our check and its bind".
_PORT_TAKEN = ("address in use", "unable to listen on any configured")


def txt_strings(value):
    """The character-strings (bytes) carrying value, each <= 255 octets."""
    if isinstance(value, (list, tuple)):
        strings = [s.encode() if isinstance(s, str) else s for s in value]
        if any(len(s) > STRING_MAX for s in strings):
            raise ValueError("a TXT string over 255 octets")
        return strings
    raw = value.encode() if isinstance(value, str) else value
    return [raw[i:i + STRING_MAX]
            for i in range(0, len(raw), STRING_MAX)] or [b""]


def _quote(string):
    """One character-string in zone-file syntax: quoted, escaped."""
    out = []
    for byte in string:
        if byte in (0x22, 0x5C):
            out.append("\\" + chr(byte))
        elif 0x20 <= byte < 0x7F:
            out.append(chr(byte))
        else:
            out.append(f"\\{byte:03d}")
    return '"' + "".join(out) + '"'


def txt_rdata(value):
    """TXT rdata in zone-file (and nsupdate) syntax."""
    return " ".join(_quote(s) for s in txt_strings(value))


def _absolute(name):
    return name if name.endswith(".") else name + "."


def _records(records):
    """(owner, rrtype, data) tuples from a dict or a list."""
    if isinstance(records, dict):
        return [(owner, "TXT", value) for owner, value in records.items()]
    return list(records)


def zone_text(zone, records=()):
    """A zone file for zone: SOA, NS ns1.ZONE, its A, then records."""
    origin = _absolute(zone)
    lines = [f"$ORIGIN {origin}", "$TTL 300",
             f"@ IN SOA ns1.{origin} hostmaster.{origin} "
             "1 3600 600 86400 300",
             f"@ IN NS ns1.{origin}",
             "ns1 IN A 127.0.0.1"]
    for owner, rrtype, data in _records(records):
        rdata = txt_rdata(data) if rrtype.upper() == "TXT" else data
        lines.append(f"{owner} IN {rrtype.upper()} {rdata}")
    return "\n".join(lines) + "\n"


def _zone_file(zone):
    return zone.strip(".").lower() + ".zone"


def named_conf(workdir, address, port, zones, key_name, algorithm, secret):
    """named.conf text keeping every file named uses inside workdir."""
    work = str(workdir)
    zone_blocks = "".join(
        f'zone "{zone.strip(".")}" {{\n'
        f'    type primary;\n'
        f'    file "{_zone_file(zone)}";\n'
        f'    allow-update {{ key "{key_name}"; }};\n'
        f'}};\n' for zone in zones)
    return (
        "options {\n"
        f'    directory "{work}";\n'
        f'    pid-file "{work}/named.pid";\n'
        f'    lock-file "{work}/named.lock";\n'
        f'    session-keyfile "{work}/session.key";\n'
        f'    managed-keys-directory "{work}";\n'
        f'    dump-file "{work}/named.dump";\n'
        f'    statistics-file "{work}/named.stats";\n'
        f"    listen-on port {port} {{ {address}; }};\n"
        "    listen-on-v6 { none; };\n"
        "    recursion no;\n"
        "    dnssec-validation no;\n"
        "    notify no;\n"
        "    allow-transfer { none; };\n"
        "};\n"
        # No rndc channel: several servers may run at once, and port 953
        # would be shared.
        "controls { };\n"
        f'key "{key_name}" {{\n'
        f"    algorithm {algorithm};\n"
        f'    secret "{secret}";\n'
        "};\n" + zone_blocks)


def _encode_name(name):
    out = b""
    for label in name.strip(".").split("."):
        if label:
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


def _recv_exact(sock, count):
    data = b""
    while len(data) < count:
        chunk = sock.recv(count - len(data))
        if not chunk:
            raise ConnectionError("the server closed the connection")
        data += chunk
    return data


def query(name, rrtype, address="127.0.0.1", port=53, timeout=2.0):
    """Ask address:port over TCP; returns (rcode, flags, answers).

    answers is a list of (type, rdata bytes) from the answer section.
    Raises OSError (socket.timeout included) when nothing answers.
    """
    ident = random.randint(0, 0xFFFF)
    message = struct.pack("!HHHHHH", ident, 0, 1, 0, 0, 0) + \
        _encode_name(name) + struct.pack("!HH", rrtype, CLASS_IN)
    with socket.create_connection((address, port), timeout=timeout) as sock:
        sock.sendall(struct.pack("!H", len(message)) + message)
        length = struct.unpack("!H", _recv_exact(sock, 2))[0]
        packet = _recv_exact(sock, length)
    if struct.unpack("!H", packet[:2])[0] != ident:
        raise ConnectionError("answer with another id")
    flags, qdcount, ancount = struct.unpack("!HHH", packet[2:8])
    pos = 12
    for _ in range(qdcount):
        pos = _skip_name(packet, pos) + 4
    answers = []
    for _ in range(ancount):
        pos = _skip_name(packet, pos)
        atype, _, _, rdlength = struct.unpack("!HHIH", packet[pos:pos + 10])
        pos += 10
        answers.append((atype, packet[pos:pos + rdlength]))
        pos += rdlength
    return flags & 0x000F, flags, answers


def query_txt(name, address="127.0.0.1", port=53, timeout=2.0):
    """TXT records at name: (rcode, [[string bytes, ...], ...])."""
    rcode, _, answers = query(name, TYPE_TXT, address, port, timeout)
    records = []
    for atype, rdata in answers:
        if atype != TYPE_TXT:
            continue
        strings, at = [], 0
        while at < len(rdata):
            strings.append(rdata[at + 1:at + 1 + rdata[at]])
            at += 1 + rdata[at]
        records.append(strings)
    return rcode, records


class Bind(ServerProcess):
    """named serving zones on 127.0.0.1:port while the context lasts."""

    def __init__(self, zones, address="127.0.0.1", port=None, workdir=None,
                 algorithm="hmac-sha256", key_name="sealpost-test-key"):
        if not zones:
            raise ValueError("Bind needs at least one zone")
        self.zones = {zone.strip(".").lower(): records
                      for zone, records in zones.items()}
        self.address = address
        self._any_port = port is None
        self.port = port if port is not None else free_port()
        self._own_dir = None
        if workdir is None:
            self._own_dir = tempfile.TemporaryDirectory(prefix="named.")
            workdir = self._own_dir.name
        self.dir = pathlib.Path(workdir)
        self.conf = self.dir / "named.conf"
        self.log_path = self.dir / "named.log"
        self.key_file = self.dir / "tsig.key"
        self.algorithm = algorithm
        self.key_name = key_name
        self.secret = base64.b64encode(secrets.token_bytes(32)).decode()
        self.process = None

    @property
    def tsig(self):
        """The key in the form sealpost takes: ALGORITHM:NAME:SECRET."""
        return f"{self.algorithm}:{self.key_name}:{self.secret}"

    def server(self):
        """The ADDR@PORT form of sealpost's --server and --resolver."""
        return f"{self.address}@{self.port}"

    def _write_files(self):
        # named, run as root or not, writes journals next to the zones.
        os.chmod(self.dir, 0o700)
        for zone, records in self.zones.items():
            path = self.dir / _zone_file(zone)
            path.write_text(zone_text(zone, records))
            path.chmod(0o600)
            path.with_name(path.name + ".jnl").unlink(missing_ok=True)
        self.key_file.write_text(
            f'key "{self.key_name}" {{\n    algorithm {self.algorithm};\n'
            f'    secret "{self.secret}";\n}};\n')
        self.key_file.chmod(0o600)
        self.conf.write_text(named_conf(
            self.dir, self.address, self.port, self.zones, self.key_name,
            self.algorithm, self.secret))
        self.conf.chmod(0o600)

    def argv(self):
        # -g: foreground, log to stderr; no -u (stay who we are), no -t.
        return [NAMED, "-g", "-4", "-n", "1", "-c", str(self.conf)]

    def start(self, wait=15.0):
        for attempt in range(5):
            self._write_files()
            with open(self.log_path, "wb") as log:
                self.process = subprocess.Popen(
                    self.argv(), stdin=subprocess.DEVNULL, stdout=log,
                    stderr=log, cwd=self.dir)
            try:
                self._wait_ready(wait)
                return self
            except RuntimeError:
                self.stop()
                taken = any(word in self.log() for word in _PORT_TAKEN)
                if not self._any_port or attempt == 4 or not taken:
                    raise
                self.port = free_port()
        return self

    def _wait_ready(self, wait):
        """Return once named answers for every zone with authority."""
        deadline = time.monotonic() + wait
        pending = list(self.zones)
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(
                    f"named exited with status {self.process.returncode}: "
                    f"{self.log()}")
            try:
                while pending:
                    rcode, flags, answers = self.query(pending[0], TYPE_SOA,
                                                       timeout=0.5)
                    if rcode != RCODE_NOERROR or not flags & FLAG_AA or \
                            not answers:
                        raise ConnectionError("zone not loaded yet")
                    pending.pop(0)
                return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError(f"named did not answer for {pending} on "
                           f"{self.address}:{self.port} within {wait} s: "
                           f"{self.log()}")

    def zone_of(self, name):
        """The served zone holding name (the longest match)."""
        wanted = name.strip(".").lower()
        found = [zone for zone in self.zones
                 if wanted == zone or wanted.endswith("." + zone)]
        if not found:
            raise ValueError(f"{name} is in none of {list(self.zones)}")
        return max(found, key=len)

    def nsupdate(self, name, commands):
        """Run nsupdate (over TCP, signed) with commands for name's zone."""
        script = (f"server {self.address} {self.port}\n"
                  f"zone {self.zone_of(name)}.\n" + "".join(
                      line + "\n" for line in commands) + "send\n")
        return subprocess.run(
            [NSUPDATE, "-v", "-t", "10", "-k", str(self.key_file)],
            input=script.encode(), capture_output=True, check=True,
            timeout=30)

    def add_txt(self, name, value, ttl=300):
        """Add one TXT record at name (the RRset keeps its others)."""
        self.nsupdate(name, [f"update add {_absolute(name)} {int(ttl)} "
                             f"IN TXT {txt_rdata(value)}"])

    def remove(self, name, rrtype="TXT"):
        """Delete the whole RRset name/rrtype."""
        self.nsupdate(name, [f"update delete {_absolute(name)} IN "
                             f"{rrtype.upper()}"])

    def query(self, name, rrtype, timeout=2.0):
        return query(name, rrtype, self.address, self.port, timeout)

    def query_txt(self, name, timeout=2.0):
        return query_txt(name, self.address, self.port, timeout)

    def txt_values(self, name):
        """The TXT records at name, each joined and decoded, sorted."""
        _, records = self.query_txt(name)
        return sorted(b"".join(r).decode(errors="replace") for r in records)

    def dig(self, *args):
        """dig's standard output for args, asking this server over TCP."""
        done = subprocess.run(
            [DIG, "+tcp", "+time=2", "+tries=1", f"@{self.address}", "-p",
             str(self.port), *map(str, args)], capture_output=True,
            timeout=30, check=True)
        return done.stdout.decode(errors="replace")

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()
        if self._own_dir is not None:
            self._own_dir.cleanup()
