"""postie queue show|hold|release|remove: every command and every error
against the real binary, with a scripted SMTP server to see what is sent;
then crash injection at each durable step of hold, release and remove.

The crash tests pin the exact steps of each command (STEPS) and read the
same lists from queue/README.md ("Queue control, step by step"), so the
documentation cannot drift from the code unnoticed."""
import collections
import fcntl
import json
import os
import re
import shutil
import threading
import time

from pt import QueueCase, POSTIE
from smtpserver import Server

HERE = os.path.dirname(os.path.abspath(__file__))
TOP = os.path.dirname(os.path.dirname(HERE))

LOCK_WAIT = 5           # QUEUE_LOCK_WAIT, documented in postie(1)

STEPS = {
    "hold": ["state line appended"],            # hold
    "release": ["state line appended"],         # release
    "remove": ["state line appended",           # removed
               "msg removed",                   # then fsync(msg/)
               "state removed"],
}


def documented_steps(path, command):
    """The step names of the `POSTIE_CRASH_TRACE=1 postie queue COMMAND ID`
    example in queue/README.md."""
    with open(path) as f:
        text = f.read()
    head = "$ POSTIE_CRASH_TRACE=1 postie queue %s ID\n" % command
    if head not in text:
        raise AssertionError("%s: no example for %s" % (path, command))
    block = text.split(head, 1)[1].split("\n\n", 1)[0]
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


class Base(QueueCase):
    def setUp(self):
        super().setUp()
        os.symlink(POSTIE, os.path.join(self.bin, "postie"))
        self.srv = Server()
        self.addCleanup(self.srv.stop)
        self.config("")

    def config(self, extra):
        self.write_config(extra + "identity t\n  default\n  host 127.0.0.1\n"
                          "  port %d\n  tls none\n" % self.srv.port)

    def queue_msg(self, n, rcpts=None, header=b""):
        before = set(self.msg_ids())
        r = self.sendmail(["-odq", "-i", "-f", "s@example.org"] +
                          (rcpts or ["r%d@example.com" % n]),
                          b"Subject: m%d\n%sMessage-ID: <m%d@x>\n\nbody %d\n"
                          % (n, header, n, n))
        self.assertQueued(r)
        (qid,) = set(self.msg_ids()) - before
        return qid

    def queue_n(self, n):
        return [self.queue_msg(i) for i in range(n)]

    def q(self, *args, **kw):
        return self.run_cmd("postie", ["queue"] + list(args), **kw)

    def journal(self, qid):
        p = os.path.join(self.queue, "state", qid)
        if not os.path.exists(p):
            return []
        with open(p) as f:
            return f.read().splitlines()

    def append(self, qid, lines):
        with open(os.path.join(self.queue, "state", qid), "a") as f:
            f.write("".join(l + "\n" for l in lines))

    def sent(self):
        """Subject -> how many times the server got it, per recipient."""
        got = collections.Counter()
        for m in self.srv.messages:
            subj = m.data.split(b"\r\n", 1)[0].decode()[len("Subject: "):]
            for a in m.rcpts:
                got[(subj, a)] += 1
        return got

    def deliver(self, *args):
        r = self.run_cmd("deliver", list(args))
        self.assertEqual(r.returncode, 0, r.stderr)
        return r


