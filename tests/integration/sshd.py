"""A private OpenSSH sshd on a free 127.0.0.1 port: its own config, host
keys (Ed25519 and ECDSA), authorized_keys and log under a temp dir.
Started and stopped by the tests; logs at DEBUG1 so a test can see the
sessions and direct-tcpip channels it served."""
import pwd
import os
import signal
import shutil
import socket
import subprocess
import tempfile
import time
from netutil import free_port

SSHD = "/usr/sbin/sshd"


def available():
    return os.access(SSHD, os.X_OK) and shutil.which("ssh-keygen") is not None


def keygen(path, kind="ed25519"):
    subprocess.run(["ssh-keygen", "-q", "-t", kind, "-N", "", "-C", os.path.basename(path),
                    "-f", path], check=True, capture_output=True)
    return path


def fingerprint(pub):
    """SHA256:... of a public key file, as ssh-keygen -l prints it."""
    out = subprocess.run(["ssh-keygen", "-l", "-E", "sha256", "-f", pub], check=True,
                         capture_output=True, text=True).stdout
    return out.split()[1]




class Sshd:
    def __init__(self, authorized=(), subsystem="internal-sftp", plain_shell=False,
                 max_auth_tries=None):
        self.subsystem = subsystem    # a command: a scripted SFTP server
        self.max_auth_tries = max_auth_tries    # sshd's MaxAuthTries, or its default
        # a remote command (rsync's server) runs through the user's shell,
        # which reads ~/.bashrc when started by sshd; plain_shell masks
        # that file for this sshd alone (a mount namespace of its own, as
        # root; later mounts still reach it), so a benchmark does not time this machine's shell set-up
        self.plain_shell = plain_shell
        self.dir = tempfile.mkdtemp(prefix="postie-sshd.")
        self.user = pwd.getpwuid(os.getuid()).pw_name
        self.host_ed25519 = keygen(os.path.join(self.dir, "host_ed25519"))
        self.host_ecdsa = keygen(os.path.join(self.dir, "host_ecdsa"), "ecdsa")
        self.authorized = os.path.join(self.dir, "authorized_keys")
        with open(self.authorized, "w") as f:
            for pub in authorized:
                f.write(open(pub).read())
        os.chmod(self.authorized, 0o600)
        self.log = os.path.join(self.dir, "sshd.log")
        self.proc = None
        if os.geteuid() == 0:
            os.makedirs("/run/sshd", mode=0o755, exist_ok=True)   # privsep
        for _ in range(10):
            self.port = free_port()
            if self._start():
                return
        raise RuntimeError("sshd did not start: %s" % self.log_text()[-2000:])

    def _start(self):
        conf = os.path.join(self.dir, "sshd_config")
        with open(conf, "w") as f:
            f.write("\n".join([
                "Port %d" % self.port,
                "ListenAddress 127.0.0.1",
                "HostKey %s" % self.host_ed25519,
                "HostKey %s" % self.host_ecdsa,
                "PidFile %s" % os.path.join(self.dir, "sshd.pid"),
                "AuthorizedKeysFile %s" % self.authorized,
                "StrictModes no",
                "UsePAM no",
                "PasswordAuthentication no",
                "KbdInteractiveAuthentication no",
                "PubkeyAuthentication yes",
                "PermitRootLogin prohibit-password",
                "AllowTcpForwarding yes",
                "Subsystem sftp %s" % self.subsystem,
                "LogLevel DEBUG1",
                "MaxStartups 50",
                "MaxAuthTries %d" % (self.max_auth_tries or 6),
                "",
            ]))
        cmd = [SSHD, "-D", "-f", conf, "-E", self.log]
        rc = os.path.join(pwd.getpwuid(os.getuid()).pw_dir, ".bashrc")
        if self.plain_shell and os.geteuid() == 0 and os.path.isfile(rc) and shutil.which("unshare"):
            cmd = ["unshare", "-m", "--propagation", "slave", "sh", "-c",
                   'mount --bind /dev/null "$0" && exec "$@"', rc] + cmd
        self.proc = subprocess.Popen(cmd,
                                     stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL)
        for _ in range(100):
            if self.proc.poll() is not None:
                return False
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                return True
            except OSError:
                time.sleep(0.05)
        self.stop()
        return False

    def authorize(self, pub):
        with open(self.authorized, "a") as f:
            f.write(open(pub).read())

    def known_hosts_line(self, kind="ed25519", name=None):
        pub = open((self.host_ed25519 if kind == "ed25519" else self.host_ecdsa) + ".pub").read()
        k = pub.split()
        return "%s %s %s\n" % (name or "[127.0.0.1]:%d" % self.port, k[0], k[1])

    def host_fingerprint(self, kind="ed25519"):
        return fingerprint((self.host_ed25519 if kind == "ed25519" else self.host_ecdsa) + ".pub")

    def log_text(self):
        try:
            return open(self.log, errors="replace").read()
        except OSError:
            return ""

    def kill_sessions(self):
        """SIGKILL this server's session processes (its descendants), the
        listener left running: a link cut mid-session. Never by name
        (pkill -f "sshd: USER" would cut every session of the user on the
        machine: other tests' and other runs' too)."""
        if self.proc is None:
            return 0
        children = {}
        for d in os.listdir("/proc"):
            if not d.isdigit():
                continue
            try:
                with open("/proc/%s/stat" % d) as f:
                    ppid = int(f.read().rsplit(")", 1)[1].split()[1])
            except (OSError, ValueError, IndexError):
                continue
            children.setdefault(ppid, []).append(int(d))
        victims, todo = [], list(children.get(self.proc.pid, []))
        while todo:
            pid = todo.pop()
            victims.append(pid)
            todo.extend(children.get(pid, []))
        for pid in victims:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        return len(victims)

    def stop(self):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        shutil.rmtree(self.dir, ignore_errors=True)
