"""A private Postfix instance (Debian's postfix package) that receives
mail for test domains and delivers it to Maildirs, for tests where
sealpost delivers to a real mail server.

  Postfix(address, port, mailboxes, tls=True)
      A context manager: Postfix's smtpd on address:port (a loopback
      address), the final destination of the domains of mailboxes (a list
      of addresses), each address delivered by Postfix's virtual(8) agent
      to a Maildir of its own; any other address of those domains is
      refused at RCPT with 550 5.1.1.  With tls, STARTTLS is offered with
      a self-signed certificate.  Everything Postfix reads or writes is in
      one temporary directory of its own (configuration, queue, data,
      Maildirs, log), removed at the end; nothing of the system's
      /etc/postfix is read and the system's Postfix, if any, is left
      alone.  Needs root: Postfix's daemons change to the postfix user,
      and the Maildirs belong to that user.

  Attributes and methods:
      address, port, mailboxes
      dir                    the temporary directory, while it runs
      mail()                 [(address, bytes)]: every message delivered
                             so far, oldest first, as Postfix wrote it
                             (LF line endings; Return-Path,
                             X-Original-To, Delivered-To and Received
                             added on top)
      wait(count, timeout)   waits until count messages were delivered;
                             returns mail()
      log()                  Postfix's log (maillog_file), also after stop
      queued()               files left in Postfix's incoming, active and
                             deferred queues
"""
import os
import pathlib
import pwd
import pty
import shutil
import signal
import socket
import subprocess
import tempfile
import time

POSTFIX = "/usr/sbin/postfix"
POSTCONF = "/usr/sbin/postconf"
OPENSSL = "openssl"

# Only the services a message needs on its way from smtpd to a Maildir,
# and the log.  No chroot; "-" elsewhere takes Postfix's defaults.
SERVICES = [
    "{listen} inet n - n - - smtpd",
    "cleanup unix n - n - 0 cleanup",
    "qmgr unix n - n 300 1 qmgr",
    "rewrite unix - - n - - trivial-rewrite",
    "bounce unix - - n - 0 bounce",
    "defer unix - - n - 0 bounce",
    "trace unix - - n - 0 bounce",
    "error unix - - n - - error",
    "retry unix - - n - - error",
    "anvil unix - - n - 1 anvil",
    "tlsmgr unix - - n 1000? 1 tlsmgr",
    "virtual unix - n n - - virtual",
    "postlog unix-dgram n - n - 1 postlogd",
]


