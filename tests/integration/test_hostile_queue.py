"""A queue someone else has tampered with: FIFOs, symbolic links, foreign
or writable directories, forged envelopes, absurd times, terminal escapes.
Each case checks that mailq and deliver neither hang nor follow, send or
show what they must not, and that every other message still goes out.
Every command runs with a timeout, so a hang fails the test."""
import json
import os
import re
import shutil
import subprocess
import tempfile
import time

from pt import QueueCase, POSTIE
from smtpserver import Server

NOBODY = 65534
MSG = b"From: a@example.org\nSubject: hostile\n\nbody\n"
DATE = re.compile(rb"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d$")


def envelope(rcpts, sender=b"a@example.org", queued=None, extra=b""):
    if queued is None:
        queued = b"queued %d\n" % int(time.time())
    return (b"postie-queue 1\n" + queued + b"sender " + sender + b"\n" +
            b"body 7bit\n" + extra +
            b"".join(b"rcpt " + r + b"\n" for r in rcpts) + b"end\n" + MSG)


class HostileCase(QueueCase):
    def setUp(self):
        super().setUp()
        self.server = Server()
        self.addCleanup(self.server.stop)
        self.write_config(
            "batch-delay 1s\nbounce maildir %s\n" % os.path.join(self.dir, "bounces") +
            "identity test\n  default\n  host 127.0.0.1\n  port %d\n  tls none\n"
            "  connect-timeout 3s\n  timeout 10s\n" % self.server.port)

    def enqueue(self, rcpt=b"good@example.com"):
        before = set(self.msg_ids())
        self.assertQueued(self.sendmail(["-odq", "-i", "-f", "a@example.org",
                                         rcpt.decode()], MSG, timeout=10))
        (qid,) = set(self.msg_ids()) - before
        return qid

    def put(self, name, data, where="msg"):
        path = os.path.join(self.queue, where, name)
        with open(path, "wb") as f:
            f.write(data)
        os.chmod(path, 0o600)
        return path

    def deliver(self, *args):
        return self.run_cmd("deliver", ["--now"] + list(args), timeout=30)

    def mailq(self):
        return self.run_cmd("mailq", [], timeout=10)

    def mailq_json(self):
        r = self.run_cmd("mailq", ["--json"], timeout=10)
        self.assertEqual(r.returncode, 0, r.stderr)
        return json.loads(r.stdout)

    def sent_rcpts(self):
        return sorted(r for m in self.server.messages for r in m.rcpts)

    def log(self):
        p = os.path.join(self.dir, "postie.log")
        return open(p, "rb").read() if os.path.exists(p) else b""

    def entry(self, qid):
        for m in self.mailq_json()["messages"]:
            if m["id"] == qid:
                return m
        self.fail("%s not listed" % qid)

    def assertUnusable(self, qid, reason):
        """mailq lists qid as unusable, says why and what to do."""
        out = self.mailq().stdout
        self.assertIn(qid.encode() + b"  unreadable: ", out)
        self.assertIn(reason.encode(), out)
        block = out.split(qid.encode() + b"  unreadable: ", 1)[1].split(b"\n\n")[0]
        self.assertIn(b"  action    check it, then move it out of ", block)
        m = self.entry(qid)
        self.assertIn(reason, m["error"])
        self.assertIn("move it out of", m["action"])


