#!/usr/bin/python3
"""send.py -- how fast does a queue go out, in seconds and round trips?

Usage: tests/bench/send.py POSTIE_BIN [--delay MS] [--counts 20,200]
                           [--runs 5] [--flush N]
       (--delay 0 skips part 1)

Postfix's smtp-sink (unpacked by tests/tools.sh, as flush.sh uses it)
takes the mail on a free loopback port. Three parts:

1. Through tests/integration/latency.py at --delay ms each way (25 by
   default: a 50 ms round trip), N queued 4 KiB messages (--counts,
   20 and 200) sent by each tool; printed as seconds and as round trips
   per message (seconds / RTT / N), session set-up included:
     postie       postie deliver (one session for the queue)
     msmtp        msmtp-runqueue.sh from the msmtp package (one msmtp,
                  so one session, per message, as msmtpq does)
     smtp-source  Postfix's: smtp-source -d (one session, no pipelining)
2. Loopback, N = --flush (200): postie deliver against smtp-source -d,
   the median of --runs (5) runs each; printed as the rate ratio
   postie/smtp-source (target >= 0.9).
3. Loopback through a small relay in front of smtp-sink (relay.c, built
   here with cc), plain and as implicit TLS (the tests' CA,
   tests/integration/certs.py): postie's TLS flush against its plain one,
   the median of --runs runs each (target: TLS rate >= 0.8 x plain).

postie's and msmtp's queues are on a fresh journaled ext4 the benchmark
makes and loop-mounts (benchfs.py; BENCH_FS=here: the work directory
under /var/tmp instead): on this kind of machine's root file system,
ext4 without a journal mounted with online discard, every queue file
deliver removes costs a synchronous discard of about 125 us, more than
the rest of sending it on loopback.

Every run is checked: the tool exits 0, its queue is empty afterwards,
and smtp-sink counted exactly the messages sent (its -c record). Root
on Debian 12 (smtp-sink runs as nobody); msmtp is installed with
apt-get if missing.
"""
import argparse
import os
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "integration"))
import certs  # noqa: E402
from latency import LatencyProxy  # noqa: E402
from netutil import free_port  # noqa: E402
from benchfs import mount_fresh_fs, unmount  # noqa: E402

PF = os.environ.get("POSTIE_POSTFIX_DIR", "/var/tmp/postie-test-tools/postfix")
PF_ENV = {"LD_LIBRARY_PATH": os.path.join(PF, "usr/lib/postfix"), "PATH": "/usr/bin:/bin"}
FROM, RCPT = "alice@example.org", "bob@example.com"
MSG = (b"From: Alice <alice@example.org>\nTo: Bob <bob@example.com>\n"
       b"Subject: send benchmark\nMessage-ID: <bench@example.org>\n\n" +
       (b"x" * 71 + b"\n") * 55)
MSG = MSG[:4095] + b"\n"


def die(msg):
    sys.exit("send.py: error: %s" % msg)


class Sink:
    """smtp-sink -c on a free port; count() is the messages it took."""

    def __init__(self, work):
        self.out = os.path.join(work, "sink.out")
        for _ in range(10):
            self.port = free_port()
            self.proc = subprocess.Popen(
                [os.path.join(PF, "usr/sbin/smtp-sink"), "-c", "-u", "nobody",
                 "127.0.0.1:%d" % self.port, "1000"], env=PF_ENV,
                stdout=open(self.out, "wb"), stderr=subprocess.DEVNULL)
            for _ in range(100):
                try:
                    socket.create_connection(("127.0.0.1", self.port), 0.2).close()
                    return
                except OSError:
                    if self.proc.poll() is not None:
                        break
                    time.sleep(0.05)
            self.proc.kill()
            self.proc.wait()
        die("smtp-sink did not start")

    def count(self):
        with open(self.out, "rb") as f:
            recs = re.findall(rb"sess=\d+ quit=\d+ mesg=(\d+)", f.read())
        return int(recs[-1]) if recs else 0

    def stop(self):
        self.proc.terminate()
        self.proc.wait()


