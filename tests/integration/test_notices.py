"""Hearing about trouble in time: the one delay warning per message
(delay-warning, RFC 3464 Action: delayed) and notify-command, run for
each failure notice and delay warning. Queue times are set back in the
queue file (its `queued` line), as the lifetime tests do; a deliver run
killed at each durable step of a warning never writes it twice."""
import glob
import os
import socket
import random
import re
import signal
import time

from pt import QueueCase
from smtpserver import Server

MSG = (b"From: Alice <alice@example.org>\nTo: Bob <bob@example.com>\n"
       b"Subject: late\nMessage-ID: <late@example.org>\n\nbody\n")

WARN_STEPS = [
    "maildir file written",         # 1 the warning, in BOUNCES/tmp/
    "maildir linked into new/",     # 2 ... in new/
    "state line appended",          # 3 warned
]


def trace(r):
    return [m.group(2) for m in (re.match(r"crashpoint (\d+) (.+)$", line)
                                 for line in r.stderr.decode().splitlines()) if m]


class NoticeCase(QueueCase):
    def setUp(self):
        super().setUp()
        self.server = Server(script={"RCPT": "451 4.7.1 greylisted, try later"})
        self.addCleanup(self.server.stop)
        self.bounce_dir = os.path.join(self.dir, "bounces")
        self.configure()

    def configure(self, extra=""):
        self.write_config(
            "retry 1m\nlifetime 5d\nbounce maildir %s\n" % self.bounce_dir + extra +
            "identity test\n  default\n  host 127.0.0.1\n  port %d\n  tls none\n"
            "  connect-timeout 3s\n  timeout 15s\n" % self.server.port)

    def enqueue(self, args=(), sender="alice@example.org", rcpts=("bob@example.com",)):
        r = self.sendmail(["-odq", "-i", "-f", sender] + list(args) + list(rcpts), MSG)
        self.assertQueued(r)
        return self.msg_ids()[-1]

    def age(self, qid, secs):
        """Make the message secs old."""
        path = os.path.join(self.queue, "msg", qid)
        with open(path, "rb") as f:
            data = f.read()
        old = int(time.time()) - secs
        data = re.sub(rb"\nqueued \d+\n", b"\nqueued %d\n" % old, data, count=1)
        with open(path, "wb") as f:
            f.write(data)
        return old

    def deliver(self, *args, env=None, timeout=60):
        return self.run_cmd("deliver", list(args), env=env, timeout=timeout)

    def notices(self):
        return sorted(glob.glob(os.path.join(self.bounce_dir, "new", "*")))

    def journal(self, qid):
        with open(os.path.join(self.queue, "state", qid)) as f:
            return f.read()

    def log(self):
        with open(os.path.join(self.dir, "postie.log")) as f:
            return f.read()


