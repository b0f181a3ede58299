"""A private Dovecot auth service, as Postfix's SASL back end
(smtpd_sasl_type = dovecot): its own config, base_dir, state_dir and log
under a temp dir, a passwd-file of users, no mail protocols and so no
network listener at all; its one client socket (the auth listener) is
put where Postfix's smtpd looks for it. Nothing of the system's Dovecot
is read or changed. Started as root (dovecot's master drops to its
users dovecot and dovenull, which the dovecot-core package creates)."""
import os
import pwd
import shutil
import subprocess
import tempfile
import time

DOVECOT = "/usr/sbin/dovecot"


def available():
    """None when a private Dovecot can run here, else the reason."""
    if os.geteuid() != 0:
        return "Dovecot's master must start as root"
    if not os.access(DOVECOT, os.X_OK):
        return "Dovecot is not installed (package dovecot-core)"
    for user in ("dovecot", "dovenull"):
        try:
            pwd.getpwnam(user)
        except KeyError:
            return "no user %s (the dovecot-core package creates it)" % user
    return None


CONF = """\
base_dir = {dir}/run
state_dir = {dir}/state
instance_name = postie-test-{name}
protocols = none
log_path = {dir}/dovecot.log
info_log_path = {dir}/dovecot.log
ssl = no
auth_mechanisms = {mechanisms}
# TLS is Postfix's business (smtpd_tls_auth_only); the socket is local
disable_plaintext_auth = no
auth_verbose = yes
# each answer logged (never a password: auth_debug_passwords stays no)
auth_debug = yes
passdb {{
  driver = passwd-file
  args = scheme=PLAIN username_format=%u {dir}/passwd
}}
userdb {{
  driver = static
  args = uid=nobody gid=nogroup home=/nonexistent
}}
service auth {{
  unix_listener {socket} {{
    mode = 0660
    user = {owner}
    group = {owner}
  }}
}}
"""


class Dovecot:
    """users: {login: password}; mechanisms: the SASL mechanisms offered
    (PLAIN, LOGIN, CRAM-MD5); socket: where the auth listener goes, owned
    by owner (the user Postfix's smtpd runs as)."""

    def __init__(self, users, mechanisms, socket, owner):
        reason = available()
        if reason:
            raise RuntimeError(reason)
        self.dir = tempfile.mkdtemp(prefix="postie-dovecot.")
        os.chmod(self.dir, 0o755)        # dovecot's own users get to run/
        self.socket = socket
        for sub in ("run", "state"):
            os.mkdir(os.path.join(self.dir, sub), 0o755)
        with open(os.path.join(self.dir, "passwd"), "w") as f:
            for login, password in users.items():
                f.write("%s:{PLAIN}%s\n" % (login, password))
        os.chmod(os.path.join(self.dir, "passwd"), 0o644)   # read by auth-worker
        self.conf = os.path.join(self.dir, "dovecot.conf")
        with open(self.conf, "w") as f:
            f.write(CONF.format(dir=self.dir, name=os.path.basename(self.dir),
                                mechanisms=" ".join(m.lower() for m in mechanisms),
                                socket=socket, owner=owner))
        self.proc = subprocess.Popen([DOVECOT, "-F", "-c", self.conf],
                                     stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                     stderr=open(os.path.join(self.dir, "master.err"), "wb"),
                                     start_new_session=True)
        deadline = time.time() + 15
        while not os.path.exists(socket):
            if self.proc.poll() is not None or time.time() > deadline:
                text = self.log_text()
                self.stop()
                raise RuntimeError("Dovecot did not start: %s" % text[-2000:])
            time.sleep(0.05)

    def log_text(self):
        text = ""
        for name in ("master.err", "dovecot.log"):
            try:
                with open(os.path.join(self.dir, name), errors="replace") as f:
                    text += f.read()
            except OSError:
                pass
        return text

    def stop(self):
        if self.proc is not None:
            if self.proc.poll() is None:
                self.proc.terminate()
                try:
                    self.proc.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    os.killpg(self.proc.pid, 9)
                    self.proc.wait(timeout=10)
            self.proc = None
        shutil.rmtree(self.dir, ignore_errors=True)
        try:
            os.unlink(self.socket)
        except OSError:
            pass
