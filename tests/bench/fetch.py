#!/usr/bin/python3
"""fetch.py -- how fast does new mail come down from a server's Maildir?

Usage: tests/bench/fetch.py POSTIE_BIN [N | FOLDERSxN ...] [--delay MS]

Starts a private OpenSSH sshd on a free loopback port (as the tests do,
tests/integration/sshd.py), fills server Maildirs with ~4 KiB messages
for each tool, and times how long each takes to move them into a local
Maildir:

  postie      postie fetch (move mode: download, fsync, link, fsync dir,
              then remove on the server), all folders in one job
  sftp -b     the classic script: one sftp -b session with "get F/new/*"
              then "rm F/new/*" per folder (no fsync; the rm also
              removes mail that arrived meanwhile)
  rsync       rsync -a --remove-source-files -e ssh, one per folder, all
              folders at once (no fsync)

A scenario "17x10" is 17 folders (INBOX and 16 others) of 10 messages;
"N" alone is 1xN. Without scenarios: 17x10 17x100 1x200 1x2000, each on
loopback and through tests/integration/latency.py, a proxy that delays each
direction by 25 ms (--delay MS sets it; 0 runs loopback only). Through
the proxy each result is also given in round trips (seconds / RTT).
sftp -b through the proxy is run for at most BENCH_SFTP_MAX messages
(default 200): it pays round trips per file and would take minutes.

Each result is checked: every message locally, byte for byte, none left
on the server. postie's peak RSS is printed too: measured by maxrss.c
(built here with cc), whose child postie is, since a process's peak RSS
survives exec and a command started straight from Python would report
Python's. Needs root on Debian 12
for rsync (installed with apt-get if missing); without rsync that row is
skipped and says so.

BENCH_WRAP="strace -f -c -o FILE" (any command prefix, split on blanks)
runs postie's fetch under it, for profiling.
"""
import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "integration"))
import sshd  # noqa: E402
from latency import LatencyProxy  # noqa: E402
from benchfs import mount_fresh_fs, unmount  # noqa: E402

def folders_of(nf):
    return ["INBOX"] + [".f%02d" % i for i in range(1, nf)]


def fdir(maildir, folder):
    return maildir if folder == "INBOX" else os.path.join(maildir, folder)


def fill(maildir, nf, n, payload):
    for folder in folders_of(nf):
        d = fdir(maildir, folder)
        for sub in ("tmp", "new", "cur"):
            os.makedirs(os.path.join(d, sub), exist_ok=True)
        for i in range(n):
            name = "1700%06d.M%dP%d.bench,S=%d" % (i, i, i, len(payload))
            with open(os.path.join(d, "new", name), "wb") as f:
                f.write(payload)


def check(tool, srv, loc, nf, n, digest):
    for folder in folders_of(nf):
        local_new = os.path.join(fdir(loc, folder), "new")
        got = sorted(os.listdir(local_new)) if os.path.isdir(local_new) else []
        if len(got) != n:
            sys.exit("fetch.py: %s: %s: %d messages arrived, expected %d" % (tool, folder, len(got), n))
        for name in got:
            with open(os.path.join(local_new, name), "rb") as f:
                if hashlib.sha256(f.read()).hexdigest() != digest:
                    sys.exit("fetch.py: %s: %s differs from the server's" % (tool, name))
        left = os.listdir(os.path.join(fdir(srv, folder), "new"))
        if left:
            sys.exit("fetch.py: %s: %d messages left on the server" % (tool, len(left)))


def build_maxrss(work):
    """maxrss.c, built into the work directory."""
    out = os.path.join(work, "maxrss")
    subprocess.run(["cc", "-O2", "-o", out, os.path.join(HERE, "maxrss.c")], check=True)
    return out


