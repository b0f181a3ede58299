"""Crash injection in delivery: deliver is killed at each of its durable
steps, then run again, then a third time.

The test pins the exact steps of the scenario (STEPS), the exact steps
after which a recipient is sent a message twice (DUP_SENDS: after the
server's 250, before its record is on disk) and the one step after which
a second failure notice is written (DUP_NOTICE: the notice is in new/,
`bounced` is not journaled yet). queue/README.md lists the same steps
("A deliver run, step by step"); the test reads that list too, so the
documentation cannot drift from the code unnoticed."""
import collections
import os
import re
import shutil
import signal

from pt import QueueCase
from smtpserver import Server

HERE = os.path.dirname(os.path.abspath(__file__))
TOP = os.path.dirname(os.path.dirname(HERE))

# 3 messages for one identity: m0 to a0, b0; m1 to a1, b1, bad (550);
# m2 to a2, b2.
STEPS = [
    "session starting",             # 1
    "msg removed",                  # 2  m0 accepted by all: removed
    "outcome recorded",             # 3
    "state line appended",          # 4  m1: attempt
    "state line appended",          # 5  m1: ok 0
    "state line appended",          # 6  m1: ok 1
    "state line appended",          # 7  m1: fail 2
    "outcome recorded",             # 8
    "msg removed",                  # 9  m2 accepted by all: removed
    "outcome recorded",             # 10
    "maildir file written",         # 11 m1's failure notice, in tmp/
    "maildir renamed into new/",    # 12 ... in new/
    "state line appended",          # 13 m1: bounced
    "msg removed",                  # 14 m1
    "state removed",                # 15
]
# crash after step N -> what the recovery run sends a second time
DUP_SENDS = {
    4: {("m1", "a1@example.com"), ("m1", "b1@example.com")},
    5: {("m1", "b1@example.com")},
}
# crash after this step -> two failure notices (see queue/README.md)
DUP_NOTICE = 12
# crash after this step -> the notice's unfinished file stays in tmp/
NOTICE_TMP_LEFT = 11


def documented_steps(path):
    """The step names of the `POSTIE_CRASH_TRACE=1 deliver` example."""
    with open(path) as f:
        text = f.read()
    block = text.split("$ POSTIE_CRASH_TRACE=1 deliver\n", 1)[1].split("\n\n", 1)[0]
    steps = []
    for line in block.splitlines():
        m = re.match(r"\s*crashpoint (\d+) (.+?)(?:\s{2,}.*)?$", line)
        if m is None:
            raise AssertionError("not a crashpoint line in %s: %r" % (path, line))
        if int(m.group(1)) != len(steps) + 1:
            raise AssertionError("%s: step %s out of order" % (path, m.group(1)))
        steps.append(m.group(2))
    return steps


def trace(r):
    out = []
    for line in r.stderr.decode().splitlines():
        m = re.match(r"crashpoint (\d+) (.+)$", line)
        if m:
            out.append(m.group(2))
    return out