class TestDelayWarning(NoticeCase):
    def test_one_warning_once_the_message_has_waited(self):
        qid = self.enqueue()
        queued = self.age(qid, 5 * 3600)
        r = self.deliver()
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(self.msg_ids(), [qid])            # still queued
        [path] = self.notices()
        self.assertTrue(os.path.basename(path).startswith("%d.postie-delay-%s" % (queued, qid)))
        with open(path, "rb") as f:
            text = f.read()
        self.assertIn(b"To: <alice@example.org>\n", text)
        self.assertIn(b"Subject: Delayed Mail (still being retried)\n", text)
        self.assertIn(b"<bob@example.com>: 451 4.7.1 greylisted, try later\n", text)
        self.assertIn(b"\nNext try: ", text)
        self.assertIn(b"It gives up, and sends a failure notice, at: ", text)
        self.assertIn(b"Content-Type: multipart/report; report-type=delivery-status;", text)
        self.assertIn(b"\nFinal-Recipient: rfc822; bob@example.com\nAction: delayed\n"
                      b"Status: 4.7.1\nDiagnostic-Code: smtp; 451 4.7.1 greylisted, try later\n"
                      b"Will-Retry-Until: ", text)
        self.assertIn(b"Content-Type: text/rfc822-headers\n\nFrom: Alice", text)
        self.assertNotIn(b"\nbody\n", text)                # headers only
        self.assertEqual(self.journal(qid).count(" warned\n"), 1)
        # later runs, due or not, never send a second one
        self.assertEqual(self.deliver("--now").returncode, 0)
        self.assertEqual(self.deliver().returncode, 0)
        self.assertEqual(len(self.notices()), 1)
        self.assertEqual(self.journal(qid).count(" warned\n"), 1)
        self.assertIn("%s: delay warning for <alice@example.org> written to %s"
                      % (qid, self.bounce_dir), self.log())

    def test_the_domain_names_the_mail_system_not_the_machine(self):
        self.configure("domain example.org\n")
        qid = self.enqueue()
        self.age(qid, 5 * 3600)
        self.assertEqual(self.deliver().returncode, 0)
        [path] = self.notices()
        with open(path, "rb") as f:
            text = f.read()
        self.assertIn(b"From: Mail Delivery System <MAILER-DAEMON@example.org>\n", text)
        self.assertIn(b"Reporting-MTA: dns; example.org\n", text)
        self.assertNotIn(b"@%s" % socket.gethostname().encode(), text)

    def test_not_before_delay_warning(self):
        qid = self.enqueue()
        self.age(qid, 4 * 3600 - 120)                       # the default: 4h
        self.assertEqual(self.deliver().returncode, 0)
        self.assertEqual(self.notices(), [])
        self.assertNotIn(" warned", self.journal(qid))

    def test_a_message_not_due_is_warned_too(self):
        # deferred once (next try in 1m); then it is late between tries
        qid = self.enqueue()
        self.configure("delay-warning 1h\n")
        self.assertEqual(self.deliver().returncode, 0)
        self.assertEqual(self.notices(), [])
        self.age(qid, 2 * 3600)
        self.assertEqual(self.deliver().returncode, 0)      # not due: no attempt
        self.assertEqual(len(self.notices()), 1)
        self.assertEqual(self.journal(qid).count("attempt"), 1)

    def test_unreachable_upstream_is_warned(self):
        self.server.stop()
        qid = self.enqueue()
        self.age(qid, 5 * 3600)
        self.assertEqual(self.deliver().returncode, 75)
        [path] = self.notices()
        with open(path, "rb") as f:
            text = f.read()
        self.assertRegex(text, rb"<bob@example.com>: no reply yet: the mail server was not "
                               rb"reached: [^\n]*(refused|connect)[^\n]*\n")
        self.assertIn(b"Action: delayed\nStatus: 4.0.0\nWill-Retry-Until: ", text)

    def test_only_the_recipients_still_waiting(self):
        self.server.script["RCPT"] = lambda a: ("451 4.2.0 later" if a.startswith("bob")
                                                else "250 ok")
        qid = self.enqueue(rcpts=("bob@example.com", "carol@example.com"))
        self.age(qid, 5 * 3600)
        self.assertEqual(self.deliver().returncode, 0)
        [path] = self.notices()
        with open(path, "rb") as f:
            text = f.read()
        self.assertIn(b"Final-Recipient: rfc822; bob@example.com\n", text)
        self.assertNotIn(b"carol@example.com", text.split(b"text/rfc822-headers")[0])

    def test_never_when_the_sender_did_not_ask(self):
        for args, sender in ((["-N", "never"], "alice@example.org"),
                             (["-N", "failure"], "alice@example.org"),
                             (["-N", "success,failure"], "alice@example.org"),
                             ([], "<>")):
            with self.subTest(args=args, sender=sender):
                for q in self.msg_ids():
                    os.unlink(os.path.join(self.queue, "msg", q))
                qid = self.enqueue(args, sender=sender)
                self.age(qid, 5 * 3600)
                self.assertEqual(self.deliver().returncode, 0)
                self.assertEqual(self.notices(), [])
                self.assertNotIn(" warned", self.journal(qid))

    def test_notify_delay_is_honoured(self):
        qid = self.enqueue(["-N", "failure,delay"])
        self.age(qid, 5 * 3600)
        self.assertEqual(self.deliver().returncode, 0)
        self.assertEqual(len(self.notices()), 1)

    def test_zero_is_never(self):
        self.configure("delay-warning 0\n")
        qid = self.enqueue()
        self.age(qid, 4 * 86400)
        self.assertEqual(self.deliver().returncode, 0)
        self.assertEqual(self.notices(), [])

    def test_bounce_none_writes_nothing_but_journals(self):
        self.write_config("bounce none\nidentity test\n  default\n  host 127.0.0.1\n"
                          "  port %d\n  tls none\n" % self.server.port)
        qid = self.enqueue()
        self.age(qid, 5 * 3600)
        self.assertEqual(self.deliver().returncode, 0)
        self.assertEqual(self.notices(), [])
        self.assertEqual(self.journal(qid).count(" warned\n"), 1)


