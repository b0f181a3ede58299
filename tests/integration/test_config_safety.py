"""The config cannot be turned against the user who runs postie: only a
regular file of bounded size, owned by the user or root and writable by
no one else, is read; a program it names must pass the same rule before
it runs; an error names the line and the word, never echoes the file's
text. And a -t message with very many recipients is spooled in time."""
import json
import os
import time

import pt

NOBODY = 65534
MSG = b"From: alice@example.org\nSubject: hi\n\nbody\n"


class ConfigCase(pt.QueueCase):
    def sendmail_with(self, conf, timeout=20):
        return self.sendmail(["bob@example.com"], MSG,
                             env={"POSTIE_CONFIG": conf}, timeout=timeout)

    def assertRefused(self, r, *words):
        """Exit 78, one line on stderr naming every word, nothing queued."""
        err = r.stderr.decode(errors="replace")
        self.assertEqual(r.returncode, 78, "stderr: %r" % err)
        self.assertEqual(err.count("\n"), 1, "not one line: %r" % err)
        self.assertTrue(err.startswith("sendmail: "), err)
        for w in words:
            self.assertIn(w, err)
        self.assertNothingQueued()
        return err


class TestWhatIsRead(ConfigCase):
    def test_dev_zero_is_refused_at_once(self):
        # a short timeout: reading it grows memory by about 1 GB a second
        r = self.sendmail_with("/dev/zero", timeout=3)
        self.assertRefused(r, "/dev/zero", "not a regular file")

    def test_fifo_is_refused_without_waiting(self):
        fifo = os.path.join(self.dir, "fifo")
        os.mkfifo(fifo, 0o600)
        r = self.sendmail_with(fifo, timeout=5)   # a blocking open hangs
        self.assertRefused(r, fifo, "not a regular file")

    def test_directory_is_refused(self):
        r = self.sendmail_with(self.dir)
        self.assertRefused(r, self.dir, "not a regular file")

    def test_larger_than_one_mib_is_refused(self):
        big = os.path.join(self.dir, "big.conf")
        with open(big, "w") as f:
            f.write("queue %s\n" % self.queue)
            f.write(("#" * 1000 + "\n") * 1100)
        os.chmod(big, 0o600)
        r = self.sendmail_with(big)
        self.assertRefused(r, big, "larger than 1 MiB")

    def test_one_mib_is_accepted(self):
        conf = os.path.join(self.dir, "exact.conf")
        head = "queue %s\n" % self.queue
        with open(conf, "w") as f:
            f.write(head)
            left = 1024 * 1024 - len(head)
            while left > 0:
                n = min(left, 1000)
                f.write("#" * (n - 1) + "\n")
                left -= n
        self.assertEqual(os.path.getsize(conf), 1024 * 1024)
        os.chmod(conf, 0o600)
        self.assertQueued(self.sendmail_with(conf))

    def test_overlong_line_is_refused(self):
        with open(self.conf, "a") as f:
            f.write("max-size 1M\n# " + "x" * 5000 + "\n")
        r = self.sendmail_with(self.conf)
        self.assertRefused(r, self.conf + ":4:", "longer than 4096 bytes")

    def test_symlink_to_a_good_file_is_followed(self):
        dots = os.path.join(self.dir, "dotfiles")
        os.mkdir(dots, 0o700)
        real = os.path.join(dots, "postie")
        os.rename(self.conf, real)
        os.symlink(real, self.conf)
        self.assertQueued(self.sendmail_with(self.conf))

    def test_symlink_to_a_foreign_file_is_refused(self):
        dots = os.path.join(self.dir, "dotfiles")
        os.mkdir(dots, 0o700)
        real = os.path.join(dots, "postie")
        os.rename(self.conf, real)
        os.chown(real, NOBODY, NOBODY)
        os.symlink(real, self.conf)
        self.assertRefused(self.sendmail_with(self.conf), real, "uid 65534")


