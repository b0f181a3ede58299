"""The machine's own mail: aliases (alias lines and an aliases file),
newaliases / sendmail -bi, `domain`, and cron's real invocation carried
through to a real Postfix that checks the sender and the From:."""
import json
import os
import socket
import subprocess
import time
import unittest

import certs
import postfix
from pt import QueueCase, POSTIE

WHY_NOT = postfix.available()

DEBIAN_ALIASES = """# /etc/aliases
mailer-daemon: postmaster
postmaster: root
nobody: root
hostmaster: root
usenet: root
news: root
webmaster: root
www: root
ftp: root
abuse: root
noc: root
security: root
"""

# what cron (cronie and Debian's cron) pipes to
# sendmail -FCronDaemon -i -B8BITMIME -oem root
CRON_MSG = (b"From: root (Cron Daemon)\n"
            b"To: root\n"
            b"Subject: Cron <root@laptop> /usr/local/bin/backup\n"
            b"MIME-Version: 1.0\n"
            b"Content-Type: text/plain; charset=UTF-8\n"
            b"Content-Transfer-Encoding: 8bit\n"
            b"X-Cron-Env: <SHELL=/bin/sh>\n"
            b"X-Cron-Env: <HOME=/root>\n"
            b"\n"
            b"backup: 3 files copied\n")
CRON_ARGS = ["-FCronDaemon", "-i", "-B8BITMIME", "-oem", "root"]


class AliasCase(QueueCase):
    def aliases_file(self, text, mode=0o600):
        path = os.path.join(self.dir, "aliases")
        with open(path, "w") as f:
            f.write(text)
        os.chmod(path, mode)
        return path

    def newaliases(self, args=()):
        return subprocess.run([POSTIE, "newaliases"] + list(args), capture_output=True,
                              env=self.env, timeout=30)


class TestNewaliases(AliasCase):
    def test_counts_what_it_found(self):
        path = self.aliases_file(DEBIAN_ALIASES)
        self.write_config("alias root me@example.org\naliases %s\n" % path)
        for r in (self.newaliases(), self.sendmail(["-bi"], b"")):
            self.assertEqual(r.returncode, 0, r.stderr)
            self.assertEqual(r.stdout.decode(), "%s: 12 aliases, 1 from alias lines\n" % path)
            self.assertEqual(r.stderr, b"")
        self.assertNothingQueued()

    def test_without_a_file(self):
        self.write_config("alias root me@example.org\n")
        r = self.newaliases()
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(r.stdout, b"no aliases file; 1 aliases from alias lines\n")
        # by the name make install links, with -C
        link = os.path.join(self.bin, "newaliases")
        os.symlink(POSTIE, link)
        r = subprocess.run([link, "-C", self.conf], capture_output=True, env=self.env,
                           timeout=30)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(r.stdout, b"no aliases file; 1 aliases from alias lines\n")
        r = subprocess.run([link, "root"], capture_output=True, env=self.env, timeout=30)
        self.assertEqual((r.returncode, r.stderr), (64, b"newaliases: usage: newaliases "
                                                        b"[-C config]\n"))

    def test_every_error_with_file_and_line(self):
        path = self.aliases_file("root: me@example.org\n"
                                 "backup: :include:/etc/backup-list\n"
                                 "log: /var/log/mail-copy\n"
                                 "prog: \"|/usr/bin/procmail\"\n"
                                 "a: b\n"
                                 "b: a\n"
                                 "hash:$6$SECRET:19000::\n")
        self.write_config("aliases %s\n" % path)
        for r, cmd in ((self.newaliases(), "newaliases"),
                       (self.sendmail(["-bi"], b""), "sendmail")):
            self.assertEqual(r.returncode, 78, r.stderr)
            lines = r.stderr.decode().splitlines()
            self.assertEqual(lines, [
                "%s: %s:7: a local name may only have letters, digits, '.', '_', '+' "
                "and '-' (at most 64)" % (cmd, path),
                "%s: %s:5: alias loop: a -> b -> a" % (cmd, path),   # once
                # what another MTA would run or write: only mail to it is refused
                "%s: %s:2: mail to backup is refused: ':include:' is not supported: "
                "list the addresses in the entry itself" % (cmd, path),
                "%s: %s:3: mail to log is refused: a file target ('/path') is not "
                "supported: postie writes no file for a recipient" % (cmd, path),
                "%s: %s:4: mail to prog is refused: a program target ('|command') is "
                "not supported: postie runs no program for a recipient (use mda)"
                % (cmd, path),
                "%s: 2 errors in the aliases: fix them and run newaliases again" % cmd,
            ])
            self.assertNotIn(b"SECRET", r.stderr + r.stdout)

    def test_untrusted_or_missing_file(self):
        path = self.aliases_file("root: me@example.org\n", mode=0o666)
        self.write_config("aliases %s\n" % path)
        r = self.newaliases()
        self.assertEqual(r.returncode, 78)
        self.assertIn(b"is writable by other users: run chmod go-w", r.stderr)
        os.unlink(path)
        r = self.newaliases()
        self.assertEqual(r.returncode, 78)
        self.assertEqual(r.stderr.decode(), "newaliases: %s: cannot open the aliases "
                         "file: No such file or directory\n" % path)