class TestDelayWarningCrash(NoticeCase):
    """deliver killed at each durable step of a warning: the next run
    writes it if it is not written, never a second time."""

    def late_message(self):
        qid = self.enqueue()
        # a first run defers it; a later one, not due, only warns
        self.assertEqual(self.deliver().returncode, 0)
        self.age(qid, 5 * 3600)
        return qid

    def test_steps(self):
        qid = self.late_message()
        r = self.deliver(env={"POSTIE_CRASH_TRACE": "1"})
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(trace(r), WARN_STEPS)
        self.assertEqual(self.journal(qid).count(" warned\n"), 1)

    def test_kill_at_every_step(self):
        for n in range(1, len(WARN_STEPS) + 1):
            with self.subTest(step=n, name=WARN_STEPS[n - 1]):
                for q in self.msg_ids():
                    os.unlink(os.path.join(self.queue, "msg", q))
                for p in glob.glob(os.path.join(self.bounce_dir, "*", "*")):
                    os.unlink(p)
                qid = self.late_message()
                r = self.deliver(env={"POSTIE_CRASH_AT": str(n), "POSTIE_CRASH_TRACE": "1"})
                self.assertEqual(r.returncode, -signal.SIGKILL, r.stderr)
                self.assertEqual(trace(r), WARN_STEPS[:n])
                r = self.deliver()
                self.assertEqual(r.returncode, 0, r.stderr)
                self.assertEqual(len(self.notices()), 1, n)
                self.assertEqual(os.listdir(os.path.join(self.bounce_dir, "tmp")), [])
                self.assertEqual(self.journal(qid).count(" warned\n"), 1)
                self.assertEqual(self.msg_ids(), [qid])
                # read by then (moved to cur/ by a mail reader): still once
                if n == 2:
                    [path] = self.notices()
                    os.rename(path, path.replace("/new/", "/cur/") + ":2,S")
                    with open(os.path.join(self.queue, "state", qid)) as f:
                        text = f.read()
                    with open(os.path.join(self.queue, "state", qid), "w") as f:
                        f.write(text.replace(" warned\n", " x-unwarned\n"))
                    self.assertEqual(self.deliver().returncode, 0)
                    self.assertEqual(self.notices(), [])
                    self.assertEqual(len(os.listdir(os.path.join(self.bounce_dir, "cur"))), 1)