class TestFifos(HostileCase):
    def test_fifo_in_msg(self):
        good = self.enqueue()
        fifo = "1000000000.000000.1"
        os.mkfifo(os.path.join(self.queue, "msg", fifo), 0o600)
        self.assertUnusable(fifo, "not a regular file (a FIFO)")
        r = self.deliver()
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(self.sent_rcpts(), ["good@example.com"])
        self.assertEqual(self.msg_ids(), [fifo])
        self.assertIn(b"1000000000.000000.1: skipped: ", self.log())

    def test_fifo_in_state(self):
        bad = self.enqueue(b"bad@example.com")
        self.enqueue()
        os.mkfifo(os.path.join(self.queue, "state", bad), 0o600)
        self.assertUnusable(bad, "not a regular file (a FIFO)")
        r = self.deliver()
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(self.sent_rcpts(), ["good@example.com"])
        self.assertEqual(self.msg_ids(), [bad])

    def test_fifo_or_symlink_as_batch_lock(self):
        self.enqueue()
        lock = os.path.join(self.queue, "batch.lock")
        os.mkfifo(lock, 0o600)
        self.run_cmd("deliver", ["--batch"], timeout=30)
        self.assertEqual(self.sent_rcpts(), ["good@example.com"])
        os.unlink(lock)
        victim = os.path.join(self.dir, "created-through-the-link")
        os.symlink(victim, lock)
        self.enqueue()
        self.run_cmd("deliver", ["--batch"], timeout=30)
        self.assertFalse(os.path.exists(victim))
        self.assertEqual(len(self.sent_rcpts()), 2)


class TestSymlinks(HostileCase):
    def test_state_symlink_is_not_written_through(self):
        bad = self.enqueue(b"bad@example.com")
        self.enqueue()
        victim = os.path.join(self.dir, "victim")
        with open(victim, "wb") as f:
            f.write(b"line one\nno newline at the end")
        os.symlink(victim, os.path.join(self.queue, "state", bad))
        r = self.deliver()
        self.assertEqual(r.returncode, 0, r.stderr)
        with open(victim, "rb") as f:
            self.assertEqual(f.read(), b"line one\nno newline at the end")
        self.assertEqual(self.sent_rcpts(), ["good@example.com"])
        self.assertEqual(self.msg_ids(), [bad])
        self.assertUnusable(bad, "a symbolic link")

    def test_msg_symlink_is_not_sent_nor_removed(self):
        self.enqueue()
        outside = os.path.join(self.dir, "elsewhere")
        with open(outside, "wb") as f:
            f.write(envelope([b"stolen@example.com"]))
        link = "1000000000.000000.2"
        os.symlink(outside, os.path.join(self.queue, "msg", link))
        self.assertUnusable(link, "a symbolic link")
        r = self.deliver()
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(self.sent_rcpts(), ["good@example.com"])
        self.assertTrue(os.path.exists(outside))
        self.assertTrue(os.path.islink(os.path.join(self.queue, "msg", link)))

    def test_symlink_to_a_secret_is_not_read(self):
        secret = os.path.join(self.dir, "secret")
        with open(secret, "wb") as f:
            f.write(b"postie-queue 1\nsender a@example.org\nrcpt x@example.com\n"
                    b"no end line: TOPSECRET\n")
        os.chmod(secret, 0o600)
        link = "1000000000.000000.3"
        os.symlink(secret, os.path.join(self.mkqueue(), "msg", link))
        out = self.mailq().stdout
        self.assertIn(b"a symbolic link", out)
        self.assertNotIn(b"'end' line", out)     # it was never opened

    def test_dangling_msg_symlink_is_listed(self):
        link = "1000000000.000000.4"
        os.symlink("/nonexistent", os.path.join(self.mkqueue(), "msg", link))
        self.assertUnusable(link, "a symbolic link")

    def mkqueue(self):
        for d in ("tmp", "msg", "state"):
            os.makedirs(os.path.join(self.queue, d), mode=0o700, exist_ok=True)
        return self.queue