class Relay:
    """127.0.0.1:port -> the sink, plain or as an implicit-TLS server:
    tests/bench/relay.c (OpenSSL, reading a TLS record at a time, as a C
    server such as Postfix's smtpd does), built into the work directory."""

    def __init__(self, binary, target, tls):
        args = [binary, str(target)]
        if tls:
            args += [certs.path("localhost.crt"), certs.path("localhost.key")]
        self.proc = subprocess.Popen(args, stdout=subprocess.PIPE)
        line = self.proc.stdout.readline()
        if not line.strip().isdigit():
            die("relay did not start")
        self.port = int(line)

    def stop(self):
        self.proc.terminate()
        self.proc.wait()


def build_relay(work):
    out = os.path.join(work, "relay")
    subprocess.run(["cc", "-O2", "-o", out, os.path.join(HERE, "relay.c"), "-lssl", "-lcrypto"],
                   check=True)
    return out


class Postie:
    def __init__(self, binary, work):
        self.bin = binary
        self.dir = tempfile.mkdtemp(prefix="postie.", dir=work)

    def fill(self, n, port, tls=False):
        shutil.rmtree(os.path.join(self.dir, "queue"), ignore_errors=True)
        self.conf = os.path.join(self.dir, "config")
        with open(self.conf, "w") as f:
            f.write("queue %s/queue\nlog %s/log\nbounce none\n"
                    "identity bench\n  default\n  host %s\n  port %d\n  tls %s\n%s"
                    % (self.dir, self.dir, "localhost" if tls else "127.0.0.1", port,
                       "tls" if tls else "none",
                       "  tls-ca %s\n" % certs.path("ca.crt") if tls else ""))
        os.chmod(self.conf, 0o600)
        for _ in range(n):
            subprocess.run([self.bin, "sendmail", "-C", self.conf, "-odq", "-i", "-f", FROM,
                            RCPT], input=MSG, check=True, env=self.env())

    def env(self):
        return dict(os.environ, HOME=self.dir)

    def send(self):
        return [self.bin, "deliver", "-C", self.conf]

    def left(self):
        new = os.path.join(self.dir, "queue", "new")
        return len(os.listdir(new)) if os.path.isdir(new) else 0


class Msmtp:
    def __init__(self, work):
        found = subprocess.run(["dpkg", "-L", "msmtp"], capture_output=True, text=True).stdout
        runq = [l for l in found.splitlines() if l.endswith("/msmtp-runqueue.sh")]
        if not runq:
            die("msmtp-runqueue.sh not found in package msmtp")
        self.runq = runq[0]
        self.enq = os.path.join(os.path.dirname(self.runq), "msmtp-enqueue.sh")
        self.dir = tempfile.mkdtemp(prefix="msmtp.", dir=work)

    def fill(self, n, port):
        q = os.path.join(self.dir, ".msmtpqueue")
        shutil.rmtree(q, ignore_errors=True)
        os.mkdir(q, 0o700)
        self.rc = os.path.join(self.dir, ".msmtprc")
        with open(self.rc, "w") as f:
            f.write("defaults\nauth off\ntls off\naccount bench\nhost 127.0.0.1\nport %d\n"
                    "from %s\naccount default : bench\n" % (port, FROM))
        os.chmod(self.rc, 0o600)
        for _ in range(n):
            subprocess.run(["/bin/sh", self.enq, "-i", "-f", FROM, RCPT], input=MSG,
                           check=True, env=self.env(), stdout=subprocess.DEVNULL)

    def env(self):
        return dict(os.environ, HOME=self.dir)

    def send(self):
        return ["/bin/sh", self.runq, "--file=%s" % self.rc]

    def left(self):
        return len([n for n in os.listdir(os.path.join(self.dir, ".msmtpqueue"))
                    if n.endswith(".mail")])


def timed(cmd, env, sink, n, left=lambda: 0):
    """Seconds cmd takes; checks exit 0, nothing left, n more at the sink."""
    before = sink.count()
    t0 = time.monotonic()
    r = subprocess.run(cmd, env=env, capture_output=True, timeout=900)
    secs = time.monotonic() - t0
    if r.returncode != 0:
        die("%s exited %d: %s" % (cmd[0], r.returncode, r.stderr.decode(errors="replace")[-500:]))
    if left():
        die("%s left %d messages queued" % (cmd[0], left()))
    for _ in range(100):            # the sink notes a message at its dot
        if sink.count() - before == n:
            break
        time.sleep(0.02)
    if sink.count() - before != n:
        die("%s: smtp-sink took %d messages, not %d" % (cmd[0], sink.count() - before, n))
    return secs


