"""A private Postfix on free 127.0.0.1 ports, as a real upstream for
deliver: its own main.cf, master.cf, queue, TLS certificate (issued by
the test CA of certs.py) and Cyrus SASL password database, all under a
temp dir. Nothing of the system's mail set-up is read or changed: the
binaries come from the postfix .deb that tests/tools.sh unpacks (not
installed), every daemon is told where the instance lives with -c, and
stop() ends the whole process group.

Two listeners, both with SASL AUTH required before any mail: through
Cyrus SASL (PLAIN, LOGIN, CRAM-MD5 from an sasldb made with saslpasswd2),
or with sasl="dovecot" through a private Dovecot auth service
(dovecot.py, smtpd_sasl_type = dovecot):

  submission   port 587 style: STARTTLS required before AUTH and MAIL
  smtps        port 465 style: implicit TLS (smtpd_tls_wrappermode)

CHUNKING (BDAT) is on, as Postfix offers it by default.

What arrives is read back through a pipe(8) transport: every message is
routed to one nexthop, so each accepted message is one run of a small
sink script that stores the envelope (sender, then the recipients, as
Postfix's queue holds them) and the message exactly as Postfix hands it
to a delivery agent: LF line ends (Postfix stores lines, not CRLF) and
its own Received: header on top, which messages() splits off into
Message.received. Everything below that header is the client's bytes.
No header rewriting: clients on 127.0.0.1 are not "local" here, so
cleanup(8) neither qualifies addresses nor adds Date or Message-ID.

Postfix needs root to start (master drops privileges to the user
postfix, setgid group postdrop; tests/tools.sh creates both) and the
pipe sink runs as nobody. available() says why not when it cannot run.
"""
import grp
import os
import pwd
import shutil
import signal
import subprocess
import tempfile
import time

import certs
import dovecot
from netutil import free_port

ROOT = os.environ.get("POSTIE_POSTFIX_DIR", "/var/tmp/postie-test-tools/postfix")
LIBDIR = os.path.join(ROOT, "usr/lib/postfix")
DAEMONS = os.path.join(LIBDIR, "sbin")
POSTCONF = os.path.join(ROOT, "usr/sbin/postconf")
SASLPASSWD2 = "/usr/sbin/saslpasswd2"
SINK_USER = "nobody"


def available():
    """None when a private Postfix can run here, else the reason."""
    if os.geteuid() != 0:
        return "Postfix's master must start as root"
    if not os.access(os.path.join(DAEMONS, "master"), os.X_OK):
        return "Postfix is not unpacked in %s (tests/tools.sh does it)" % ROOT
    if not os.access(SASLPASSWD2, os.X_OK):
        return "saslpasswd2 is not installed (package sasl2-bin)"
    for user in ("postfix", SINK_USER):
        try:
            pwd.getpwnam(user)
        except KeyError:
            return "no user %s (tests/tools.sh creates postfix)" % user
    try:
        grp.getgrnam("postdrop")
    except KeyError:
        return "no group postdrop (tests/tools.sh creates it)"
    return None




class Message:
    def __init__(self, queue_id, sender, rcpts, received, data):
        self.queue_id = queue_id
        self.sender = sender
        self.rcpts = rcpts
        self.received = received      # the Received: header Postfix added
        self.data = data              # the rest, LF line ends

    def __repr__(self):
        return "Message(%s, from=%r, to=%r, %d bytes)" % (self.queue_id, self.sender,
                                                          self.rcpts, len(self.data))


def _split_received(raw):
    """(Postfix's Received: header, the rest)."""
    if not raw.startswith(b"Received: "):
        return b"", raw
    end = raw.index(b"\n") + 1
    while raw[end:end + 1] in (b" ", b"\t"):
        end = raw.index(b"\n", end) + 1
    return raw[:end], raw[end:]


SINK = """#!/bin/sh
# pipe(8) runs this once per message: queue id, sender, recipients
set -e
d=%s
name=$1.$$
shift
cat >"$d/tmp/$name.msg"
printf '%%s\\0' "$@" >"$d/tmp/$name.env"
mv "$d/tmp/$name.msg" "$d/new/$name.msg"
mv "$d/tmp/$name.env" "$d/new/$name.env"
"""