class TestForeignQueue(HostileCase):
    def refused(self, path, why):
        """sendmail, mailq and deliver refuse the queue: exit 78, an
        error naming the directory, why and what to do; nothing sent."""
        for cmd, args in (("mailq", []), ("mailq", ["--json"]), ("deliver", ["--now"]),
                          ("sendmail", ["-odq", "x@example.com"])):
            r = self.run_cmd(cmd, args, MSG, timeout=30)
            self.assertEqual(r.returncode, 78, (cmd, r.stdout, r.stderr))
            err = r.stderr.decode()
            self.assertTrue(err.startswith(cmd + ": "), err)
            self.assertIn(path, err)
            self.assertIn(why, err)
            self.assertEqual(r.stdout, b"")
        self.assertEqual(self.server.messages, [])

    def test_queue_owned_by_another_user(self):
        self.enqueue()
        os.chown(self.queue, NOBODY, NOBODY)
        self.refused(self.queue, "owned by uid 65534")

    def test_subdirectory_owned_by_another_user(self):
        self.enqueue()
        os.chown(os.path.join(self.queue, "state"), NOBODY, NOBODY)
        self.refused(os.path.join(self.queue, "state"), "owned by uid 65534")

    def test_writable_by_others(self):
        self.enqueue()
        for sub in ("", "msg", "tmp", "other"):
            with self.subTest(sub=sub):
                d = os.path.join(self.queue, sub) if sub else self.queue
                os.makedirs(d, mode=0o700, exist_ok=True)
                os.chmod(d, 0o777)
                self.refused(d.rstrip("/"), "writable by group or others (mode 0777)")
                os.chmod(d, 0o700)

    def test_group_writable(self):
        self.enqueue()
        os.chmod(os.path.join(self.queue, "msg"), 0o770)
        self.refused(os.path.join(self.queue, "msg"), "(mode 0770)")

    def test_foreign_queue_through_xdg_state_home(self):
        xdg = os.path.join(self.dir, "xdg")
        q = os.path.join(xdg, "postie", "queue")
        for d in ("tmp", "msg", "state"):
            os.makedirs(os.path.join(q, d))
        with open(os.path.join(q, "msg", "1000000000.000000.5"), "wb") as f:
            f.write(envelope([b"injected@example.com"]))
        for root, dirs, files in os.walk(xdg):
            for n in dirs + files:
                os.chown(os.path.join(root, n), NOBODY, NOBODY)
            os.chmod(root, 0o777)
        with open(self.conf, "w") as f:
            f.write("log %s\n" % os.path.join(self.dir, "postie.log"))
        r = self.run_cmd("mailq", [], env={"XDG_STATE_HOME": xdg}, timeout=10)
        self.assertEqual(r.returncode, 78, r.stdout)
        self.assertNotIn(b"injected", r.stdout)
        self.assertIn(b"owned by uid 65534", r.stderr)

    def test_new_queue_under_a_foreign_parent(self):
        # parents the user does not own (like /home) are fine
        xdg = os.path.join(self.dir, "xdg")
        os.mkdir(xdg, 0o755)
        os.chown(xdg, NOBODY, NOBODY)
        with open(self.conf, "w") as f:
            f.write("log %s\n" % os.path.join(self.dir, "postie.log"))
        r = self.run_cmd("sendmail", ["-odq", "x@example.com"], MSG,
                         env={"XDG_STATE_HOME": xdg}, timeout=10)
        self.assertEqual(r.returncode, 0, r.stderr)
        for d in ("", "tmp", "msg", "state"):
            st = os.stat(os.path.join(xdg, "postie", "queue", d))
            self.assertEqual(st.st_uid, os.getuid())
            self.assertEqual(st.st_mode & 0o777, 0o700)
        r = self.run_cmd("mailq", [], env={"XDG_STATE_HOME": xdg}, timeout=10)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn(b"1 message in the queue", r.stdout)