class TestOwnership(ConfigCase):
    def test_config_owned_by_another_user_is_refused(self):
        os.chown(self.conf, NOBODY, NOBODY)
        err = self.assertRefused(self.sendmail_with(self.conf), self.conf,
                                 "owned by another user (uid 65534)")
        self.assertIn("chown", err)

    def test_group_or_world_writable_config_is_refused(self):
        for mode in (0o620, 0o602, 0o666):
            with self.subTest(mode=oct(mode)):
                os.chmod(self.conf, mode)
                err = self.assertRefused(self.sendmail_with(self.conf),
                                         self.conf, "writable by other users")
                self.assertIn("chmod go-w", err)

    def test_readable_config_without_password_is_fine(self):
        os.chmod(self.conf, 0o644)
        self.assertQueued(self.sendmail_with(self.conf))

    def test_directory_owned_by_another_user_is_refused(self):
        d = os.path.join(self.dir, "theirs")
        os.mkdir(d, 0o755)
        conf = os.path.join(d, "postie.conf")
        os.rename(self.conf, conf)
        os.chown(d, NOBODY, NOBODY)
        self.assertRefused(self.sendmail_with(conf), d, "uid 65534")

    def test_writable_directory_is_refused(self):
        d = os.path.join(self.dir, "shared")
        os.mkdir(d)
        os.chmod(d, 0o775)
        conf = os.path.join(d, "postie.conf")
        os.rename(self.conf, conf)
        self.assertRefused(self.sendmail_with(conf), d, "writable by other users")

    def test_sticky_world_writable_directory_is_allowed(self):
        d = os.path.join(self.dir, "tmp")
        os.mkdir(d)
        os.chmod(d, 0o1777)
        conf = os.path.join(d, "postie.conf")
        os.rename(self.conf, conf)
        self.assertQueued(self.sendmail_with(conf))


class TestCommands(ConfigCase):
    def mda_script(self, owner=0, mode=0o755):
        self.marker = os.path.join(self.dir, "ran")
        script = os.path.join(self.dir, "mda.sh")
        with open(script, "w") as f:
            f.write("#!/bin/sh\ncat >/dev/null\ntouch %s\n" % self.marker)
        os.chmod(script, mode)
        os.chown(script, owner, owner)
        return script

    def deliver_local(self):
        self.assertQueued(self.sendmail(["tester"], MSG))
        qid = self.msg_ids()[0]
        self.run_cmd("deliver", [], timeout=30)
        q = json.loads(self.run_cmd("mailq", ["--json"]).stdout)
        for m in q["messages"]:
            if m["id"] == qid:
                return {r["address"]: (r["state"], r["reply"]) for r in m["recipients"]}
        return None

    def test_good_mda_runs(self):
        # the control: the same setup with a script of our own does run
        self.write_config("mda %s\n" % self.mda_script())
        self.assertIsNone(self.deliver_local())
        self.assertTrue(os.path.exists(self.marker))

    def test_mda_owned_by_another_user_is_not_run(self):
        script = self.mda_script(owner=NOBODY)
        self.write_config("mda %s\n" % script)
        states = self.deliver_local()
        self.assertFalse(os.path.exists(self.marker), "the mda ran")
        self.assertIsNotNone(states, "the message is gone")
        state, reply = states["tester"]
        self.assertIn(script, reply)
        self.assertIn("uid 65534", reply)

    def test_writable_mda_is_not_run(self):
        script = self.mda_script(mode=0o777)
        self.write_config("mda %s\n" % script)
        states = self.deliver_local()
        self.assertFalse(os.path.exists(self.marker), "the mda ran")
        self.assertIn("writable by other users", states["tester"][1])

    def test_mda_through_a_symlink_is_checked_where_it_leads(self):
        script = self.mda_script(owner=NOBODY)
        link = os.path.join(self.dir, "mda-link")
        os.symlink(script, link)
        self.write_config("mda %s\n" % link)
        self.deliver_local()
        self.assertFalse(os.path.exists(self.marker), "the mda ran")

    def password_setup(self, owner):
        self.marker = os.path.join(self.dir, "ran")
        script = os.path.join(self.dir, "pw.sh")
        with open(script, "w") as f:
            f.write("#!/bin/sh\ntouch %s\necho secret\n" % self.marker)
        os.chmod(script, 0o755)
        os.chown(script, owner, owner)
        # port 9 on loopback: nothing listens; the password comes first
        self.write_config("identity t\n  default\n  host 127.0.0.1\n  port 9\n"
                          "  tls none\n  auth-without-tls yes\n  user me\n"
                          "  password-command %s\n" % script)
        self.assertQueued(self.sendmail(["bob@example.com"], MSG))
        qid = self.msg_ids()[0]
        self.run_cmd("deliver", [], timeout=30)
        q = json.loads(self.run_cmd("mailq", ["--json"]).stdout)
        m = [m for m in q["messages"] if m["id"] == qid][0]
        return script, m["recipients"][0]["reply"]

    def test_password_command_of_our_own_runs(self):
        self.password_setup(0)
        self.assertTrue(os.path.exists(self.marker))

    def test_password_command_owned_by_another_user_is_not_run(self):
        script, reply = self.password_setup(NOBODY)
        self.assertFalse(os.path.exists(self.marker), "the command ran")
        self.assertIn("password-command %s is owned by another user (uid 65534)"
                      % script, reply)