class TestAliasesAtSendmail(AliasCase):
    def test_expanded_into_the_envelope(self):
        path = self.aliases_file(DEBIAN_ALIASES + "root: root, admin, me@example.org\n"
                                 "admin: ops@example.org\n")
        self.write_config("aliases %s\n" % path)
        r = self.sendmail(["-odq", "postmaster", "abuse", "bob@example.com", "tester"],
                          b"Subject: x\n\nhi\n")
        self.assertQueued(r)
        env, body = self.only_msg()
        # root keeps a local copy (root: root); tester has no alias
        self.assertEqual(env["rcpt"], ["root", "ops@example.org", "me@example.org",
                                       "bob@example.com", "tester"])
        self.assertNotIn(b"postmaster", body)          # no header changes

    def test_alias_lines_win_and_domain_qualifies_targets(self):
        path = self.aliases_file("root: other@example.net\npostmaster: root\n")
        self.write_config("domain example.org\nalias root admin, me@example.org\n"
                          "aliases %s\n" % path)
        r = self.sendmail(["-odq", "-t"], b"To: postmaster\nCc: tester\n\nhi\n")
        self.assertQueued(r)
        env, _ = self.only_msg()
        # admin (a bare target) is qualified; tester (no alias) stays local
        self.assertEqual(env["rcpt"], ["admin@example.org", "me@example.org", "tester"])

    def test_smtp_dialogue_expands_too(self):
        self.write_config("alias root me@example.org\n")
        dialogue = (b"EHLO me\r\nMAIL FROM:<tester@example.org>\r\nRCPT TO:<root>\r\n"
                    b"DATA\r\nSubject: x\r\n\r\nhi\r\n.\r\nQUIT\r\n")
        r = self.sendmail(["-bs", "-odq"], dialogue)
        self.assertEqual(r.returncode, 0, r.stderr)
        env, _ = self.only_msg()
        self.assertEqual(env["rcpt"], ["me@example.org"])

    def test_a_broken_file_queues_nothing(self):
        path = self.aliases_file("root: a\na: root\n")
        self.write_config("aliases %s\n" % path)
        r = self.sendmail(["-odq", "root"], b"Subject: x\n\nhi\n")
        self.assertEqual(r.returncode, 78)
        # mail to a name in the loop: refused, at the line closing it
        self.assertEqual(r.stderr.decode(), "sendmail: %s:2: alias loop: root -> a -> root; "
                         "nothing was queued\n" % path)
        self.assertNothingQueued()
        # deliver and mailq do not read the file: the queue still moves
        r = self.run_cmd("mailq", [])
        self.assertEqual(r.returncode, 0, r.stderr)

    def test_a_hostile_file_refuses_only_the_mail_it_touches(self):
        # each problem refuses the mail to its names, says where, queues
        # nothing of it; mail to anyone else goes (cron's mail must not
        # hang on a line for someone else: cron only logs an exit 78)
        path = self.aliases_file("postmaster: root\n"
                                 "root: |/bin/sh -c \"touch /tmp/x\"\n"
                                 "bob: :include:/etc/shadow\n"
                                 "carol: /tmp/carolfile\n"
                                 "loop1: loop2\nloop2: loop1\n"
                                 "\"john doe\": jd@example.org\n"
                                 "dave: dave@example.org # the admin\n")
        self.write_config("aliases %s\n" % path)
        for rcpt, why in (
                ("postmaster", "2: mail to root is refused: a program target"),
                ("carol", "4: mail to carol is refused: a file target"),
                ("loop2", "5: alias loop: loop2 -> loop1 -> loop2"),
                ("dave", "8: mail to dave is refused: its entry is broken (a target is not "
                         "a usable address)")):
            r = self.sendmail(["-odq", "-oi", rcpt], b"Subject: x\n\nhi\n")
            self.assertEqual(r.returncode, 78, r.stderr)
            self.assertTrue(r.stderr.decode().startswith("sendmail: %s:%s" % (path, why)),
                            (rcpt, r.stderr))
            self.assertTrue(r.stderr.decode().endswith("; nothing was queued\n"), r.stderr)
            self.assertNothingQueued()
        self.assertFalse(os.path.exists("/tmp/x"))
        for rcpt in ("x@example.net", "tester"):
            self.assertQueued(self.sendmail(["-odq", "-oi", rcpt], b"Subject: x\n\nhi\n"))
        self.assertEqual(len(self.msg_ids()), 2)
        # the log says the file has problems; newaliases lists them
        log = open(os.path.join(self.dir, "postie.log")).read()
        self.assertIn("the aliases have 3 problems, each refusing only the mail to its "
                      "names: %s:7: an alias name may only" % path, log)
        r = self.newaliases()
        self.assertEqual(r.returncode, 78, r.stderr)
        self.assertEqual(r.stderr.decode().count("\n"), 7, r.stderr)   # 3 errors, 3 refusing, the sum

    def test_a_name_given_twice_and_backslash_names(self):
        # a migrated /etc/aliases: a name given again (the first counts, as
        # Postfix and sendmail have it) and sendmail's \\root idiom
        path = self.aliases_file("root: \\root, me@example.org\n"
                                 "postmaster: root\n"
                                 "postmaster: other@example.org\n")
        self.write_config("domain example.org\naliases %s\n" % path)
        r = self.newaliases()
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(r.stderr.decode(), "newaliases: %s:3: this name has an alias already "
                         "(the first one counts)\n" % path)
        r = self.sendmail(["-odq", "-oi", "postmaster"], b"Subject: cron\n\nhi\n")
        self.assertQueued(r)
        env, _ = self.only_msg()
        # \root is the local copy: it stays here, domain or not
        self.assertEqual(env["rcpt"], ["root", "me@example.org"])

    def test_an_entry_for_a_program_refuses_only_its_own_mail(self):
        # /etc/aliases is shared: a mailing-list manager's "|command" entry
        # must not stop cron's mail to root
        path = self.aliases_file("postmaster: root\n"
                                 "root: me@example.org\n"
                                 "mailman: \"|/var/lib/mailman/mail/mailman post mylist\"\n"
                                 "mylist: mailman, me@example.org\n")
        self.write_config("domain example.org\naliases %s\n" % path)
        r = self.newaliases()
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(r.stdout.decode(), "%s: 4 aliases, 0 from alias lines; 1 refuses "
                         "mail (postie runs no program and writes no file for a recipient)\n"
                         % path)
        self.assertEqual(r.stderr.decode(), "newaliases: %s:3: mail to mailman is refused: a "
                         "program target ('|command') is not supported: postie runs no "
                         "program for a recipient (use mda)\n" % path)
        r = self.sendmail(["-odq", "-oi", "postmaster"], b"Subject: cron\n\nhi\n")
        self.assertQueued(r)
        env, _ = self.only_msg()
        self.assertEqual(env["rcpt"], ["me@example.org"])
        for rcpt in ("mailman", "mylist"):
            r = self.sendmail(["-odq", "-oi", rcpt, "bob@example.com"], b"Subject: x\n\nhi\n")
            self.assertEqual(r.returncode, 78, r.stderr)
            self.assertEqual(r.stderr.decode(), "sendmail: %s:3: mail to mailman is refused: "
                             "a program target ('|command') is not supported: postie runs no "
                             "program for a recipient (use mda); nothing was queued\n" % path)
        self.assertEqual(len(self.msg_ids()), 1)
        # over SMTP (-bs) the refusal is that recipient's, at its RCPT
        os.unlink(os.path.join(self.queue, "msg", self.msg_ids()[0]))
        dialogue = (b"EHLO me\r\nMAIL FROM:<tester@example.org>\r\nRCPT TO:<mylist>\r\n"
                    b"RCPT TO:<root>\r\nDATA\r\nSubject: x\r\n\r\nhi\r\n.\r\nQUIT\r\n")
        r = self.sendmail(["-bs", "-odq"], dialogue)
        self.assertEqual(r.returncode, 0, r.stderr)
        replies = r.stdout.decode().split("\r\n")
        self.assertIn("550 5.1.1 %s:3: mail to mailman is refused: a program target "
                      "('|command') is not supported: postie runs no program for a recipient "
                      "(use mda)" % path, replies)
        self.assertIn("250 2.1.5 Ok", replies)
        env, _ = self.only_msg()
        self.assertEqual(env["rcpt"], ["me@example.org"])
        # every recipient refused: DATA says so
        r = self.sendmail(["-bs", "-odq"], b"EHLO me\r\nMAIL FROM:<tester@example.org>\r\n"
                          b"RCPT TO:<mailman>\r\nDATA\r\nQUIT\r\n")
        self.assertIn("554 5.5.1 No valid recipients", r.stdout.decode().split("\r\n"))

    def test_domain_qualifies_the_sender_and_the_from(self):
        self.write_config("domain example.org\n")
        r = self.sendmail(["-odq", "bob@example.com"], b"Subject: x\n\nhi\n")
        self.assertQueued(r)
        env, body = self.only_msg()
        self.assertEqual(env["sender"], "tester@example.org")
        self.assertIn(b"\nFrom: tester@example.org\n", body)
        # Message-ID: the domain too, not the machine's name
        self.assertRegex(body, rb"\nMessage-ID: <[0-9]+\.[0-9]{6}\.[0-9]+\.[0-9a-f]{8}"
                               rb"@example\.org>\n")
        self.assertNotIn(b"@%s>" % socket.gethostname().encode(), body)

    def test_cron_without_an_alias_stays_local(self):
        r = self.sendmail(CRON_ARGS + ["-odq"], CRON_MSG)
        self.assertQueued(r)
        env, body = self.only_msg()
        host = socket.gethostname()
        self.assertEqual(env["rcpt"], ["root"])
        self.assertEqual(env["sender"], "root@" + host)
        # the bare From: is qualified like the envelope sender
        self.assertTrue(body.startswith(b"From: root@%s (Cron Daemon)\nTo: root\n" %
                                        host.encode()), body)