class TestForgedEnvelopes(HostileCase):
    def test_bad_values_never_reach_the_wire(self):
        good = self.enqueue()
        self.enqueue(b"good2@example.com")
        bad = {
            "1000000000.000000.10": (envelope([b"a@example.com\rRSET"]), "recipient"),
            "1000000000.000000.11": (envelope([b"x@example.com"], sender=b"s@example.org\0evil"),
                                     "NUL"),
            "1000000000.000000.12": (envelope([b"x@example.com"], sender=b"s@exa mple.org"),
                                     "sender"),
            "1000000000.000000.13": (envelope([b"x@example.com"], extra=b"notify NEVER\r\n"),
                                     "notify"),
            "1000000000.000000.14": (envelope([b"x@example.com\x1b[2J"]), "recipient"),
            "1000000000.000000.15": (envelope([b"x@example.com"], extra=b"envid a b\n"), "envid"),
        }
        for qid, (data, _) in bad.items():
            self.put(qid, data)
        r = self.deliver()
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(self.sent_rcpts(), ["good2@example.com", "good@example.com"])
        for c in self.server.commands:
            self.assertNotIn("\r", c)
            self.assertNotIn("RSET", c)
            self.assertNotIn("evil", c)
        self.assertEqual([m.mail_from for m in self.server.messages], ["a@example.org"] * 2)
        self.assertEqual(sorted(self.msg_ids()), sorted(bad))
        self.assertFalse(os.path.exists(os.path.join(self.dir, "bounces")))
        for qid, (_, why) in bad.items():
            with self.subTest(qid=qid):
                self.assertUnusable(qid, why)
                self.assertIn(qid.encode() + b": skipped: ", self.log())


class TestBadTimes(HostileCase):
    def test_missing_or_garbled_queued_is_never_bounced(self):
        self.enqueue()
        cases = {"1000000000.000000.20": b"",
                 "1000000000.000000.21": b"queued soon\n",
                 "1000000000.000000.22": b"queued -9223372036854775808\n",
                 "1000000000.000000.23": b"queued 99999999999999999999\n",
                 "1000000000.000000.24": b"queued 0\n",
                 "1000000000.000000.25": b"queued 999999999999999\n"}
        for qid, q in cases.items():
            self.put(qid, envelope([b"x@example.com"], queued=q))
        r = self.deliver()
        self.assertEqual(r.returncode, 0, r.stderr)     # no sanitizer abort
        self.assertNotIn(b"runtime error", r.stderr)
        self.assertEqual(self.sent_rcpts(), ["good@example.com"])
        self.assertEqual(sorted(self.msg_ids()), sorted(cases))
        self.assertFalse(os.path.exists(os.path.join(self.dir, "bounces")))
        self.assertNotIn(b"lifetime", self.log())
        for qid in cases:
            with self.subTest(qid=qid):
                self.assertUnusable(qid, "queued time")

    def test_absurd_journal_times_print_sane_dates(self):
        a = self.enqueue()
        b = self.enqueue(b"other@example.com")
        with open(os.path.join(self.queue, "state", a), "w") as f:
            f.write("1 attempt\n1 next 9223372036854775807\n")
        with open(os.path.join(self.queue, "state", b), "w") as f:
            f.write("1 attempt\n1 next -9223372036854775808\n")
        out = self.mailq().stdout
        for line in out.splitlines():
            if b"queued " in line or b"next try" in line:
                dates = re.findall(rb"(?:queued|next try) (\S+ \S+)", line)
                for d in dates:
                    self.assertRegex(d, DATE)
        j = self.mailq_json()
        for m in j["messages"]:
            self.assertIsNone(m["next_try"])
        r = self.deliver()
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertNotIn(b"runtime error", r.stderr)
        self.assertEqual(self.sent_rcpts(), ["good@example.com", "other@example.com"])

    def test_truncated_file_says_what_to_do(self):
        self.enqueue()
        qid = "1000000000.000000.26"
        self.put(qid, envelope([b"x@example.com"])[:30])
        self.assertUnusable(qid, "no 'end' line")
        self.assertIn(b"msg/", self.mailq().stdout)


