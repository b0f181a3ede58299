#!/usr/bin/python3
"""fetch.py -- how fast does new mail come down from a server's Maildir?

Usage: tests/bench/fetch.py POSTIE_BIN [N]

Starts a private OpenSSH sshd on a free loopback port (as the tests do,
tests/integration/sshd.py), fills a server Maildir's new/ with N 4 KiB
messages for each tool, and times how long each takes to move them into
a local Maildir:

  postie      postie fetch (move mode: download, fsync, link, fsync dir,
              then remove on the server)
  sftp        the classic script: sftp -b with "get new/*" then "rm new/*"
              (no fsync; the rm also removes mail that arrived meanwhile)
  rsync       rsync -a --remove-source-files -e ssh (no fsync)

Each result is checked: N messages locally, byte for byte, none left on
the server. Prints a table and postie's rate against the others'.
Needs root on Debian 12 for rsync (installed with apt-get if missing);
without rsync that row is skipped and says so.

BENCH_WRAP="strace -f -c -o FILE" (any command prefix, split on blanks)
runs postie's fetch under it, for profiling.
"""
import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "integration"))
import sshd  # noqa: E402


def fill(maildir, n, payload):
    for sub in ("tmp", "new", "cur"):
        os.makedirs(os.path.join(maildir, sub), exist_ok=True)
    for i in range(n):
        name = "1700%06d.M%dP%d.bench,S=%d" % (i, i, i, len(payload))
        with open(os.path.join(maildir, "new", name), "wb") as f:
            f.write(payload)


def check(tool, local_new, server_new, n, digest):
    got = sorted(os.listdir(local_new)) if os.path.isdir(local_new) else []
    if len(got) != n:
        sys.exit("fetch.py: %s: %d messages arrived, expected %d" % (tool, len(got), n))
    for name in got:
        with open(os.path.join(local_new, name), "rb") as f:
            if hashlib.sha256(f.read()).hexdigest() != digest:
                sys.exit("fetch.py: %s: %s differs from the server's" % (tool, name))
    left = os.listdir(server_new)
    if left:
        sys.exit("fetch.py: %s: %d messages left on the server" % (tool, len(left)))


def timed(cmd, env, timeout=600):
    t = time.monotonic()
    r = subprocess.run(cmd, env=env, capture_output=True, timeout=timeout)
    took = time.monotonic() - t
    if r.returncode != 0:
        sys.exit("fetch.py: %s failed (exit %d): %s" % (cmd[0], r.returncode,
                                                     r.stderr.decode(errors="replace")[-500:]))
    return took


def main():
    if len(sys.argv) not in (2, 3):
        sys.exit("usage: fetch.py POSTIE_BIN [N]")
    postie = os.path.abspath(sys.argv[1])
    n = int(sys.argv[2]) if len(sys.argv) == 3 else 1000
    if not os.access(postie, os.X_OK):
        sys.exit("fetch.py: %s is not executable" % postie)
    if not sshd.available():
        sys.exit("fetch.py: needs OpenSSH's sshd and ssh-keygen (openssh-server)")
    if shutil.which("rsync") is None and os.geteuid() == 0:
        subprocess.run(["apt-get", "install", "-y", "-qq", "--no-install-recommends", "rsync"],
                       env=dict(os.environ, DEBIAN_FRONTEND="noninteractive"),
                       capture_output=True)
    work = tempfile.mkdtemp(prefix="postie-fetch-bench.", dir="/var/tmp")
    home = os.path.join(work, "home")
    ssh_dir = os.path.join(home, ".ssh")
    os.makedirs(ssh_dir, mode=0o700)
    key = sshd.keygen(os.path.join(ssh_dir, "id_ed25519"))
    server = sshd.Sshd(authorized=[key + ".pub"])
    try:
        with open(os.path.join(ssh_dir, "known_hosts"), "w") as f:
            f.write(server.known_hosts_line())
        env = dict(os.environ, HOME=home)
        env.pop("SSH_AUTH_SOCK", None)
        ssh_opts = ["-F", "/dev/null", "-i", key, "-o", "UserKnownHostsFile=%s/known_hosts" % ssh_dir,
                    "-o", "BatchMode=yes"]
        payload = (b"From: a@example.org\nTo: b@example.org\nSubject: bench\n\n" +
                   b"x" * 75 + b"\n") * 52
        payload = payload[:4096]
        digest = hashlib.sha256(payload).hexdigest()
        results = []

        # postie
        srv = os.path.join(work, "srv-postie", "Maildir")
        loc = os.path.join(work, "loc-postie")
        fill(srv, n, payload)
        conf = os.path.join(work, "postie.conf")
        with open(conf, "w") as f:
            f.write("queue %s/queue\nlog %s/postie.log\nfetch bench\n  ssh %s@127.0.0.1:%d\n"
                    "  ssh-key %s\n  remote %s\n  local %s\n" %
                    (work, work, server.user, server.port, key, srv, loc))
        took = timed(os.environ.get("BENCH_WRAP", "").split() + [postie, "fetch", "-C", conf], env)
        check("postie", os.path.join(loc, "new"), os.path.join(srv, "new"), n, digest)
        results.append(("postie", took))

        # sftp batch script
        srv = os.path.join(work, "srv-sftp", "Maildir")
        loc = os.path.join(work, "loc-sftp")
        fill(srv, n, payload)
        for sub in ("tmp", "new", "cur"):
            os.makedirs(os.path.join(loc, sub))
        batch = os.path.join(work, "sftp.batch")
        with open(batch, "w") as f:
            f.write("get -p %s/new/* %s/new/\nrm %s/new/*\n" % (srv, loc, srv))
        took = timed(["sftp", "-q", "-P", str(server.port)] + ssh_opts +
                     ["-b", batch, "%s@127.0.0.1" % server.user], env)
        check("sftp", os.path.join(loc, "new"), os.path.join(srv, "new"), n, digest)
        results.append(("sftp -b", took))

        # rsync
        if shutil.which("rsync"):
            srv = os.path.join(work, "srv-rsync", "Maildir")
            loc = os.path.join(work, "loc-rsync")
            fill(srv, n, payload)
            os.makedirs(os.path.join(loc, "new"))
            took = timed(["rsync", "-a", "--remove-source-files", "-e",
                          " ".join(["ssh", "-p", str(server.port)] + ssh_opts),
                          "%s@127.0.0.1:%s/new/" % (server.user, srv),
                          os.path.join(loc, "new") + "/"], env)
            check("rsync", os.path.join(loc, "new"), os.path.join(srv, "new"), n, digest)
            results.append(("rsync", took))
        else:
            print("fetch.py: rsync not installed; its row is skipped", file=sys.stderr)
    finally:
        server.stop()
        shutil.rmtree(work, ignore_errors=True)

    print("\n%-10s %9s %10s" % ("tool", "seconds", "msgs/s"))
    for tool, took in results:
        print("%-10s %9.3f %10.1f" % (tool, took, n / took))
    p = results[0][1]
    print()
    for tool, took in results[1:]:
        print("postie/%s: %.2f (postie fsyncs every message; %s does not)" % (tool, took / p, tool))


if __name__ == "__main__":
    main()