class Postfix:
    def __init__(self, address, port, mailboxes, tls=True):
        self.address, self.port = address, port
        self.mailboxes = list(mailboxes)
        self.tls = tls
        self.owner = pwd.getpwnam("postfix")
        self.dir = None
        self.master = None
        self._log = ""

    # ------------------------------------------------------------------
    # Setting up

    def _prepare(self):
        # Not under pytest's directories: the mail user (virtual_uid_maps)
        # must be able to reach the Maildirs, so no parent may be closed.
        self.dir = pathlib.Path(tempfile.mkdtemp(prefix="postfix."))
        self.dir.chmod(0o711)
        self.conf = self.dir / "conf"
        self.queue = self.dir / "queue"
        self.data = self.dir / "data"
        self.base = self.dir / "mail"
        self.log_path = self.dir / "maillog"
        for path in (self.conf, self.queue, self.data, self.base):
            path.mkdir()
        for path in (self.data, self.base):
            os.chown(path, self.owner.pw_uid, self.owner.pw_gid)
        self._copy_meta()
        (self.conf / "mailboxes").write_text("".join(
            f"{address} {self.maildir(address)}/\n"
            for address in self.mailboxes))
        if self.tls:
            self._make_certificate()
        (self.conf / "main.cf").write_text("".join(
            f"{key} = {value}".rstrip() + "\n"
            for key, value in self._settings()))
        (self.conf / "master.cf").write_text("".join(
            line.format(listen=f"{self.address}:{self.port}") + "\n"
            for line in SERVICES))

    def _copy_meta(self):
        """postfix-files (which postfix-script reads to make the queue
        directories) and dynamicmaps.cf, from the package's
        meta_directory into the private one."""
        done = subprocess.run([POSTCONF, "-d", "-h", "meta_directory"],
                              capture_output=True, text=True)
        meta = pathlib.Path(done.stdout.strip())
        if done.returncode != 0 or not (meta / "postfix-files").is_file():
            raise RuntimeError(f"no postfix-files in {meta}: is Debian's "
                               "postfix package installed?")
        for name in ("postfix-files", "dynamicmaps.cf"):
            if (meta / name).is_file():
                shutil.copy(meta / name, self.conf)
        for sub in ("postfix-files.d", "dynamicmaps.cf.d"):
            (self.conf / sub).mkdir()

    def _make_certificate(self):
        """A self-signed key and certificate in one file, for STARTTLS."""
        key, cert = self.conf / "tls.key", self.conf / "tls.crt"
        done = subprocess.run(
            [OPENSSL, "req", "-x509", "-newkey", "ec", "-pkeyopt",
             "ec_paramgen_curve:P-256", "-nodes", "-days", "2",
             "-subj", f"/CN=mx.{self.domains()[0]}", "-keyout", str(key),
             "-out", str(cert)], capture_output=True, text=True)
        if done.returncode != 0:
            raise RuntimeError(f"openssl req failed: {done.stderr}")
        (self.conf / "tls.pem").write_bytes(key.read_bytes() +
                                            cert.read_bytes())

    def _settings(self):
        uid, gid = self.owner.pw_uid, self.owner.pw_gid
        settings = [
            ("compatibility_level", "3.6"),
            ("queue_directory", self.queue),
            ("data_directory", self.data),
            ("meta_directory", self.conf),
            ("mail_owner", "postfix"),
            ("setgid_group", "postdrop"),
            ("myhostname", f"mx.{self.domains()[0]}"),
            ("mydomain", self.domains()[0]),
            ("mydestination", ""),
            ("relay_domains", ""),
            # The address is not an interface's own (lo has 127.0.0.1/8),
            # so the listener names it in master.cf and inet_interfaces
            # names the interface it is on.
            ("inet_interfaces", "loopback-only"),
            ("inet_protocols", "ipv4"),
            ("mynetworks", "127.0.0.0/8"),
            ("alias_maps", ""),
            ("alias_database", ""),
            ("local_recipient_maps", ""),
            # No DNS: the client's name is not looked up, and nothing is
            # sent on (a bounce stays in the queue, for queued() to show).
            ("smtpd_peername_lookup", "no"),
            ("default_transport", "retry:no outbound mail here"),
            ("virtual_mailbox_domains", " ".join(self.domains())),
            ("virtual_mailbox_base", self.base),
            ("virtual_mailbox_maps", f"texthash:{self.conf}/mailboxes"),
            ("virtual_uid_maps", f"static:{uid}"),
            ("virtual_gid_maps", f"static:{gid}"),
            ("maillog_file", self.log_path),
            ("maillog_file_prefixes", self.dir),
            ("biff", "no"),
        ]
        if self.tls:
            settings += [
                ("smtpd_tls_security_level", "may"),
                ("smtpd_tls_chain_files", self.conf / "tls.pem"),
            ]
        return settings

    def domains(self):
        found = []
        for address in self.mailboxes:
            domain = address.rsplit("@", 1)[1].lower()
            if domain not in found:
                found.append(domain)
        return found

    def maildir(self, address):
        """The Maildir of address, relative to virtual_mailbox_base."""
        local, domain = address.rsplit("@", 1)
        return f"{domain.lower()}/{local}"

    # ------------------------------------------------------------------
    # Running

    def _postfix(self, *command):
        """(exit status, what it said).  Postfix's commands write their
        errors to stderr only when it is a terminal (else to syslog), so
        stderr is a pseudo-terminal."""
        reader, writer = pty.openpty()
        try:
            done = subprocess.run([POSTFIX, "-c", str(self.conf), *command],
                                  stdin=subprocess.DEVNULL,
                                  stdout=writer, stderr=writer, timeout=60)
            os.close(writer)
            writer = None
            said = b""
            while True:
                try:
                    chunk = os.read(reader, 4096)
                except OSError:  # EIO: nothing more
                    break
                if not chunk:
                    break
                said += chunk
        finally:
            os.close(reader)
            if writer is not None:
                os.close(writer)
        return done.returncode, said.decode(errors="replace")

    def _master_pid(self):
        """This instance's master: the pid file's process, working in this
        queue directory (a stale pid file names some other process)."""
        try:
            pid = int((self.queue / "pid" / "master.pid").read_text())
            cwd = os.readlink(f"/proc/{pid}/cwd")
        except (OSError, ValueError):
            return None
        return pid if cwd == str(self.queue.resolve()) else None

    def start(self, wait=30):
        try:
            self._prepare()
        except BaseException:
            self.stop()
            raise
        status, said = self._postfix("start")
        self.master = self._master_pid()
        if status != 0 or self.master is None:
            self.stop()
            raise RuntimeError(f"postfix start failed: {said}\n{self._log}")
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            if self._greets():
                return self
            time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"Postfix did not greet on {self.address}:"
                           f"{self.port}:\n{self._log}")

    def _greets(self):
        try:
            with socket.create_connection((self.address, self.port),
                                          timeout=5) as sock:
                greeting = sock.recv(512)
                sock.sendall(b"QUIT\r\n")
                return greeting.startswith(b"220 ")
        except OSError:
            return False

    def stop(self):
        """postfix stop; the master killed if it does not go.  Keeps the
        log, then removes the directory."""
        if self.dir is None:
            return
        master = self.master or self._master_pid()
        self.master = None
        if master is not None:
            self._postfix("stop")
            deadline = time.monotonic() + 20
            while os.path.exists(f"/proc/{master}") and \
                    time.monotonic() < deadline:
                time.sleep(0.1)
            if os.path.exists(f"/proc/{master}"):
                # The master leads its own process group, its daemons in
                # it.
                try:
                    os.killpg(master, signal.SIGKILL)
                except ProcessLookupError:
                    pass
        self._log = self.log()
        shutil.rmtree(self.dir, ignore_errors=True)
        self.dir = None

    def log(self):
        if self.dir is None:
            return self._log
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return self._log

    # ------------------------------------------------------------------
    # What arrived

    def mail(self):
        found = []
        for address in self.mailboxes:
            maildir = self.base / self.maildir(address)
            for sub in ("new", "cur"):
                try:
                    names = os.listdir(maildir / sub)
                except FileNotFoundError:
                    continue
                for name in names:
                    path = maildir / sub / name
                    found.append((path.stat().st_mtime_ns, address,
                                  path.read_bytes()))
        return [(address, data) for _, address, data in sorted(found)]

    def wait(self, count, timeout=30):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = self.mail()
            if len(found) >= count:
                return found
            time.sleep(0.1)
        return self.mail()

    def queued(self):
        found = []
        for sub in ("incoming", "active", "deferred"):
            for _, _, names in os.walk(self.queue / sub):
                found += names
        return found

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()