class TestQueueControl(Base):
    def test_show(self):
        qid = self.queue_msg(0, ["a@example.com", "b@example.com"],
                             header=b"X-Evil: \x1b[31mred\x07\n")
        self.append(qid, ["1700000000 attempt",
                          "1700000001 ok 0 250 2.0.0 Ok: queued as X",
                          "1700000002 defer 1 451 4.7.1 greylisted",
                          "1700000003 next 1700000300"])
        r = self.q("show", qid, env={"TZ": "UTC"})
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(r.stderr, b"")
        out = r.stdout.decode()
        head, _, msg = out.partition("\n\n")
        lines = head.splitlines()
        self.assertEqual(lines[0], "id        " + qid)
        self.assertRegex(lines[1], r"^queued    \d{4}-\d\d-\d\d \d\d:\d\d:\d\d \+0000$")
        self.assertIn("sender    s@example.org", lines)
        self.assertIn("identity  t", lines)
        self.assertIn("state     queued", lines)
        self.assertIn("attempts  1, last 2023-11-14 22:13:20 +0000, "
                      "next try 2023-11-14 22:18:20 +0000", lines)
        self.assertIn("to        a@example.com  sent 2023-11-14 22:13:21 +0000: "
                      "250 2.0.0 Ok: queued as X", lines)
        self.assertIn("to        b@example.com  deferred 2023-11-14 22:13:22 +0000: "
                      "451 4.7.1 greylisted", lines)
        # the message, escaped as mailq escapes: nothing reaches the
        # terminal as a command
        self.assertNotIn("\x1b", out)
        self.assertNotIn("\x07", out)
        self.assertIn("X-Evil: \\x1b[31mred\\x07\n", msg)
        self.assertTrue(msg.startswith("Subject: m0\n"), msg)
        self.assertTrue(msg.endswith("\n\nbody 0\n"), msg)
        # show changes nothing
        self.assertEqual(len(self.journal(qid)), 4)

    def test_show_crlf_and_tab(self):
        qid = self.queue_msg(0)
        p = os.path.join(self.queue, "msg", qid)
        with open(p, "rb") as f:
            data = f.read()
        env, _, _ = data.partition(b"\nend\n")
        with open(os.path.join(self.queue, "tmp", "x"), "wb") as f:
            f.write(env + b"\nend\nSubject: a\r\n\tfolded\r\n\r\nbody\xff\x00\r\n")
        os.rename(os.path.join(self.queue, "tmp", "x"), p)
        out = self.q("show", qid).stdout.decode()
        self.assertTrue(out.endswith("\n\nSubject: a\n\tfolded\n\nbody\\xff\\x00\n"), repr(out))

    def test_hold_is_not_sent_and_mailq_shows_it(self):
        a, b = self.queue_n(2)
        r = self.q("hold", a)
        self.assertEqual((r.returncode, r.stdout, r.stderr), (0, b"", b""))
        (line,) = self.journal(a)
        when = int(line.split()[0])
        self.assertEqual(line, "%d hold" % when)
        self.assertLessEqual(abs(when - time.time()), 5)
        # holding it again changes nothing
        self.assertEqual(self.q("hold", a).returncode, 0)
        self.assertEqual(self.journal(a), [line])

        self.deliver("--now")
        self.deliver(a)                       # named: still not sent, and said so
        rc, shown = self.run_cmd_tty("deliver", ["-C", self.conf, a])
        self.assertEqual(rc, 0, shown)
        self.assertEqual(shown.replace("\r", ""),
                         "deliver: %s: held, not sent (postie queue release %s makes it due again)\n"
                         % (a, a))
        with open(os.path.join(self.dir, "postie.log")) as f:
            log = f.read()
        self.assertIn("%s: held by hand" % a, log)
        self.assertIn("%s: held, not sent (postie queue release %s makes it due again)" % (a, a), log)
        self.assertEqual(self.sent(), collections.Counter({("m1", "r1@example.com"): 1}))
        self.assertEqual(self.msg_ids(), [a])

        out = self.run_cmd("mailq", [], env={"TZ": "UTC"}).stdout.decode()
        since = time.strftime("%Y-%m-%d %H:%M:%S +0000", time.gmtime(when))
        self.assertIn("  held      since %s: not sent until released "
                      "(postie queue release %s)\n" % (since, a), out)
        j = json.loads(self.run_cmd("mailq", ["--json"]).stdout)
        (m,) = j["messages"]
        self.assertIs(m["held"], True)
        self.assertEqual(m["held_since"], time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(when)))
        self.assertIn("state     held since %s\n" % since,
                      self.q("show", a, env={"TZ": "UTC"}).stdout.decode())

    def test_release_then_delivered(self):
        (a,) = self.queue_n(1)
        # deferred earlier, next try far away: a release makes it due now
        self.append(a, ["1700000000 attempt", "1700000001 defer 0 451 later",
                        "%d next %d" % (time.time(), time.time() + 86400)])
        self.assertEqual(self.q("hold", a).returncode, 0)
        self.deliver("--now")
        self.assertEqual(self.srv.messages, [])
        r = self.q("release", a)
        self.assertEqual((r.returncode, r.stderr), (0, b""))
        self.assertRegex(self.journal(a)[-1], r"^\d+ release$")
        # releasing again changes nothing
        self.assertEqual(self.q("release", a).returncode, 0)
        self.assertRegex(self.journal(a)[-2], r"^\d+ hold$")
        j = json.loads(self.run_cmd("mailq", ["--json"]).stdout)
        self.assertEqual((j["messages"][0]["held"], j["messages"][0]["held_since"]), (False, None))
        self.deliver()                        # an ordinary run, not --now
        self.assertEqual(self.sent(), collections.Counter({("m0", "r0@example.com"): 1}))
        self.assertEqual(self.msg_ids(), [])

    def test_held_time_does_not_count_toward_lifetime(self):
        """lifetime 1d; queued 3 days ago, held 1 minute after that and
        released now: it has waited 1 minute, so it is sent, not failed.
        The same message without the hold expires (the control)."""
        self.config("lifetime 1d\nbounce none\n")
        a, b = self.queue_n(2)
        old = int(time.time()) - 3 * 86400
        for qid in (a, b):
            p = os.path.join(self.queue, "msg", qid)
            with open(p, "rb") as f:
                data = f.read()
            data = re.sub(rb"\nqueued \d+\n", b"\nqueued %d\n" % old, data, count=1)
            with open(os.path.join(self.queue, "tmp", "x"), "wb") as f:
                f.write(data)
            os.rename(os.path.join(self.queue, "tmp", "x"), p)
        self.append(a, ["%d hold" % (old + 60)])
        self.deliver("--now")
        # b expired (failed, no notice: bounce none), a held: untouched
        self.assertEqual(self.srv.messages, [])
        self.assertEqual(self.msg_ids(), [a])
        self.assertEqual(self.journal(a), ["%d hold" % (old + 60)])
        self.assertEqual(self.q("release", a).returncode, 0)
        self.deliver()
        self.assertEqual(self.sent(), collections.Counter({("m0", "r0@example.com"): 1}))
        self.assertEqual(self.msg_ids(), [])

    def test_remove_with_a_pending_journal(self):
        a, b = self.queue_n(2)
        self.append(a, ["1700000000 attempt", "1700000001 defer 0 451 later",
                        "1700000002 next 1700000300"])
        r = self.q("remove", a)
        self.assertEqual((r.returncode, r.stdout, r.stderr), (0, b"", b""))
        self.assertEqual(self.msg_ids(), [b])
        self.assertFalse(os.path.exists(os.path.join(self.queue, "state", a)))
        self.deliver("--now")
        self.assertEqual(self.sent(), collections.Counter({("m1", "r1@example.com"): 1}))
        with open(os.path.join(self.dir, "postie.log")) as f:
            self.assertIn("%s: removed from the queue by hand" % a, f.read())

    def test_remove_an_unusable_entry(self):
        """An entry deliver cannot use (a broken envelope, a regular file
        of the user's) can be removed by the user; a symbolic link is not
        followed and not removed."""
        bad = "1000000000.000000.1"
        (a,) = self.queue_n(1)
        with open(os.path.join(self.queue, "msg", bad), "w") as f:
            f.write("garbage\n")
        target = os.path.join(self.dir, "target")
        with open(target, "w") as f:
            f.write("keep\n")
        os.symlink(target, os.path.join(self.queue, "msg", "1000000000.000000.2"))
        r = self.q("show", bad)
        self.assertEqual(r.returncode, 65, r.stderr)
        self.assertIn(b"not a postie queue file", r.stderr)
        r = self.q("remove", bad, "1000000000.000000.2")
        self.assertNotEqual(r.returncode, 0)
        self.assertNotIn(r.returncode, (67, 75))
        self.assertRegex(r.stderr.decode(), r"^queue: 1000000000.000000.2: .*symbolic link")
        self.assertEqual(self.msg_ids(), ["1000000000.000000.2", a])
        with open(target) as f:
            self.assertEqual(f.read(), "keep\n")

    def test_unknown_ids_the_others_are_done(self):
        a, b, c = self.queue_n(3)
        r = self.q("remove", a, "1.000000.1", b, "../msg/" + c, "nope")
        self.assertEqual(r.returncode, 67, r.stderr)
        self.assertEqual(r.stderr.decode().splitlines(), [
            "queue: 1.000000.1: no such message in the queue (mailq lists the queue ids)",
            "queue: ../msg/%s: not a queue id (mailq lists the queue ids)" % c,
            "queue: nope: no such message in the queue (mailq lists the queue ids)",
            "queue: 3 of 5 messages not removed (each is named above)"])
        self.assertEqual(self.msg_ids(), [c])
        # one unknown id: one line
        for cmd in ("show", "hold", "release", "remove"):
            r = self.q(cmd, "nope")
            self.assertEqual(r.returncode, 67)
            self.assertEqual(r.stderr, b"queue: nope: no such message in the "
                             b"queue (mailq lists the queue ids)\n")
        r = self.q("hold", c, "nope")
        self.assertEqual(r.returncode, 67)
        self.assertRegex(self.journal(c)[-1], r"^\d+ hold$")

    def test_locked_message_is_waited_for_then_refused(self):
        a, b = self.queue_n(2)
        p = os.path.join(self.queue, "msg", a)
        fd = os.open(p, os.O_RDONLY)
        self.addCleanup(os.close, fd)
        fcntl.flock(fd, fcntl.LOCK_EX)          # as a deliver run holds it
        for cmd in ("show", "hold", "remove"):
            b = self.queue_msg(1)
            t0 = time.monotonic()
            r = self.q(cmd, a, b)
            took = time.monotonic() - t0
            self.assertEqual(r.returncode, 75, r.stderr)
            self.assertGreaterEqual(took, LOCK_WAIT - 0.2)
            self.assertLess(took, LOCK_WAIT + 5)
            self.assertEqual(r.stderr.decode(), "queue: %s is being sent by a deliver run "
                             "(still locked after 5 seconds); nothing was changed: try "
                             "again when the run is over\n" % a)
            self.assertIn(a, self.msg_ids())
            self.assertEqual(self.journal(a), [])
            # b was done all the same
            if cmd == "show":
                self.assertIn(b"\n\nSubject: m1\n", r.stdout)
            elif cmd == "hold":
                self.assertRegex(self.journal(b)[-1], r"^\d+ hold$")
            else:
                self.assertNotIn(b, self.msg_ids())
        # unknown and busy together: the unknown one decides (67)
        r = self.q("hold", a, "nope")
        self.assertEqual(r.returncode, 67)
        self.assertEqual(len(r.stderr.splitlines()), 3)

    def test_lock_released_in_time_is_taken(self):
        (a,) = self.queue_n(1)
        fd = os.open(os.path.join(self.queue, "msg", a), os.O_RDONLY)
        fcntl.flock(fd, fcntl.LOCK_EX)
        t = threading.Timer(1.0, os.close, (fd,))
        t.start()
        self.addCleanup(t.join)
        t0 = time.monotonic()
        r = self.q("hold", a)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertGreaterEqual(time.monotonic() - t0, 0.9)
        self.assertRegex(self.journal(a)[-1], r"^\d+ hold$")

    def test_message_removed_by_the_run_waited_for(self):
        """deliver finishes (sends and removes) the message while the
        command waits: said as such (66), not as an unknown id (67, which
        told a user stopping a mis-addressed message that he had mistyped
        the id it had just gone out under), and nothing is left behind;
        with --all too."""
        for args in (["hold"], ["remove"], ["remove", "--all"]):
            (a,) = self.queue_n(1)
            p = os.path.join(self.queue, "msg", a)
            fd = os.open(p, os.O_RDONLY)
            fcntl.flock(fd, fcntl.LOCK_EX)

            def finish():
                os.unlink(p)
                os.close(fd)
            t = threading.Timer(1.0, finish)
            t.start()
            r = self.q(*(args + ([] if "--all" in args else [a])))
            t.join()
            self.assertEqual(r.returncode, 66, (args, r.stderr))
            self.assertEqual(r.stderr.decode(), "queue: %s left the queue while the command "
                             "waited for the deliver run holding it: that run sent it, or it was "
                             "removed (its log says which); nothing was %s\n"
                             % (a, "held" if args[0] == "hold" else "removed"))
            self.assertFalse(os.path.exists(os.path.join(self.queue, "state", a)))

    def test_all(self):
        ids = self.queue_n(3)
        self.assertEqual(self.q("hold", "--all").returncode, 0)
        for i in ids:
            self.assertRegex("\n".join(self.journal(i)), r"^\d+ hold$")
        self.deliver("--now")
        self.assertEqual(self.srv.messages, [])
        out = self.q("show", "--all").stdout.decode()
        self.assertEqual(out.count("state     held since"), 3)
        self.assertEqual(self.q("release", "--all").returncode, 0)
        self.assertEqual(self.q("remove", "--all").returncode, 0)
        self.assertEqual(self.msg_ids(), [])
        self.assertEqual(os.listdir(os.path.join(self.queue, "state")), [])
        # an empty queue: nothing to do
        self.assertEqual(self.q("remove", "--all").returncode, 0)

    def test_hostile_names_reach_no_terminal(self):
        """--all takes the names in msg/ as they are: a name with control
        characters is named with them as '?', and the others are done."""
        (a,) = self.queue_n(1)
        bad = "1000000000.000000.3\x1b[31m"
        with open(os.path.join(self.queue, "msg", bad), "w") as f:
            f.write("garbage\n")
        r = self.q("hold", "--all")
        self.assertEqual(r.returncode, 65, r.stderr)
        err = r.stderr.decode()
        self.assertNotIn("\x1b", err)
        self.assertRegex(err, r"^queue: 1000000000\.000000\.3\?\[31m: ")
        self.assertRegex(self.journal(a)[-1], r"^\d+ hold$")

    def test_usage(self):
        (a,) = self.queue_n(1)
        for args in ([], ["frob", a], ["hold"], ["hold", "--all", a], ["hold", "-x", a]):
            r = self.q(*args)
            self.assertEqual(r.returncode, 64, (args, r.stderr))
            self.assertTrue(r.stderr.startswith(b"queue: "), r.stderr)
        r = self.q("hold")
        self.assertIn(b"usage: postie queue show|hold|release|remove", r.stderr)
        self.assertEqual(self.journal(a), [])

    def test_interrupted_removal_is_finished_never_sent(self):
        """A power cut after `removed` was journaled can bring msg/ID back
        (the unlink was not on disk yet): mailq does not list it, show and
        hold call it unknown, and deliver removes it without sending."""
        a, b = self.queue_n(2)
        self.append(a, ["1700000000 removed"])
        out = self.run_cmd("mailq", []).stdout.decode()
        self.assertNotIn(a, out)
        self.assertIn("1 message in the queue", out)
        self.assertEqual(json.loads(self.run_cmd("mailq", ["--json"]).stdout)["count"], 1)
        r = self.q("show", a)
        self.assertEqual(r.returncode, 67)
        self.assertIn(b"it was removed", r.stderr)
        self.deliver("--now")
        self.assertEqual(self.sent(), collections.Counter({("m1", "r1@example.com"): 1}))
        self.assertEqual(self.msg_ids(), [])
        self.assertEqual(os.listdir(os.path.join(self.queue, "state")), [])


