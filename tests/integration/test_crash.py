"""Crash safety of the spool: kill at every durable step, kill -9 while
reading a slow pipe, and a full disk."""
import os
import re
import shutil
import signal
import subprocess
import tempfile
import time
import unittest

from pt import POSTIE, QueueCase

MSG = (b"From: Alice <alice@example.org>\nTo: bob@example.com\n"
       b"Subject: crash\nDate: Mon, 1 Jan 2024 00:00:00 +0000\n"
       b"Message-ID: <crash@example.org>\n\n" + b"line of body text\n" * 8000)


HERE = os.path.dirname(os.path.abspath(__file__))
QUEUE_README = os.path.join(os.path.dirname(os.path.dirname(HERE)), "queue", "README.md")

# The steps of a spool of MSG: envelope and message are about 141 KiB, so
# two full 64 KiB buffers and the rest at commit are written.
STEPS = [
    "tmp file created",
    "data written",
    "data written",
    "data written",
    "tmp file fsync'd",
    "tmp file closed",
    "renamed into msg/",        # 7: from here on the message is queued
    "msg/ fsync'd",
]
FIRST_COMMITTED = 7


def trace(r):
    """The step names a run printed with POSTIE_CRASH_TRACE=1."""
    out = []
    for line in r.stderr.decode().splitlines():
        m = re.match(r"crashpoint (\d+) (.+)$", line)
        if m:
            if int(m.group(1)) != len(out) + 1:
                raise AssertionError("step %s out of order" % m.group(1))
            out.append(m.group(2))
    return out


def documented_sendmail_steps():
    """The step names of the small-message example in queue/README.md."""
    with open(QUEUE_README) as f:
        text = f.read()
    block = text.split("$ echo hi | POSTIE_CRASH_TRACE=1 sendmail bob@example.org\n",
                       1)[1].split("\n\n", 1)[0]
    return [re.match(r"\s*crashpoint \d+ (.+)$", line).group(1)
            for line in block.splitlines()]


class TestCrashInjection(QueueCase):
    ARGS = ["-odq", "-i", "-f", "alice@example.org", "-N", "failure",
            "bob@example.com", "carol@example.com"]

    def spool_crashing_at(self, n, data, args):
        return self.sendmail(args, data, env={"POSTIE_CRASH_AT": str(n),
                                              "POSTIE_CRASH_TRACE": "1"})

    def assertWhole(self, qid):
        env, body = self.read_msg(qid)
        self.assertEqual(body, MSG)
        self.assertEqual(env["rcpt"], ["bob@example.com", "carol@example.com"])
        self.assertEqual(env["sender"], "alice@example.org")
        self.assertEqual(env["notify"], "failure")

    def test_steps(self):
        """A spool goes through exactly STEPS; a small one through the
        six steps queue/README.md lists."""
        r = self.sendmail(self.ARGS, MSG, env={"POSTIE_CRASH_TRACE": "1"})
        self.assertQueued(r)
        self.assertEqual(trace(r), STEPS)
        self.assertEqual(self.tmp_files(), [])
        self.assertWhole(self.only_msg_id())
        shutil.rmtree(self.queue)
        r = self.sendmail(["-odq", "bob@example.org"], b"hi\n",
                          env={"POSTIE_CRASH_TRACE": "1"})
        self.assertQueued(r)
        self.assertEqual(trace(r), documented_sendmail_steps())
        self.assertEqual(len(trace(r)), 6)

    def test_every_step(self):
        """For every N: crash at step N. Before the rename the queue holds
        nothing and tmp/ the one unfinished file; from the rename on, msg/
        holds the whole message with its whole envelope and tmp/ nothing."""
        for n in range(1, len(STEPS) + 1):
            with self.subTest(step=n, name=STEPS[n - 1]):
                shutil.rmtree(self.queue, ignore_errors=True)
                r = self.spool_crashing_at(n, MSG, self.ARGS)
                self.assertEqual(r.returncode, -signal.SIGKILL, r.stderr)
                self.assertEqual(trace(r), STEPS[:n])
                if n < FIRST_COMMITTED:
                    self.assertEqual(self.msg_ids(), [])
                    self.assertEqual(len(self.tmp_files()), 1)
                else:
                    self.assertEqual(self.tmp_files(), [])
                    self.assertWhole(self.only_msg_id())
        # one past the last step: no crash, one whole message
        shutil.rmtree(self.queue, ignore_errors=True)
        r = self.spool_crashing_at(len(STEPS) + 1, MSG, self.ARGS)
        self.assertQueued(r)
        self.assertWhole(self.only_msg_id())

    def only_msg_id(self):
        ids = self.msg_ids()
        self.assertEqual(len(ids), 1, ids)
        return ids[0]

    def test_kill_while_reading_slow_pipe(self):
        p = subprocess.Popen([os.path.join(self.bin, "sendmail"), "-i",
                              "bob@example.com"], stdin=subprocess.PIPE,
                             env=self.env)
        p.stdin.write(MSG[:70000])
        p.stdin.flush()
        time.sleep(0.3)             # it has read and written some of it
        self.assertIsNone(p.poll())
        tmp_during = self.tmp_files()
        p.kill()
        p.wait(timeout=10)
        try:
            p.stdin.close()
        except BrokenPipeError:
            pass
        self.assertEqual(p.returncode, -signal.SIGKILL)
        self.assertEqual(len(tmp_during), 1)
        self.assertEqual(self.msg_ids(), [])   # nothing committed