class TestErrorsKeepTheFileSecret(ConfigCase):
    SECRET = "hunter2-Zq8xVw4-s3cr3t"

    def check_secret_stays(self, text, *words):
        with open(self.conf, "w") as f:
            f.write(text)
        err = self.assertRefused(self.sendmail_with(self.conf), *words)
        self.assertNotIn(self.SECRET, err)
        self.assertNotIn(self.SECRET[:6], err)
        return err

    def test_unknown_first_word(self):
        self.check_secret_stays("queue %s\n%s:$6$salt$hash:19000:0:99999:7:::\n"
                                % (self.queue, self.SECRET),
                                self.conf + ":2: word 1: unknown key")

    def test_bad_values(self):
        bad = [
            ("lifetime %s\n", ":1: word 2: 'lifetime' is not a duration"),
            ("max-size %s\n", ":1: word 2: 'max-size' is not a size"),
            ("retry 1m %s\n", ":1: word 3: 'retry' needs durations"),
            ("bounce %s\n", ":1: word 2: 'bounce' must be"),
            ("bounce %s x\n", ":1: word 2: 'bounce' must be"),
            ("log %s\n", ":1: word 2: 'log' must be"),
            ("mda %s\n", ":1: word 2: 'mda' must start with an absolute path"),
            ("identity %s/x\n", ":1: word 2: an identity name may only have"),
            ("identity a\n host h\n default\n tls %s\n", ":4: word 2: 'tls' must be"),
            ("identity a\n host h\n default\n port %s\n", ":4: word 2: 'port' must be"),
            ("identity a\n host h\n default\n ssh %s@\n", ":4: word 2: 'ssh' must be"),
            ("identity a\n host h\n default\n force-sender <%s>\n",
             ":4: word 2: 'force-sender' is not"),
        ]
        for fmt, want in bad:
            with self.subTest(fmt=fmt):
                self.check_secret_stays(fmt % self.SECRET, self.conf + want)


class TestManyRecipients(pt.QueueCase):
    def test_85000_distinct_to_addresses_in_time(self):
        n = 85000
        addrs = ["%x@b" % i for i in range(n)]
        # duplicates in another case are dropped: the first spelling stays
        head = "From: alice@example.org\nTo: " + ",".join(addrs) + "\n"
        head += "Cc: 0@B,1@b,%x@B\n" % (n - 1)
        data = (head + "\n" + "body\n").encode()
        self.assertLess(len(head), 1024 * 1024)
        t0 = time.monotonic()
        r = self.sendmail(["-t"], data, timeout=120)
        took = time.monotonic() - t0
        self.assertQueued(r)
        self.assertLess(took, 10, "took %.1f s" % took)
        env, _ = self.only_msg()
        self.assertEqual(env["rcpt"], addrs)
