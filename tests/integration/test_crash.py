"""Crash safety of the spool: kill at every durable step, kill -9 while
reading a slow pipe, and a full disk."""
import os
import shutil
import signal
import subprocess
import tempfile
import time
import unittest

from pt import QueueCase

MSG = (b"From: Alice <alice@example.org>\nTo: bob@example.com\n"
       b"Subject: crash\nDate: Mon, 1 Jan 2024 00:00:00 +0000\n"
       b"Message-ID: <crash@example.org>\n\n" + b"line of body text\n" * 8000)


class TestCrashInjection(QueueCase):
    def spool_crashing_at(self, n, data, args):
        return self.sendmail(args, data, env={"POSTIE_CRASH_AT": str(n),
                                              "POSTIE_CRASH_TRACE": "1"})

    def test_every_step(self):
        """For every N: crash at step N, then the queue holds either no
        message or the whole message with its whole envelope."""
        args = ["-i", "-f", "alice@example.org", "-N", "failure", "bob@example.com",
                "carol@example.com"]
        committed_after_crash = 0
        steps_seen = []
        for n in range(1, 200):
            shutil.rmtree(self.queue, ignore_errors=True)
            r = self.spool_crashing_at(n, MSG, args)
            trace = r.stderr.decode().splitlines()
            if r.returncode == 0:
                break           # ran past the last step: done
            self.assertEqual(r.returncode, -signal.SIGKILL, r.stderr)
            steps_seen.append(trace[-1])
            ids = self.msg_ids()
            self.assertLessEqual(len(ids), 1)
            if ids:
                env, body = self.read_msg(ids[0])
                self.assertEqual(body, MSG)
                self.assertEqual(env["rcpt"], ["bob@example.com", "carol@example.com"])
                self.assertEqual(env["sender"], "alice@example.org")
                self.assertEqual(env["notify"], "failure")
                committed_after_crash += 1
            # a leftover tmp file is allowed (removed by age), never in msg/
        else:
            self.fail("the spool never finished")
        self.assertGreaterEqual(len(steps_seen), 5, steps_seen)
        # the steps after the rename leave the message committed
        self.assertGreaterEqual(committed_after_crash, 2, steps_seen)
        self.assertTrue(any("renamed into msg/" in s for s in steps_seen))
        self.assertTrue(any("msg/ fsync'd" in s for s in steps_seen))
        # and the run without a crash commits exactly one whole message
        env, body = self.only_msg()
        self.assertEqual(body, MSG)

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