class Postfix:
    """users: {login: password} for SASL. message_size_limit: bytes, or
    None for Postfix's default. recipient_access: {address: action} as
    in access(5), e.g. "450 4.7.1 greylisted" or "REJECT no such user".
    chunking: False hides CHUNKING, so clients fall back to DATA.
    mechanisms: the SASL mechanisms offered. sasl: "cyrus" or "dovecot".
    sender_logins: {envelope sender: login} as smtpd_sender_login_maps:
    with it, a sender not in the map, or not the login's, is refused
    (reject_sender_login_mismatch, as providers do). header_checks: the
    text of a regexp: table (e.g. refusing a From: outside a domain).
    recipient_limit: smtpd_recipient_limit (Postfix answers the ones past
    it "452 4.5.3 Error: too many recipients")."""

    def __init__(self, users=None, message_size_limit=None, recipient_access=None,
                 chunking=True, mechanisms=("PLAIN", "LOGIN", "CRAM-MD5"), cert="localhost",
                 sasl="cyrus", sender_logins=None, header_checks=None, recipient_limit=None):
        reason = available() or (dovecot.available() if sasl == "dovecot" else None)
        if reason:
            raise RuntimeError(reason)
        self.users = users if users is not None else {"me@example.org": "s3cret pass"}
        self.message_size_limit = message_size_limit
        self.recipient_limit = recipient_limit
        self.recipient_access = recipient_access or {}
        self.chunking = chunking
        self.mechanisms = mechanisms
        self.sender_logins = sender_logins or {}
        self.header_checks = header_checks
        self.sasl = sasl
        self.dovecot = None
        self.proc = None
        self.dir = tempfile.mkdtemp(prefix="postie-postfix.")
        # the daemons run as postfix and the sink as nobody: they must
        # get through the temp dir to their own parts of it
        os.chmod(self.dir, 0o755)
        self.conf = os.path.join(self.dir, "etc")
        self.queue = os.path.join(self.dir, "spool")
        self.data_dir = os.path.join(self.dir, "data")
        self.sink = os.path.join(self.dir, "sink")
        self.log = os.path.join(self.dir, "maillog")
        self._layout(cert)
        for _ in range(5):
            self.submission = free_port()
            self.smtps = free_port()
            if self._start():
                return
        text = self.log_text()[-3000:]
        self.stop()
        raise RuntimeError("Postfix did not start: %s" % text)

    # --- set-up -----------------------------------------------------

    def _layout(self, cert):
        pf = pwd.getpwnam("postfix")
        postdrop = grp.getgrnam("postdrop").gr_gid
        nobody = pwd.getpwnam(SINK_USER)
        os.makedirs(self.conf)
        os.mkdir(self.queue, 0o755)
        # the queue as post-install would make it
        for sub, mode, gid in [("active", 0o700, None), ("bounce", 0o700, None),
                               ("corrupt", 0o700, None), ("defer", 0o700, None),
                               ("deferred", 0o700, None), ("flush", 0o700, None),
                               ("hold", 0o700, None), ("incoming", 0o700, None),
                               ("private", 0o700, None), ("saved", 0o700, None),
                               ("trace", 0o700, None), ("maildrop", 0o730, postdrop),
                               ("public", 0o710, postdrop)]:
            p = os.path.join(self.queue, sub)
            os.mkdir(p)
            os.chown(p, pf.pw_uid, postdrop if gid is not None else pf.pw_gid)
            os.chmod(p, mode)
        os.mkdir(os.path.join(self.queue, "pid"), 0o755)
        os.mkdir(self.data_dir, 0o700)
        os.chown(self.data_dir, pf.pw_uid, pf.pw_gid)
        for sub in ("", "tmp", "new"):
            p = os.path.join(self.sink, sub)
            os.mkdir(p, 0o700)
            os.chown(p, nobody.pw_uid, nobody.pw_gid)
        sink = os.path.join(self.dir, "sink.sh")
        with open(sink, "w") as f:
            f.write(SINK % self.sink)
        os.chmod(sink, 0o755)
        # the TLS key stays root's: smtpd reads it before dropping privileges
        for ext in ("crt", "key"):
            shutil.copy(certs.path("%s.%s" % (cert, ext)), os.path.join(self.conf, "tls." + ext))
            os.chmod(os.path.join(self.conf, "tls." + ext), 0o600)
        # no dynamically loaded map types: an empty list stops Postfix
        # from looking for the system's
        open(os.path.join(self.conf, "dynamicmaps.cf"), "w").close()
        if self.sasl == "dovecot":
            # smtpd (not chrooted) finds it as private/auth in its queue
            self.dovecot = dovecot.Dovecot(self.users, self.mechanisms,
                                           os.path.join(self.queue, "private", "auth"), "postfix")
        else:
            self._sasl(pf)

    def _sasl(self, pf):
        sasl = os.path.join(self.conf, "sasl")
        os.mkdir(sasl, 0o755)
        db = os.path.join(sasl, "sasldb2")
        for login, password in self.users.items():
            user, _, realm = login.partition("@")
            args = [SASLPASSWD2, "-f", db, "-c", "-p"]
            if realm:
                args += ["-u", realm]
            subprocess.run(args + [user], input=password.encode(), check=True,
                           capture_output=True, timeout=30)
        if not self.users:
            open(db, "w").close()
        os.chown(db, pf.pw_uid, pf.pw_gid)
        os.chmod(db, 0o600)
        with open(os.path.join(sasl, "smtpd.conf"), "w") as f:
            f.write("pwcheck_method: auxprop\nauxprop_plugin: sasldb\n"
                    "sasldb_path: %s\nmech_list: %s\n" % (db, " ".join(self.mechanisms)))

    def _main_cf(self):
        access = ", ".join("{%s = %s}" % (addr, action)
                           for addr, action in self.recipient_access.items())
        lines = [
            "compatibility_level = 3.6",
            "queue_directory = %s" % self.queue,
            "data_directory = %s" % self.data_dir,
            "daemon_directory = %s" % DAEMONS,
            "shlib_directory = %s" % LIBDIR,
            "meta_directory = %s" % self.conf,
            "command_directory = %s" % os.path.join(ROOT, "usr/sbin"),
            "mail_owner = postfix",
            "setgid_group = postdrop",
            # the daemons find the unpacked shared libraries
            "import_environment = MAIL_CONFIG MAIL_DEBUG MAIL_LOGTAG TZ LANG=C "
            "POSTLOG_SERVICE POSTLOG_HOSTNAME LD_LIBRARY_PATH=%s" % LIBDIR,
            # the log goes to a file here, through postlogd, not to syslog
            "maillog_file = %s" % self.log,
            "maillog_file_prefixes = %s" % self.dir,
            # a test kills an smtpd: master would hold the service back
            # for 60 s after that (no greeting), as it does on a real host
            "service_throttle_time = 1s",
            "myhostname = postfix.test",
            "mydomain = postfix.test",
            "myorigin = postfix.test",
            "mydestination =",
            "relay_domains =",
            "local_recipient_maps =",
            "alias_maps =",
            "alias_database =",
            "inet_interfaces = 127.0.0.1",
            "inet_protocols = ipv4",
            "mynetworks = 127.0.0.1/32",
            "biff = no",
            # clients here are remote: no rewriting, no added headers
            "local_header_rewrite_clients =",
            "always_add_missing_headers = no",
            # everything goes to the sink, one nexthop, all recipients at once
            "default_transport = sink:all",
            "sink_destination_recipient_limit = 1000",
            "sink_destination_concurrency_limit = 2",
            "smtpd_tls_chain_files = %s, %s" % (os.path.join(self.conf, "tls.key"),
                                                os.path.join(self.conf, "tls.crt")),
            "smtpd_tls_received_header = yes",
            "smtpd_tls_loglevel = 1",
            ] + ([
            "smtpd_sasl_type = dovecot",
            "smtpd_sasl_path = private/auth",
            ] if self.sasl == "dovecot" else [
            "smtpd_sasl_type = cyrus",
            "smtpd_sasl_path = smtpd",
            "cyrus_sasl_config_path = %s" % os.path.join(self.conf, "sasl"),
            ]) + [
            "smtpd_sasl_auth_enable = yes",
            "smtpd_sasl_security_options = noanonymous",
            "smtpd_tls_auth_only = yes",
            "smtpd_client_restrictions = permit_sasl_authenticated, reject",
            "smtpd_relay_restrictions = permit_sasl_authenticated, reject",
            "smtpd_recipient_restrictions = %s" % (
                "check_recipient_access inline:{ %s }" % access if access else ""),
            "smtpd_discard_ehlo_keywords = %s" % ("" if self.chunking else "chunking"),
            # as a provider hardened against SMTP smuggling has it (the
            # default from Postfix 3.9): a client that pipelines where
            # RFC 2920 does not allow it is cut off, so every test here
            # also shows postie's pipelining (MAIL with its RCPT lines
            # and DATA, the next group behind the dot) is allowed
            "smtpd_forbid_unauth_pipelining = yes",
            "smtpd_data_restrictions = reject_unauth_pipelining",
            # quick retries of deliveries to the sink, should one fail
            "queue_run_delay = 1s",
            "minimal_backoff_time = 1s",
            "maximal_backoff_time = 2s",
        ]
        if self.message_size_limit is not None:
            lines.append("message_size_limit = %d" % self.message_size_limit)
        if self.recipient_limit is not None:
            lines.append("smtpd_recipient_limit = %d" % self.recipient_limit)
        if self.sender_logins:
            lines.append("smtpd_sender_login_maps = inline:{ %s }" % ", ".join(
                "{%s = %s}" % kv for kv in self.sender_logins.items()))
            lines.append("smtpd_sender_restrictions = reject_non_fqdn_sender, "
                         "reject_sender_login_mismatch")
        if self.header_checks is not None:
            path = os.path.join(self.conf, "header_checks")
            with open(path, "w") as f:
                f.write(self.header_checks)
            lines.append("header_checks = regexp:%s" % path)
        return "\n".join(lines) + "\n"

    def _master_cf(self):
        svc = "%-10s %-5s %-2s %-2s %-2s %-5s %-2s %s"
        return "\n".join([
            svc % ("127.0.0.1:%d" % self.submission, "inet", "n", "-", "n", "-", "-", "smtpd"),
            "  -o syslog_name=postfix/submission",
            "  -o smtpd_tls_security_level=encrypt",
            svc % ("127.0.0.1:%d" % self.smtps, "inet", "n", "-", "n", "-", "-", "smtpd"),
            "  -o syslog_name=postfix/smtps",
            "  -o smtpd_tls_wrappermode=yes",
            "  -o smtpd_tls_security_level=encrypt",
            svc % ("cleanup", "unix", "n", "-", "n", "-", "0", "cleanup"),
            svc % ("qmgr", "unix", "n", "-", "n", "300", "1", "qmgr"),
            svc % ("tlsmgr", "unix", "-", "-", "n", "1000?", "1", "tlsmgr"),
            svc % ("rewrite", "unix", "-", "-", "n", "-", "-", "trivial-rewrite"),
            svc % ("bounce", "unix", "-", "-", "n", "-", "0", "bounce"),
            svc % ("defer", "unix", "-", "-", "n", "-", "0", "bounce"),
            svc % ("trace", "unix", "-", "-", "n", "-", "0", "bounce"),
            svc % ("verify", "unix", "-", "-", "n", "-", "1", "verify"),
            svc % ("flush", "unix", "n", "-", "n", "1000?", "0", "flush"),
            svc % ("proxymap", "unix", "-", "-", "n", "-", "-", "proxymap"),
            svc % ("error", "unix", "-", "-", "n", "-", "-", "error"),
            svc % ("retry", "unix", "-", "-", "n", "-", "-", "error"),
            svc % ("discard", "unix", "-", "-", "n", "-", "-", "discard"),
            svc % ("anvil", "unix", "-", "-", "n", "-", "1", "anvil"),
            svc % ("scache", "unix", "-", "-", "n", "-", "1", "scache"),
            svc % ("postlog", "unix-dgram", "n", "-", "n", "-", "1", "postlogd"),
            svc % ("sink", "unix", "-", "n", "n", "-", "-", "pipe"),
            "  flags= user=%s null_sender= argv=%s ${queue_id} ${sender} ${recipient}"
            % (SINK_USER, os.path.join(self.dir, "sink.sh")),
            "",
        ])

    def _start(self):
        old = time.time() - 60
        for name, text in (("main.cf", self._main_cf()), ("master.cf", self._master_cf())):
            path = os.path.join(self.conf, name)
            with open(path, "w") as f:
                f.write(text)
            # Postfix waits for a config file younger than a second or
            # two to settle (it may be in the middle of an edit)
            os.utime(path, (old, old))
        env = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "LANG": "C",
               "LD_LIBRARY_PATH": LIBDIR, "MAIL_CONFIG": self.conf,
               # what "postfix start" sets: log through postlogd
               "POSTLOG_SERVICE": "postlog", "POSTLOG_HOSTNAME": "postfix.test"}
        # -d: stay in the foreground, so this object owns master; its own
        # process group, so stop() reaches every daemon it started
        with open(os.path.join(self.dir, "master.err"), "ab") as err:
            self.proc = subprocess.Popen([os.path.join(DAEMONS, "master"), "-d", "-c", self.conf],
                                         env=env, stdin=subprocess.DEVNULL,
                                         stdout=subprocess.DEVNULL, stderr=err,
                                         start_new_session=True)
        deadline = time.time() + 15
        while time.time() < deadline:
            if self.proc.poll() is not None:
                self.proc = None
                return False
            if self._listening(self.submission) and self._listening(self.smtps):
                return True
            time.sleep(0.05)
        self._stop_master()
        return False

    @staticmethod
    def _listening(port):
        """Whether 127.0.0.1:port is in LISTEN state (read from the kernel:
        a probe connection would make smtpd log a lost connection)."""
        want = "0100007F:%04X" % port
        with open("/proc/net/tcp") as f:
            return any(l.split()[1] == want and l.split()[3] == "0A" for l in f.readlines()[1:])

    # --- use --------------------------------------------------------

    def messages(self, count=0, timeout=20):
        """The messages delivered to the sink so far, in queue-id order;
        waits up to timeout seconds for at least count of them."""
        deadline = time.time() + timeout
        while True:
            found = self._read_sink()
            if len(found) >= count or time.time() >= deadline:
                return found
            time.sleep(0.05)

    def _read_sink(self):
        new = os.path.join(self.sink, "new")
        out = []
        for name in sorted(os.listdir(new)):
            if not name.endswith(".env"):
                continue
            base = name[:-4]
            try:
                with open(os.path.join(new, name), "rb") as f:
                    env = f.read().split(b"\0")[:-1]
                with open(os.path.join(new, base + ".msg"), "rb") as f:
                    received, data = _split_received(f.read())
            except FileNotFoundError:
                continue        # cleared meanwhile

            out.append(Message(base.split(".")[0], env[0].decode(),
                               [r.decode() for r in env[1:]], received, data))
        return out

    def clear(self):
        """Forget what the sink holds (between tests sharing a server)."""
        new = os.path.join(self.sink, "new")
        for name in os.listdir(new):
            os.unlink(os.path.join(new, name))

    def smtpd_pids(self):
        """The smtpd processes of this instance (master's children)."""
        if self.proc is None:
            return []
        out = subprocess.run(["ps", "-o", "pid=,args=", "--ppid", str(self.proc.pid)],
                             capture_output=True, text=True).stdout
        return [int(l.split()[0]) for l in out.splitlines() if l.split()[1:2] == ["smtpd"]]

    def log_text(self):
        text = self.dovecot.log_text() if self.dovecot is not None else ""
        for name in ("master.err", "maillog"):
            try:
                with open(os.path.join(self.dir, name), errors="replace") as f:
                    text += f.read()
            except OSError:
                pass
        return text

    def _stop_master(self):
        if self.proc is None:
            return
        pid = self.proc.pid
        if self.proc.poll() is None:
            self.proc.terminate()     # master stops its daemons
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                pass
        # whatever is left of the group (a daemon slow to notice)
        try:
            os.killpg(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            pass
        self.proc = None

    def stop(self):
        self._stop_master()
        if self.dovecot is not None:
            self.dovecot.stop()
        shutil.rmtree(self.dir, ignore_errors=True)