class TestQueueControlCrash(Base):
    def setUp(self):
        super().setUp()
        # m0 with a pending journal, m1 without one
        self.ids = self.queue_n(2)
        self.append(self.ids[0], ["1700000000 attempt", "1700000001 defer 0 451 later",
                                  "1700000002 next 1700000300"])
        self.snap = os.path.join(self.dir, "snapshot")
        shutil.copytree(self.queue, self.snap)

    def reset(self, held=False):
        shutil.rmtree(self.queue)
        shutil.copytree(self.snap, self.queue)
        self.srv.messages.clear()
        if held:
            for i in self.ids:
                self.append(i, ["1700000100 hold"])

    def crash(self, cmd, n):
        r = self.q(cmd, *self.ids, env={"POSTIE_CRASH_AT": str(n),
                                          "POSTIE_CRASH_TRACE": "1"})
        self.assertEqual(r.returncode, -9, (cmd, n, r.stderr))
        self.assertEqual(trace(r), (STEPS[cmd] * 2)[:n])

    def events(self, qid, ev):
        return [l for l in self.journal(qid) if l.split()[1:] == [ev]]

    def test_steps_are_documented(self):
        """One message goes through exactly STEPS[cmd], two through it
        twice, and queue/README.md lists the same steps."""
        for cmd in STEPS:
            self.assertEqual(documented_steps(os.path.join(TOP, "queue", "README.md"), cmd),
                             STEPS[cmd], cmd)
            for ids in (self.ids[:1], self.ids):
                self.reset(held=(cmd == "release"))
                r = self.q(cmd, *ids, env={"POSTIE_CRASH_TRACE": "1"})
                self.assertEqual(r.returncode, 0, r.stderr)
                self.assertEqual(trace(r), STEPS[cmd] * len(ids), cmd)

    def test_hold_crash_at_every_step(self):
        for n in range(1, len(STEPS["hold"]) * 2 + 1):
            with self.subTest(step=n):
                self.reset()
                self.crash("hold", n)
                # the first n messages are held, durably
                for k, qid in enumerate(self.ids):
                    self.assertEqual(len(self.events(qid, "hold")), 1 if k < n else 0)
                self.deliver("--now")
                sent = self.sent()
                self.assertEqual(sent, collections.Counter(
                    {("m%d" % k, "r%d@example.com" % k): 1 for k in range(n, 2)}))
                # the next command finishes the job; once more changes nothing
                self.assertEqual(self.q("hold", *[i for i in self.ids if i in self.msg_ids()]).returncode, 0)
                for qid in self.msg_ids():
                    self.assertEqual(len(self.events(qid, "hold")), 1)

    def test_release_crash_at_every_step(self):
        for n in range(1, len(STEPS["release"]) * 2 + 1):
            with self.subTest(step=n):
                self.reset(held=True)
                self.crash("release", n)
                for k, qid in enumerate(self.ids):
                    self.assertEqual(len(self.events(qid, "release")), 1 if k < n else 0)
                # the released ones go, the others wait
                self.deliver("--now")
                self.assertEqual(self.sent(), collections.Counter(
                    {("m%d" % k, "r%d@example.com" % k): 1 for k in range(n)}))
                left = self.msg_ids()
                self.assertEqual(left, self.ids[n:])
                r = self.q("release", *left) if left else None
                if r is not None:
                    self.assertEqual(r.returncode, 0, r.stderr)
                self.deliver("--now")
                # every message sent exactly once, nothing left (a sent
                # message's old journal goes with the next run's clean-up)
                self.deliver("--now")
                self.assertEqual(self.sent(), collections.Counter(
                    {("m%d" % k, "r%d@example.com" % k): 1 for k in range(2)}))
                self.assertEqual(self.msg_ids(), [])
                self.assertEqual(os.listdir(os.path.join(self.queue, "state")), [])

    def test_remove_crash_at_every_step(self):
        """Killed at step n of `remove m0 m1`: a message whose `removed`
        line is on disk is never sent, whichever command comes next."""
        per = len(STEPS["remove"])
        for n in range(1, per * 2 + 1):
            for recovery in ("deliver", "remove"):
                with self.subTest(step=n, recovery=recovery):
                    self.reset()
                    self.crash("remove", n)
                    journaled = [k for k in range(2) if n >= k * per + 1]
                    for k in journaled:
                        # it is gone for mailq from the first step on
                        self.assertNotIn(self.ids[k], self.run_cmd("mailq", []).stdout.decode())
                    if recovery == "remove":
                        left = [i for i in self.ids if i in self.msg_ids()]
                        r = self.q("remove", *left) if left else None
                        if r is not None:
                            self.assertEqual(r.returncode, 0, r.stderr)
                        journaled = [0, 1]
                    self.deliver("--now")
                    self.assertEqual(self.sent(), collections.Counter(
                        {("m%d" % k, "r%d@example.com" % k): 1
                         for k in range(2) if k not in journaled}))
                    self.assertEqual(self.msg_ids(), [])
                    self.assertEqual(os.listdir(os.path.join(self.queue, "state")), [])
                    before = self.sent()
                    self.deliver("--now")
                    self.assertEqual(self.sent(), before)