def source(n, port):
    return [os.path.join(PF, "usr/sbin/smtp-source"), "-d", "-s", "1", "-m", str(n),
            "-l", "4096", "-f", FROM, "-t", RCPT, "127.0.0.1:%d" % port]


def latency_part(a, sink, postie, msmtp):
    """Part 1: each tool through the latency proxy, N messages each."""
    rtt = 2 * a.delay / 1000.0
    print("== send through a %.0f ms round trip (latency.py), 4 KiB messages" % (rtt * 1000))
    print("%-12s %6s %9s %10s" % ("tool", "msgs", "seconds", "RTT/msg"))
    lp = LatencyProxy(sink.port, a.delay).start()
    results = {}
    for n in [int(x) for x in a.counts.split(",")]:
        postie.fill(n, lp.port)
        msmtp.fill(n, lp.port)
        for name, cmd, env, left in (
                ("postie", postie.send(), postie.env(), postie.left),
                ("msmtp", msmtp.send(), msmtp.env(), msmtp.left),
                ("smtp-source", source(n, lp.port), PF_ENV, lambda: 0)):
            s = timed(cmd, env, sink, n, left)
            results[(name, n)] = s
            print("%-12s %6d %9.2f %10.2f" % (name, n, s, s / rtt / n), flush=True)
    lp.stop()
    most = max(n for _, n in results)
    print("postie RTT/msg at %d: %.2f (target <= 2.0)"
          % (most, results[("postie", most)] / rtt / most))
    print()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("postie")
    ap.add_argument("--delay", type=float, default=25)
    ap.add_argument("--counts", default="20,200")
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--flush", type=int, default=200)
    a = ap.parse_args()
    if not os.access(os.path.join(PF, "usr/sbin/smtp-sink"), os.X_OK):
        subprocess.run(["bash", os.path.join(HERE, "..", "tools.sh")], check=True)
    if shutil.which("msmtp") is None:
        subprocess.run(["apt-get", "install", "-y", "--no-install-recommends", "msmtp"],
                       check=True, env=dict(os.environ, DEBIAN_FRONTEND="noninteractive"))
    work = tempfile.mkdtemp(prefix="postie-bench-send.", dir="/var/tmp")
    os.chmod(work, 0o711)
    fs = mount_fresh_fs(work, size=1 << 30, who="send.py")
    print("queues on %s\n" % ("a fresh journaled ext4 (loop-mounted; BENCH_FS=here for %s)"
                              % work if fs else work))
    sink = Sink(work)
    try:
        postie = Postie(os.path.abspath(a.postie), fs or work)
        msmtp = Msmtp(fs or work)
        if a.delay > 0:
            latency_part(a, sink, postie, msmtp)

        n = a.flush
        print("== loopback flush, %d messages, median of %d" % (n, a.runs))
        ps, ss = [], []
        for _ in range(a.runs):
            postie.fill(n, sink.port)
            ps.append(timed(postie.send(), postie.env(), sink, n, postie.left))
            ss.append(timed(source(n, sink.port), PF_ENV, sink, n))
        mp, ms = statistics.median(ps), statistics.median(ss)
        print("%-12s %9.3f s  %8.0f msg/s" % ("postie", mp, n / mp))
        print("%-12s %9.3f s  %8.0f msg/s" % ("smtp-source", ms, n / ms))
        print("postie/smtp-source rate: %.2f (target >= 0.9)" % (ms / mp))

        print("\n== TLS flush against plain, through a relay, %d messages, median of %d"
              % (n, a.runs))
        relay = build_relay(work)
        plain, tls = Relay(relay, sink.port, False), Relay(relay, sink.port, True)
        pt, tt = [], []
        for _ in range(a.runs):
            postie.fill(n, plain.port)
            pt.append(timed(postie.send(), postie.env(), sink, n, postie.left))
            postie.fill(n, tls.port, tls=True)
            tt.append(timed(postie.send(), postie.env(), sink, n, postie.left))
        plain.stop()
        tls.stop()
        mpl, mtl = statistics.median(pt), statistics.median(tt)
        print("%-12s %9.3f s  %8.0f msg/s" % ("plain", mpl, n / mpl))
        print("%-12s %9.3f s  %8.0f msg/s" % ("TLS", mtl, n / mtl))
        print("TLS/plain rate: %.2f (target >= 0.8)" % (mpl / mtl))
    finally:
        sink.stop()
        unmount(work)
        if not os.environ.get("BENCH_KEEP"):
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