class TestDeliverCrash(QueueCase):
    def setUp(self):
        super().setUp()
        self.srv = Server(script={"RCPT": lambda a: "550 5.1.1 no" if a.startswith("bad") else None})
        self.addCleanup(self.srv.stop)
        self.bounces = os.path.join(self.dir, "bounces")
        self.write_config("bounce maildir %s\nidentity t\n  default\n  host 127.0.0.1\n"
                          "  port %d\n  tls none\n" % (self.bounces, self.srv.port))
        self.want = set()
        for i in range(3):
            rcpts = ["a%d@example.com" % i, "b%d@example.com" % i]
            if i == 1:
                rcpts.append("bad@example.com")
            r = self.sendmail(["-odq", "-i", "-f", "s@example.org"] + rcpts,
                              b"Subject: m%d\nDate: x\nMessage-ID: <m%d@x>\n\nbody\n" % (i, i))
            self.assertQueued(r)
            self.want |= {("m%d" % i, a) for a in rcpts if not a.startswith("bad")}
        self.snap = os.path.join(self.dir, "snapshot")
        shutil.copytree(self.queue, self.snap)

    def reset(self):
        shutil.rmtree(self.queue)
        shutil.copytree(self.snap, self.queue)
        shutil.rmtree(self.bounces, ignore_errors=True)
        self.srv.messages.clear()

    def received(self):
        got = collections.Counter()
        for m in self.srv.messages:
            subj = m.data.split(b"\r\n", 1)[0].decode()[len("Subject: "):]
            for a in m.rcpts:
                got[(subj, a)] += 1
        return got

    def listing(self, sub):
        d = os.path.join(self.bounces, sub)
        return sorted(os.listdir(d)) if os.path.isdir(d) else []

    def end_state(self):
        """Everything a run can change: queue, journals, notices, the
        server's mailbox."""
        files = {}
        for top in (self.queue, self.bounces):
            for root, _, names in os.walk(top):
                for n in names:
                    p = os.path.join(root, n)
                    with open(p, "rb") as f:
                        files[p] = f.read()
        return files, [(m.mail_from, m.rcpts, m.data) for m in self.srv.messages]

    def test_steps_are_documented(self):
        """The uninterrupted run goes through exactly STEPS, and both
        READMEs say so."""
        r = self.run_cmd("deliver", [], env={"POSTIE_CRASH_TRACE": "1"})
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(trace(r), STEPS)
        self.assertEqual(documented_steps(os.path.join(TOP, "queue", "README.md")), STEPS)
        with open(os.path.join(TOP, "README.md")) as f:
            readme = " ".join(f.read().split())     # lines rewrapped
        self.assertIn('"%d crash points, %d gave a duplicate send, %d a second '
                      'failure notice"' % (len(STEPS), len(DUP_SENDS), 1), readme)

    def test_kill_at_every_step(self):
        for n in range(1, len(STEPS) + 1):
            with self.subTest(step=n, name=STEPS[n - 1]):
                self.crash_and_recover(n)
        # past the last step: the run finishes
        self.reset()
        r = self.run_cmd("deliver", [], env={"POSTIE_CRASH_AT": str(len(STEPS) + 1)})
        self.assertEqual(r.returncode, 0, r.stderr)

    def crash_and_recover(self, n):
        self.reset()
        r = self.run_cmd("deliver", [], env={"POSTIE_CRASH_AT": str(n),
                                            "POSTIE_CRASH_TRACE": "1"})
        self.assertEqual(r.returncode, -signal.SIGKILL, r.stderr)
        self.assertEqual(trace(r), STEPS[:n])
        self.assertEqual(len(self.listing("tmp")), 1 if n == NOTICE_TMP_LEFT else 0)

        r = self.run_cmd("deliver", ["--now"])
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(self.msg_ids(), [])
        self.assertEqual(os.listdir(os.path.join(self.queue, "state")), [])
        got = self.received()
        self.assertEqual(set(got), self.want, "mail lost")
        self.assertEqual({k for k, c in got.items() if c > 1}, DUP_SENDS.get(n, set()))
        self.assertTrue(all(c <= 2 for c in got.values()), got)
        notices = self.listing("new")
        self.assertEqual(len(notices), 2 if n == DUP_NOTICE else 1, notices)
        for name in notices:
            with open(os.path.join(self.bounces, "new", name), "rb") as f:
                text = f.read()
            self.assertIn(b"To: <s@example.org>\n", text)
            self.assertIn(b"Final-Recipient: rfc822; bad@example.com\n", text)
            self.assertNotIn(b"rfc822; a1@example.com", text)
        # the unfinished notice of a crash at NOTICE_TMP_LEFT stays in
        # tmp/ (a Maildir reader's 36-hour clean-up); nothing else does
        self.assertEqual(len(self.listing("tmp")), 1 if n == NOTICE_TMP_LEFT else 0)

        # a third run finds nothing to do and changes nothing
        before = self.end_state()
        r = self.run_cmd("deliver", ["--now"], env={"POSTIE_CRASH_TRACE": "1"})
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(trace(r), [])
        self.assertEqual(self.end_state(), before)