@unittest.skipUnless(os.geteuid() == 0, "mounting a tmpfs needs root")
class TestFullDisk(QueueCase):
    def setUp(self):
        super().setUp()
        self.mnt = tempfile.mkdtemp(prefix="postie-full.")
        r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=256k,mode=0700",
                            "postie-test", self.mnt], capture_output=True)
        if r.returncode != 0:
            os.rmdir(self.mnt)
            self.skipTest("cannot mount a tmpfs here: %s" % r.stderr.decode().strip())
        self.addCleanup(os.rmdir, self.mnt)
        self.addCleanup(subprocess.run, ["umount", "-l", self.mnt])
        self.queue = os.path.join(self.mnt, "queue")
        self.write_config("")

    def test_full_disk_is_temporary_and_leaves_nothing(self):
        big = MSG + b"x" * (1024 * 1024)
        r = self.sendmail(["-odq", "-i", "bob@example.com"], big)
        self.assertEqual(r.returncode, 75, r.stderr)
        self.assertIn(b"No space left on device", r.stderr)
        self.assertIn(b"nothing was queued", r.stderr)
        self.assertNothingQueued()
        # and once there is room, the same queue works
        r = self.sendmail(["-odq", "-i", "bob@example.com"], MSG)
        self.assertQueued(r)
        self.assertEqual(len(self.msg_ids()), 1)

    def fill(self):
        path = os.path.join(self.mnt, "fill")
        fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o600)
        try:
            while os.write(fd, b"\0" * 4096) > 0:
                pass
        except OSError:
            pass
        finally:
            os.close(fd)
        return path

    def test_deliver_on_a_full_disk_says_the_message_stays(self):
        # local mail into ~/Maildir (another file system): with no room
        # for its journal line it is not delivered at all (it was, and
        # then again by every run until there was room)
        r = self.sendmail(["-odq", "-i", "alice"], MSG)
        self.assertQueued(r)
        [qid] = self.msg_ids()
        fill = self.fill()
        for _ in range(2):
            r = self.run_cmd("deliver", ["--now"])
            self.assertEqual(r.returncode, 75, r.stderr)
            lines = r.stderr.decode().splitlines()
            self.assertEqual(len(lines), 1, r.stderr)
            self.assertRegex(lines[0], r"^deliver: no room on the disk of .*/state for a "
                             r"journal line \(no free blocks\); nothing was sent, the mail "
                             r"stays queued \(free some space, then run deliver again\)$")
        self.assertEqual(self.msg_ids(), [qid])
        maildir = os.path.join(self.dir, "Maildir", "new")
        self.assertEqual(os.listdir(maildir) if os.path.isdir(maildir) else [], [])
        os.unlink(fill)
        r = self.run_cmd("deliver", ["--now"])
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(self.msg_ids(), [])
        self.assertEqual(len(os.listdir(maildir)), 1)

    def upstream(self, script):
        from smtpserver import Server
        srv = Server(script=script)
        self.addCleanup(srv.stop)
        self.write_config("retry 1s\nbounce none\nidentity up\n  default\n  host 127.0.0.1\n"
                          "  port %d\n  tls none\n  timeout 10s\n" % srv.port)
        return srv

    def queue_three(self):
        # two recipients, one deferred: the journal, not the removal,
        # records what went
        for i in range(3):
            r = self.sendmail(["-odq", "-i", "ok%d@example.com" % i, "later%d@example.com" % i],
                              b"Subject: m%d\n\nhi\n" % i)
            self.assertQueued(r)

    def until_sent(self):
        """deliver --now until a run ends with exit 0 and another finds
        nothing to send (a small disk holds room for a few at a time)."""
        for _ in range(12):
            r = self.run_cmd("deliver", ["--now"])
            if r.returncode == 0:
                break
            self.assertEqual(r.returncode, 75, r.stderr)
            self.assertIn(b"wait for room", r.stderr)
        self.assertEqual(r.returncode, 0, r.stderr)
        r = self.run_cmd("deliver", ["--now"])
        self.assertEqual(r.returncode, 0, r.stderr)

    def sent(self, srv):
        return sorted(r for m in srv.messages for r in m.rcpts)

    def test_a_full_disk_sends_nothing_it_could_not_record(self):
        srv = self.upstream({"RCPT": lambda a: "451 4.7.1 later" if "later" in a else
                             "250 2.1.5 ok"})
        self.queue_three()
        fill = self.fill()
        r = self.run_cmd("deliver", ["--now"])
        self.assertEqual(r.returncode, 75, r.stderr)
        self.assertRegex(r.stderr.decode(), r"^deliver: no room on the disk of .*/state for a "
                         r"journal line \(no free blocks\); nothing was sent, the mail stays "
                         r"queued \(free some space, then run deliver again\)\n$")
        self.assertEqual(srv.messages, [])       # sent, it would go again next time
        os.unlink(fill)
        r = self.run_cmd("deliver", ["--now"])
        self.assertEqual(r.returncode, 0, r.stderr)
        r = self.run_cmd("deliver", ["--now"])
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(self.sent(srv), ["ok0@example.com", "ok1@example.com",
                                          "ok2@example.com"])

    def test_a_disk_that_fills_during_the_session_loses_no_record(self):
        # the disk fills while the server takes the first message: the
        # outcomes of all three still reach the journal (room taken for
        # them when the session opened), so none is sent twice
        filled = []

        def rcpt(a):
            if not filled:
                filled.append(self.fill())
            return "451 4.7.1 later" if "later" in a else "250 2.1.5 ok"
        srv = self.upstream({"RCPT": rcpt})
        self.queue_three()
        r = self.run_cmd("deliver", ["--now"])
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(len(srv.messages), 3)
        os.unlink(filled[0])
        for _ in range(2):
            r = self.run_cmd("deliver", ["--now"])
            self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(self.sent(srv), ["ok0@example.com", "ok1@example.com",
                                          "ok2@example.com"])

    def test_a_notice_is_written_once_whatever_the_disk(self):
        # a message whose recipient failed, its notice not yet written
        # (bounced not journaled), on a full queue disk: the notice (in
        # a Maildir elsewhere) must wait, not be written every run
        bounces = os.path.join(self.dir, "bounces")
        self.write_config("bounce maildir %s\nidentity up\n  default\n  host 127.0.0.1\n"
                          "  port 1\n  tls none\n" % bounces)
        r = self.sendmail(["-odq", "-i", "-f", "alice@example.org", "bad@example.com"],
                          b"Subject: x\n\nhi\n")
        self.assertQueued(r)
        [qid] = self.msg_ids()
        with open(os.path.join(self.queue, "state", qid), "w") as f:
            f.write("%d attempt\n%d fail 0 550 5.1.1 no such user\n"
                    % (time.time(), time.time()))
        fill = self.fill()
        for _ in range(3):
            r = self.run_cmd("deliver", ["--now"])
            self.assertIn(r.returncode, (0, 75), r.stderr)
        new = os.path.join(bounces, "new")
        self.assertEqual(os.listdir(new) if os.path.isdir(new) else [], [])
        self.assertEqual(self.msg_ids(), [qid])
        os.unlink(fill)
        r = self.run_cmd("deliver", ["--now"])
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(len(os.listdir(new)), 1)
        self.assertEqual(self.msg_ids(), [])

    def test_a_delay_warning_waits_for_room(self):
        # a warning written while its "warned" line cannot be would be
        # written again by every run (an mda or a queued notice keeps
        # each copy); it waits for room instead
        bounces = os.path.join(self.dir, "bounces")
        self.write_config("bounce maildir %s\ndelay-warning 1s\nretry 1h\n"
                          "identity up\n  default\n  host 127.0.0.1\n  port 1\n  tls none\n"
                          % bounces)
        r = self.sendmail(["-odq", "-i", "-f", "alice@example.org", "bob@example.com"],
                          b"Subject: x\n\nhi\n")
        self.assertQueued(r)
        [qid] = self.msg_ids()
        with open(os.path.join(self.queue, "state", qid), "w") as f:
            f.write("%d attempt\n%d defer 0 451 later\n%d next %d\n"
                    % (time.time(), time.time(), time.time(), time.time() + 3600))
        time.sleep(1.2)
        fill = self.fill()
        r = self.run_cmd("deliver", [])        # not due: only the warning
        self.assertEqual(r.returncode, 0, r.stderr)
        new = os.path.join(bounces, "new")
        self.assertEqual(os.listdir(new) if os.path.isdir(new) else [], [])
        self.assertIn("%s: no delay warning yet" % qid,
                      open(os.path.join(self.dir, "postie.log")).read())
        os.unlink(fill)
        r = self.run_cmd("deliver", [])
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(len(os.listdir(new)), 1)

    def test_no_free_inodes_delivers_nothing(self):
        # blocks free, inodes not: no journal could be made, so nothing
        # goes (the first message went again with every run)
        subprocess.run(["mount", "-o", "remount,nr_inodes=64", self.mnt], check=True)
        srv = self.upstream({})
        for i in range(3):
            r = self.sendmail(["-odq", "-i", "ok%d@example.com" % i, "tester"],
                              b"Subject: m%d\n\nhi\n" % i)
            self.assertQueued(r)
        hog = os.path.join(self.mnt, "inodes")
        os.mkdir(hog)
        n = 0
        while True:
            try:
                open(os.path.join(hog, str(n)), "w").close()
            except OSError:
                break
            n += 1
        for _ in range(2):
            r = self.run_cmd("deliver", ["--now"])
            self.assertEqual(r.returncode, 75, r.stderr)
            self.assertIn(b"nothing was sent", r.stderr)
        self.assertEqual(srv.messages, [])
        maildir = os.path.join(self.dir, "Maildir", "new")
        self.assertEqual(os.listdir(maildir) if os.path.isdir(maildir) else [], [])
        shutil.rmtree(hog)
        self.until_sent()
        self.assertEqual(self.sent(srv), ["ok0@example.com", "ok1@example.com",
                                          "ok2@example.com"])
        self.assertEqual(len(os.listdir(maildir)), 3)

    def test_room_for_some_sends_those_and_the_rest_waits(self):
        srv = self.upstream({"RCPT": lambda a: "451 4.7.1 later" if "later" in a else
                             "250 2.1.5 ok"})
        for i in range(20):
            r = self.sendmail(["-odq", "-i", "ok%d@example.com" % i, "later%d@example.com" % i,
                               "later-too%d@example.com" % i], b"Subject: m%d\n\nhi\n" % i)
            self.assertQueued(r)
        fill = self.fill()
        os.truncate(fill, os.path.getsize(fill) - 64 * 1024)     # 64 KiB free
        r = self.run_cmd("deliver", ["--now"])
        self.assertEqual(r.returncode, 75, r.stderr)
        self.assertRegex(r.stderr.decode(), r"deliver: \d+ messages wait for room on the "
                         r"queue's disk for their journal \(free some space, then run "
                         r"deliver again\)\n$")
        first = self.sent(srv)
        self.assertTrue(0 < len(first) < 20, first)
        os.unlink(fill)
        self.until_sent()
        self.assertEqual(self.sent(srv), sorted("ok%d@example.com" % i for i in range(20)))

    def test_a_disk_filled_again_and_again_stops_the_session(self):
        # another program takes every byte freed: an outcome that cannot
        # be recorded ends the session before the next message's data, so
        # at most that one message goes again
        stop, started = [], []

        def keep_full():
            path = os.path.join(self.mnt, "hog")
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
            while not stop:
                try:
                    os.write(fd, b"\0" * 512)
                except OSError:
                    time.sleep(0.001)
            os.close(fd)
            os.unlink(path)

        def rcpt(a):
            if not started:
                import threading
                started.append(threading.Thread(target=keep_full, daemon=True))
                started[0].start()
                time.sleep(0.2)
            return "451 4.7.1 later" if "later" in a else "250 2.1.5 ok"
        srv = self.upstream({"RCPT": rcpt})
        for i in range(15):     # the queue and its journals fit 256 KiB
            r = self.sendmail(["-odq", "-i", "ok%d@example.com" % i, "later%d@example.com" % i],
                              b"Subject: m%d\n\nhi\n" % i)
            self.assertQueued(r)
        r = self.run_cmd("deliver", ["--now"])
        stop.append(1)
        started[0].join(10)
        self.assertEqual(r.returncode, 75, r.stderr)
        self.until_sent()
        got = self.sent(srv)
        self.assertEqual(sorted(set(got)), sorted("ok%d@example.com" % i for i in range(15)))
        self.assertLessEqual(len(got) - 15, 1, got)     # one message's window at most

    def test_queue_control_on_a_full_disk_says_nothing_changed(self):
        r = self.sendmail(["-odq", "-i", "bob@example.com"], MSG)
        self.assertQueued(r)
        [qid] = self.msg_ids()
        if not os.path.exists(os.path.join(self.bin, "postie")):
            os.symlink(POSTIE, os.path.join(self.bin, "postie"))
        fill = self.fill()
        for op in ("hold", "remove"):
            r = self.run_cmd("postie", ["queue", op, qid])
            self.assertEqual(r.returncode, 75, r.stderr)
            lines = r.stderr.decode().splitlines()
            self.assertEqual(len(lines), 1, r.stderr)
            self.assertRegex(lines[0], r"^queue: %s: cannot write .*: No space left on "
                             r"device; the message is as it was \(free some space, "
                             r"then run it again\)$" % re.escape(qid))
            self.assertEqual(self.msg_ids(), [qid])
        r = self.run_cmd("mailq", [])
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertNotIn(b"held", r.stdout)
        os.unlink(fill)
        r = self.run_cmd("postie", ["queue", "remove", qid])
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(self.msg_ids(), [])