@unittest.skipIf(WHY_NOT, WHY_NOT)
class TestCronToPostfix(QueueCase):
    """A provider's checks, as Postfix makes them: the envelope sender must
    be one the login owns, the From: must be in its domain."""

    @classmethod
    def setUpClass(cls):
        cls.pf = postfix.Postfix(
            users={"me@example.org": "s3cret pass"}, mechanisms=("PLAIN",),
            sender_logins={"root@example.org": "me@example.org",
                           "me@example.org": "me@example.org"},
            header_checks="if /^From:/\n!/@example\\.org/ REJECT 5.7.1 From: must be "
                          "an example.org address\nendif\n")

    @classmethod
    def tearDownClass(cls):
        cls.pf.stop()

    def setUp(self):
        super().setUp()
        self.pf.clear()

    def configure(self, extra):
        pw = os.path.join(self.dir, "pw")
        with open(pw, "w") as f:
            f.write("#!/bin/sh\necho 's3cret pass'\n")
        os.chmod(pw, 0o700)
        self.write_config(
            extra + "batch-delay 1s\nbounce maildir %s\n" % os.path.join(self.dir, "bounces") +
            "identity pf\n  default\n  host localhost\n  port %d\n  tls starttls\n"
            "  tls-ca %s\n  user me@example.org\n  password-command \"%s\"\n"
            "  connect-timeout 5s\n  timeout 20s\n" % (self.pf.submission, certs.path("ca.crt"), pw))

    def wait_queue_empty(self, timeout=30):
        deadline = time.time() + timeout
        while self.msg_ids() and time.time() < deadline:
            time.sleep(0.1)

    def test_cron_mail_for_root_reaches_the_upstream(self):
        self.configure("domain example.org\nalias root me@example.org\n")
        # exactly cron's command line: the background deliver sends it
        r = self.sendmail(CRON_ARGS, CRON_MSG)
        self.assertQueued(r)
        got = self.pf.messages(1, timeout=30)
        self.assertEqual(len(got), 1, self.pf.log_text()[-3000:])
        m = got[0]
        self.assertEqual(m.sender, "root@example.org")
        self.assertEqual(m.rcpts, ["me@example.org"])
        self.assertTrue(m.data.startswith(b"From: root@example.org (Cron Daemon)\n"
                                          b"To: root\nSubject: Cron <root@laptop> "), m.data)
        self.assertIn(b"\nbackup: 3 files copied\n", m.data)
        self.wait_queue_empty()
        self.assertEqual(self.msg_ids(), [])

    def test_without_domain_the_upstream_refuses_the_host_name(self):
        # the control: the same job without `domain` goes out as
        # root@HOST, which the provider refuses
        self.configure("alias root me@example.org\n")
        r = self.sendmail(CRON_ARGS + ["-odq"], CRON_MSG)
        self.assertQueued(r)
        r = self.run_cmd("deliver", [], timeout=60)
        self.assertEqual(self.msg_ids(), [], r.stderr)     # failed: a notice
        bounces = os.path.join(self.dir, "bounces", "new")
        notices = os.listdir(bounces)
        self.assertEqual(len(notices), 1)
        with open(os.path.join(bounces, notices[0]), "rb") as f:
            notice = f.read()
        self.assertIn(b"root@%s" % socket.gethostname().encode(), notice)
        self.assertIn(b"Sender address rejected", notice)
        self.assertEqual(self.pf.messages(0), [])


if __name__ == "__main__":
    unittest.main()