class TestNotifyCommand(NoticeCase):
    def script(self, body, mode=0o700):
        path = os.path.join(self.dir, "notify")
        with open(path, "w") as f:
            f.write("#!/bin/sh\n" + body)
        os.chmod(path, mode)
        return path

    def recorder(self):
        self.argv_file = os.path.join(self.dir, "argv")
        return self.script('for a in "$@"; do printf "%%s\\n" "$a"; done >> %s\n'
                           'echo --- >> %s\n' % (self.argv_file, self.argv_file))

    def calls(self):
        if not os.path.exists(self.argv_file):
            return []
        with open(self.argv_file) as f:
            return [c.strip("\n").split("\n") for c in f.read().split("---\n") if c.strip()]

    def test_delayed_and_failed(self):
        cmd = self.recorder()
        self.configure('notify-command "%s --from postie"\n' % cmd)
        qid = self.enqueue(rcpts=("bob@example.com", "carol@example.com"))
        self.age(qid, 5 * 3600)
        self.assertEqual(self.deliver().returncode, 0)
        self.assertEqual(self.calls(), [["--from", "postie", "delayed", qid,
                                         "bob@example.com, carol@example.com",
                                         "451 4.7.1 greylisted, try later"]])
        # then it fails for good: one more call, "failed"
        self.server.script["RCPT"] = "550 5.1.1 no such user"
        self.assertEqual(self.deliver("--now").returncode, 0)
        self.assertEqual(self.msg_ids(), [])
        self.assertEqual(self.calls()[1:], [["--from", "postie", "failed", qid,
                                             "bob@example.com, carol@example.com",
                                             "550 5.1.1 no such user"]])
        self.assertEqual(len(self.notices()), 2)           # warning, failure notice

    def test_delayed_for_an_upstream_not_reached(self):
        cmd = self.recorder()
        self.configure('notify-command %s\n' % cmd)
        self.server.stop()
        qid = self.enqueue()
        self.age(qid, 5 * 3600)
        self.assertEqual(self.deliver().returncode, 75)
        [call] = self.calls()
        self.assertEqual(call[:3], ["delayed", qid, "bob@example.com"])
        self.assertRegex(call[3], r"^no reply yet: the mail server was not reached: .+")

    def test_a_hanging_command_is_killed_and_delivery_goes_on(self):
        # a duration of this run's own: other test runs on the machine
        # (pgrep sees them too) have their own sleeps
        naps = "607.%d" % random.randrange(10 ** 6, 10 ** 7)
        cmd = self.script("sleep %s &\nsleep %s\n" % (naps, naps))
        self.configure('notify-command %s\n' % cmd)
        self.server.script["RCPT"] = "550 5.1.1 no such user"
        a = self.enqueue()
        b = self.enqueue()
        t = time.time()
        r = self.deliver(timeout=90)
        took = time.time() - t
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(self.msg_ids(), [])                # both failed, both noticed
        self.assertEqual(len(self.notices()), 2)
        self.assertGreaterEqual(took, 19)                   # 10 s each, then killed
        self.assertLess(took, 40)
        log = self.log()
        for qid in (a, b):
            self.assertIn("%s: notify-command %s did not finish in 10 s: killed" % (qid, cmd), log)
        # its whole process group went with it: no sleep is left
        out = os.popen("pgrep -f '^sleep %s$'" % naps).read().split()
        self.assertEqual(out, [])

    def test_a_failing_or_untrusted_command_is_logged(self):
        cmd = self.script("exit 3\n")
        self.configure('notify-command %s\n' % cmd)
        self.server.script["RCPT"] = "550 5.1.1 no such user"
        qid = self.enqueue()
        self.assertEqual(self.deliver().returncode, 0)
        self.assertEqual(self.msg_ids(), [])
        self.assertIn("%s: notify-command %s exited 3" % (qid, cmd), self.log())
        os.chmod(cmd, 0o777)
        qid = self.enqueue()
        self.assertEqual(self.deliver().returncode, 0)
        self.assertEqual(self.msg_ids(), [])
        self.assertIn("%s: notify-command %s is writable by other users" % (qid, cmd),
                      self.log())

    def test_no_call_without_a_notice(self):
        cmd = self.recorder()
        self.configure('notify-command %s\n' % cmd)
        self.server.script["RCPT"] = "550 5.1.1 no such user"
        self.enqueue(["-N", "never"])
        self.assertEqual(self.deliver().returncode, 0)
        self.assertEqual(self.msg_ids(), [])
        self.assertEqual(self.calls(), [])