class TestEscapes(HostileCase):
    def test_text_and_json_are_clean(self):
        good = self.enqueue()
        with open(os.path.join(self.queue, "state", good), "wb") as f:
            f.write(b"1700000000 attempt\n"
                    b"1700000001 defer 0 451 \x1b]0;owned\x07 \xc2\x9b31m \xff\xfe bad utf-8 caf\xc3\xa9\n")
        with open(os.path.join(self.queue.encode(), b"msg",
                               b"1000000000.000000.30\x1b[31m\xff"), "wb") as f:
            f.write(envelope([b"x@example.com"]))
        self.put("1000000000.000000.31", envelope([b"x\x1b[2J@example.com\xc2\x9b"],
                                                  sender=b"\x1b]2;t\x07@x\xff"))
        r = self.mailq()
        self.assertEqual(r.returncode, 0, r.stderr)
        text = r.stdout.decode("utf-8")     # valid UTF-8
        for ch in text:
            o = ord(ch)
            self.assertFalse((o < 0x20 and ch != "\n") or 0x7f <= o <= 0x9f,
                             "raw control %r in %r" % (ch, text))
        self.assertIn("\\x1b[31m\\xff", text)       # the file name, visibly
        self.assertIn("\\xc2\\x9b31m \\xff\\xfe bad utf-8 café", text)
        # the unusable entry's reason shows the forged value visibly too
        self.assertRegex(text, r"1000000000\.000000\.31  unreadable: .*'\\x1b\]2;t\\x07@x")
        r = self.run_cmd("mailq", ["--json"], timeout=10)
        self.assertEqual(r.returncode, 0, r.stderr)
        p = subprocess.run(["python3", "-c", "import json,sys; json.load(sys.stdin)"],
                           input=r.stdout, capture_output=True, timeout=10)
        self.assertEqual(p.returncode, 0, p.stderr)
        j = json.loads(r.stdout)
        ids = [m["id"] for m in j["messages"]]
        self.assertIn("1000000000.000000.30\x1b[31m\ufffd", ids)
        reply = [m for m in j["messages"] if m["id"] == good][0]["recipients"][0]["reply"]
        self.assertIn("\u009b31m \ufffd\ufffd bad utf-8 café", reply)


class TestUndumpable(HostileCase):
    """A process that may hold a password writes no core dump: /proc/PID
    of an undumpable process belongs to root, whoever runs it."""

    def test_deliver_is_not_dumpable(self):
        home = tempfile.mkdtemp(prefix="postie-nobody.")
        self.addCleanup(shutil.rmtree, home, ignore_errors=True)
        os.chmod(home, 0o755)
        binary = os.path.join(home, "postie")
        shutil.copy(POSTIE, binary)
        os.chmod(binary, 0o755)
        user = os.path.join(home, "user")
        os.mkdir(user, 0o700)
        srv = Server(script={"greeting": ("STALL", 15)})
        self.addCleanup(srv.stop)
        conf = os.path.join(user, "postie.conf")
        with open(conf, "w") as f:
            f.write("queue %s/queue\nidentity t\n  default\n  host 127.0.0.1\n"
                    "  port %d\n  tls none\n  auth-without-tls yes\n  user u\n"
                    "  password s3cr3t\n"
                    "  timeout 10s\n" % (user, srv.port))
        os.chmod(conf, 0o600)
        for p in (user, conf):
            os.chown(p, NOBODY, NOBODY)

        def as_nobody():
            os.setgroups([])
            os.setgid(NOBODY)
            os.setuid(NOBODY)
        env = dict(HOME=user, USER="nobody", LC_ALL="C", POSTIE_CONFIG=conf,
                   PATH=os.environ.get("PATH", "/usr/bin:/bin"))
        r = subprocess.run([binary, "sendmail", "-odq", "x@example.com"], input=MSG,
                           env=env, preexec_fn=as_nobody, capture_output=True, timeout=10)
        self.assertEqual(r.returncode, 0, r.stderr)
        p = subprocess.Popen([binary, "deliver", "--now"], env=env, preexec_fn=as_nobody,
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            deadline = time.time() + 10
            while srv.connections == 0 and time.time() < deadline:
                time.sleep(0.05)
            self.assertEqual(srv.connections, 1)
            self.assertEqual(os.stat("/proc/%d/status" % p.pid).st_uid, 0)
        finally:
            p.kill()
            p.wait(timeout=10)
