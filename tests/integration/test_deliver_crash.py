"""Crash injection in delivery: deliver is killed at each of its durable
steps, then run again; nothing is lost, and a recipient is sent a message
twice only in the documented window (after the server's 250, before its
"ok" line is fsync'd)."""
import collections
import os
import shutil
import signal

from pt import QueueCase
from smtpserver import Server


class TestDeliverCrash(QueueCase):
    def test_kill_at_every_step(self):
        srv = Server(script={"RCPT": lambda a: "550 5.1.1 no" if a.startswith("bad") else None})
        self.addCleanup(srv.stop)
        self.write_config("bounce maildir %s\nidentity t\n  default\n  host 127.0.0.1\n"
                          "  port %d\n  tls none\n" % (os.path.join(self.dir, "bounces"), srv.port))
        want = set()
        for i in range(3):
            rcpts = ["a%d@example.com" % i, "b%d@example.com" % i]
            if i == 1:
                rcpts.append("bad@example.com")
            r = self.sendmail(["-odq", "-i", "-f", "s@example.org"] + rcpts,
                              b"Subject: m%d\nDate: x\nMessage-ID: <m%d@x>\n\nbody\n" % (i, i))
            self.assertQueued(r)
            want |= {("m%d" % i, a) for a in rcpts if not a.startswith("bad")}
        snap = os.path.join(self.dir, "snapshot")
        shutil.copytree(self.queue, snap)

        steps, dup_steps = 0, []
        for n in range(1, 200):
            shutil.rmtree(self.queue)
            shutil.copytree(snap, self.queue)
            shutil.rmtree(os.path.join(self.dir, "bounces"), ignore_errors=True)
            srv.messages.clear()
            r = self.run_cmd("deliver", [], env={"POSTIE_CRASH_AT": str(n),
                                                "POSTIE_CRASH_TRACE": "1"})
            if r.returncode == 0:
                break
            self.assertEqual(r.returncode, -signal.SIGKILL, r.stderr)
            steps += 1
            step = r.stderr.decode().strip().splitlines()[-1]
            r2 = self.run_cmd("deliver", ["--now"])
            self.assertEqual(r2.returncode, 0, r2.stderr)
            self.assertEqual(self.msg_ids(), [], "left in the queue after crash at %s" % step)
            got = collections.Counter()
            for m in srv.messages:
                subj = m.data.split(b"\r\n", 1)[0].decode()[len("Subject: "):]
                for a in m.rcpts:
                    got[(subj, a)] += 1
            self.assertEqual(set(got), want, "lost mail after a crash at %s" % step)
            if any(c > 1 for c in got.values()):
                dup_steps.append(step)
            notices = os.listdir(os.path.join(self.dir, "bounces", "new"))
            self.assertGreaterEqual(len(notices), 1, "no failure notice after %s" % step)
        else:
            self.fail("deliver never ran to the end")
        self.assertGreater(steps, 10)
        # the only steps where a re-send can happen: a journal line after
        # the server accepted a message
        for s in dup_steps:
            self.assertRegex(s, r"state line appended|outcome recorded|msg removed")
        print("%d crash points, %d gave a duplicate (%s)" % (steps, len(dup_steps), "; ".join(dup_steps)), end=" ")