def timed(cmds, env, timeout=1800, rss_of=None):
    """Run the commands at once; seconds until the last ends. rss_of, a
    maxrss binary: the first command runs under it and its peak RSS (KiB)
    is returned too (0 otherwise)."""
    rss_file = None
    if rss_of:
        fd, rss_file = tempfile.mkstemp(prefix="postie-fetch-bench-rss.")
        os.close(fd)
        cmds = [[rss_of, rss_file] + cmds[0]] + cmds[1:]
    def cpu():
        with open("/proc/stat") as f:
            v = [int(x) for x in f.readline().split()[1:]]
        return v[0] + v[1] + v[2] + v[5] + v[6], sum(v)
    c0 = cpu()
    t = time.monotonic()
    procs = [subprocess.Popen(c, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
             for c in cmds]
    # a blocking wait: Popen.wait(timeout) polls every 50 ms, which
    # rounded every time up to the next 50 ms; a timer kills instead
    watchdog = threading.Timer(timeout, lambda: [p.kill() for p in procs])
    watchdog.start()
    for p in procs:
        p.wait()
    took = time.monotonic() - t
    watchdog.cancel()
    c1 = cpu()
    if os.environ.get("BENCH_CPU"):
        print("  busy %.2f s of cpu in %.2f s wall" % ((c1[0] - c0[0]) / os.sysconf("SC_CLK_TCK"), took),
              file=sys.stderr)
    for c, p in zip(cmds, procs):
        if p.returncode != 0:
            raise RuntimeError("%s failed (exit %d): %s" % (c[0], p.returncode,
                               p.stderr.read().decode(errors="replace")[-300:].strip()))
        p.stderr.close()
    rss = 0
    if rss_file:
        with open(rss_file) as f:
            rss = int(f.read())
        os.unlink(rss_file)
    return took, rss


class Bench:
    def __init__(self, postie, work, server, key, ssh_dir, env, payload):
        self.postie, self.work, self.server = postie, work, server
        self.key, self.ssh_dir, self.env = key, ssh_dir, env
        self.payload = payload
        self.digest = hashlib.sha256(payload).hexdigest()
        self.runs = 0
        self.runs_dir = work
        self.maxrss = build_maxrss(work)

    def fresh(self, tool):
        self.runs += 1
        base = os.path.join(self.runs_dir, "run%d-%s" % (self.runs, tool.split()[0]))
        return os.path.join(base, "srv", "Maildir"), os.path.join(base, "loc")

    def ssh_opts(self):
        return ["-F", "/dev/null", "-i", self.key, "-o",
                "UserKnownHostsFile=%s/known_hosts" % self.ssh_dir, "-o", "BatchMode=yes"]

    def postie_run(self, port, nf, n):
        srv, loc = self.fresh("postie")
        fill(srv, nf, n, self.payload)
        conf = os.path.join(os.path.dirname(loc), "postie.conf")
        with open(conf, "w") as f:
            f.write("queue %s/queue\nlog %s/postie.log\nfetch bench\n  ssh %s@127.0.0.1:%d\n"
                    "  ssh-key %s\n  remote %s\n  local %s\n  folders INBOX .f*\n" %
                    (self.work, self.work, self.server.user, port, self.key, srv, loc))
        took, rss = timed([os.environ.get("BENCH_WRAP", "").split() +
                           [self.postie, "fetch", "-C", conf]], self.env,
                          rss_of=self.maxrss)
        check("postie", srv, loc, nf, n, self.digest)
        return took, rss

    def sftp_run(self, port, nf, n):
        srv, loc = self.fresh("sftp")
        fill(srv, nf, n, self.payload)
        batch = os.path.join(os.path.dirname(loc), "sftp.batch")
        with open(batch, "w") as f:
            for folder in folders_of(nf):
                ld = fdir(loc, folder)
                for sub in ("tmp", "new", "cur"):
                    os.makedirs(os.path.join(ld, sub))
                f.write("get -p %s/new/* %s/new/\nrm %s/new/*\n" %
                        (fdir(srv, folder), ld, fdir(srv, folder)))
        took, _ = timed([["sftp", "-q", "-P", str(port)] + self.ssh_opts() +
                         ["-b", batch, "%s@127.0.0.1" % self.server.user]], self.env)
        check("sftp", srv, loc, nf, n, self.digest)
        return took, 0

    def rsync_run(self, port, nf, n):
        srv, loc = self.fresh("rsync")
        fill(srv, nf, n, self.payload)
        cmds = []
        for folder in folders_of(nf):
            ld = os.path.join(fdir(loc, folder), "new")
            os.makedirs(ld)
            cmds.append(["rsync", "-a", "--remove-source-files", "-e",
                         " ".join(["ssh", "-p", str(port)] + self.ssh_opts()),
                         "%s@127.0.0.1:%s/new/" % (self.server.user, fdir(srv, folder)),
                         ld + "/"])
        took, _ = timed(cmds, self.env)
        check("rsync", srv, loc, nf, n, self.digest)
        return took, 0


def parse_scenario(s):
    if "x" in s:
        nf, n = s.split("x", 1)
        return int(nf), int(n)
    return 1, int(s)


def main():
    args = sys.argv[1:]
    delay = 25.0
    if "--delay" in args:
        i = args.index("--delay")
        delay = float(args[i + 1])
        del args[i:i + 2]
    if not args:
        sys.exit("usage: fetch.py POSTIE_BIN [N | FOLDERSxN ...] [--delay MS]")
    postie = os.path.abspath(args[0])
    scenarios = [parse_scenario(a) for a in args[1:]] or [(17, 10), (17, 100), (1, 200), (1, 2000)]
    if not os.access(postie, os.X_OK):
        sys.exit("fetch.py: %s is not executable" % postie)
    if not sshd.available():
        sys.exit("fetch.py: needs OpenSSH's sshd and ssh-keygen (openssh-server)")
    if shutil.which("rsync") is None and os.geteuid() == 0:
        subprocess.run(["apt-get", "install", "-y", "-qq", "--no-install-recommends", "rsync"],
                       env=dict(os.environ, DEBIAN_FRONTEND="noninteractive"),
                       capture_output=True)
    if shutil.which("rsync") is None:
        print("fetch.py: rsync not installed; its rows are skipped", file=sys.stderr)
    sftp_max = int(os.environ.get("BENCH_SFTP_MAX", "200"))
    work = tempfile.mkdtemp(prefix="postie-fetch-bench.", dir="/var/tmp")
    home = os.path.join(work, "home")
    ssh_dir = os.path.join(home, ".ssh")
    os.makedirs(ssh_dir, mode=0o700)
    key = sshd.keygen(os.path.join(ssh_dir, "id_ed25519"))
    # mounted before sshd starts: its mount namespace (plain_shell: the
    # server user's ~/.bashrc masked, which rsync's remote command would
    # run and sftp's subsystem never does) is a copy taken then
    fs = mount_fresh_fs(work, who="fetch.py")
    server = sshd.Sshd(authorized=[key + ".pub"], plain_shell=True)
    proxy = LatencyProxy(server.port, delay).start() if delay > 0 else None
    rows = []
    try:
        with open(os.path.join(ssh_dir, "known_hosts"), "w") as f:
            f.write(server.known_hosts_line())
            if proxy:
                f.write(server.known_hosts_line(name="[127.0.0.1]:%d" % proxy.port))
        env = dict(os.environ, HOME=home)
        env.pop("SSH_AUTH_SOCK", None)
        payload = (b"From: a@example.org\nTo: b@example.org\nSubject: bench\n\n" +
                   b"x" * 75 + b"\n") * 52
        payload = payload[:4096]
        b = Bench(postie, work, server, key, ssh_dir, env, payload)
        if fs:
            b.runs_dir = fs
        print("fetch.py: the Maildirs are on %s" % (
            "a fresh journaled ext4 (loop-mounted; BENCH_FS=here for %s)" % work if fs
            else work), file=sys.stderr)
        links = [("loopback", server.port, 0.0)]
        if proxy:
            links.append(("%g ms RTT" % (2 * delay), proxy.port, 2 * delay / 1000.0))
        for link, port, rtt in links:
            for nf, n in scenarios:
                total = nf * n
                for tool, run in (("postie", b.postie_run), ("sftp -b", b.sftp_run),
                                  ("rsync", b.rsync_run)):
                    if tool == "rsync" and shutil.which("rsync") is None:
                        continue
                    if tool == "sftp -b" and rtt > 0 and total > sftp_max:
                        rows.append((link, "%dx%d" % (nf, n), tool, None, 0, rtt, total))
                        continue
                    try:
                        took, rss = run(port, nf, n)
                    except RuntimeError as e:
                        if tool == "postie":
                            sys.exit("fetch.py: %s" % e)
                        # a peer that fails is a row, not the end of the run
                        print("fetch.py: %s: %s" % (tool, e), file=sys.stderr)
                        rows.append((link, "%dx%d" % (nf, n), tool, "failed", 0, rtt, total))
                        continue
                    rows.append((link, "%dx%d" % (nf, n), tool, took, rss, rtt, total))
                    print("%-12s %-8s %-8s %8.3f s" % (link, "%dx%d" % (nf, n), tool, took),
                          file=sys.stderr, flush=True)
    finally:
        if proxy:
            proxy.stop()
        server.stop()
        unmount(work)
        shutil.rmtree(work, ignore_errors=True)

    print("\n%-12s %-8s %-8s %9s %8s %10s %9s" % ("link", "folders", "tool", "seconds",
                                                 "RTTs", "msgs/s", "RSS KiB"))
    for link, scen, tool, took, rss, rtt, total in rows:
        if took is None or took == "failed":
            print("%-12s %-8s %-8s %9s %8s %10s %9s" % (link, scen, tool, took or "skipped",
                                                       "-", "-", "-"))
            continue
        print("%-12s %-8s %-8s %9.3f %8s %10.1f %9s" % (
            link, scen, tool, took, "%.1f" % (took / rtt) if rtt else "-", total / took,
            rss or "-"))
    print()
    by = {}
    for link, scen, tool, took, rss, rtt, total in rows:
        by[(link, scen, tool)] = took
    for (link, scen, tool), took in by.items():
        p = by.get((link, scen, "postie"))
        if tool != "postie" and isinstance(took, float) and p:
            print("%-12s %-8s postie is %.2fx %s's rate (postie fsyncs every message; %s does not)" %
                  (link, scen, took / p, tool, tool))


if __name__ == "__main__":
    main()
