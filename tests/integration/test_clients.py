"""Real clients and a real MTA sink: git send-email drives postie's
sendmail, and postie delivers into Postfix's smtp-sink."""
import os
import shutil
import subprocess
import time
import unittest

from pt import QueueCase
from smtpserver import Server
from netutil import free_port

SINK_DIR = os.environ.get("POSTIE_POSTFIX_DIR", "/var/tmp/postie-test-tools/postfix")
SMTP_SINK = os.path.join(SINK_DIR, "usr/sbin/smtp-sink")


class TestGitSendEmail(QueueCase):
    @unittest.skipUnless(shutil.which("git") and os.path.exists("/usr/lib/git-core/git-send-email"),
                         "git send-email is not installed (package git-email)")
    def test_patch_series_goes_out_in_one_connection(self):
        srv = Server()
        self.addCleanup(srv.stop)
        self.write_config("batch-delay 2s\nidentity t\n  default\n  host 127.0.0.1\n"
                          "  port %d\n  tls none\n" % srv.port)
        repo = os.path.join(self.dir, "repo")
        env = dict(self.env, GIT_AUTHOR_NAME="Alice Example", GIT_AUTHOR_EMAIL="alice@example.org",
                   GIT_COMMITTER_NAME="Alice Example", GIT_COMMITTER_EMAIL="alice@example.org")
        def git(*args):
            return subprocess.run(["git", "-C", repo] + list(args), env=env, check=True,
                                  capture_output=True)
        os.makedirs(repo)
        git("init", "-q")
        for i in range(3):
            with open(os.path.join(repo, "f%d" % i), "w") as f:
                f.write(".\nline %d\n" % i)
            git("add", ".")
            git("commit", "-q", "-m", "change %d" % i)
        git("format-patch", "-q", "-3", "-o", "out")
        patches = sorted(os.path.join(repo, "out", p) for p in os.listdir(os.path.join(repo, "out")))
        r = subprocess.run(["git", "-C", repo, "send-email", "--confirm=never", "--quiet",
                            "--sendmail-cmd=" + os.path.join(self.bin, "sendmail"),
                            "--from=Alice Example <alice@example.org>",
                            "--to=list@example.org", "--cc=Bob Smith <bob@example.com>",
                            "--suppress-cc=all"] + patches,
                           env=env, capture_output=True, timeout=60)
        self.assertEqual(r.returncode, 0, r.stderr)
        for _ in range(100):
            if len(srv.messages) == 3 and not self.msg_ids():
                break
            time.sleep(0.1)
        self.assertEqual(len(srv.messages), 3)
        self.assertEqual(srv.connections, 1)
        for m in srv.messages:
            self.assertEqual(m.mail_from, "alice@example.org")
            self.assertEqual(sorted(m.rcpts), ["bob@example.com", "list@example.org"])
        bodies = b"".join(m.data for m in srv.messages)
        self.assertIn(b"\r\n+.\r\n", bodies)          # the lone-dot line of the diff
        self.assertIn(b"Subject: [PATCH 3/3] change 2", bodies)


@unittest.skipUnless(os.path.exists(SMTP_SINK),
                     "Postfix's smtp-sink is not unpacked (tests/tools.sh does it)")
class TestSmtpSink(QueueCase):
    def start_sink(self):
        port = free_port()
        dump = os.path.join(self.dir, "sink")
        os.mkdir(dump)
        env = dict(os.environ, LD_LIBRARY_PATH=os.path.join(SINK_DIR, "usr/lib/postfix"))
        p = subprocess.Popen([SMTP_SINK, "-u", "nobody", "127.0.0.1:%d" % port, "50"],
                             env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        self.addCleanup(lambda: (p.kill(), p.wait()))
        for _ in range(50):
            try:
                import socket
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                time.sleep(0.1)
        return port, dump

    def test_delivery_into_smtp_sink_with_flat_memory(self):
        port, dump = self.start_sink()
        self.write_config("max-size 300M\nidentity t\n  default\n  host 127.0.0.1\n"
                          "  port %d\n  tls none\n" % port)
        for i in range(5):
            self.assertQueued(self.sendmail(["-odq", "-i", "-f", "a@example.org", "r@example.com"],
                                            b"Subject: %d\n\nsmall\n" % i))
        big = 200 * 1024 * 1024
        p = subprocess.Popen([os.path.join(self.bin, "sendmail"), "-odq", "-i", "-f",
                              "a@example.org", "r@example.com"], stdin=subprocess.PIPE, env=self.env)
        p.stdin.write(b"Subject: big\n\n")
        line = b"x" * 1023 + b"\n"
        for _ in range(big // len(line)):
            p.stdin.write(line)
        p.stdin.close()
        self.assertEqual(p.wait(timeout=120), 0)
        d = subprocess.Popen([os.path.join(self.bin, "deliver")], env=self.env,
                             stderr=subprocess.PIPE)
        peak = 0
        while d.poll() is None:
            try:
                with open("/proc/%d/status" % d.pid) as f:
                    for l in f:
                        if l.startswith("VmHWM:"):
                            peak = max(peak, int(l.split()[1]))
            except OSError:
                pass
            time.sleep(0.02)
        self.assertEqual(d.returncode, 0, d.stderr.read())
        self.assertEqual(self.msg_ids(), [])
        if os.environ.get("POSTIE_SANITIZED") != "1":
            self.assertLess(peak, 16 * 1024, "deliver peak RSS %d KiB" % peak)
        print("deliver peak RSS %d KiB with a 200 MB message" % peak, end=" ")
