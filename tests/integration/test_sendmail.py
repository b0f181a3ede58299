"""sendmail as mutt, cron, git send-email and scripts call it."""
import os
import re
import signal
import socket
import stat
import subprocess
import time
import unittest

from pt import QueueCase, POSTIE, default_stop_signals

MSG = (b"From: Alice <alice@example.org>\n"
       b"To: Bob <bob@example.com>\n"
       b"Subject: test\n"
       b"Date: Mon, 1 Jan 2024 00:00:00 +0000\n"
       b"Message-ID: <fixed@example.org>\n"
       b"\n"
       b"Hello.\n")


class TestInvocations(QueueCase):
    def test_mutt(self):
        # mutt: sendmail -oem -oi -B8BITMIME -f ADDR -N ... -- rcpts
        r = self.sendmail(["-oem", "-oi", "-B8BITMIME", "-f", "alice@example.org",
                           "-N", "failure,delay", "--", "bob@example.com",
                           "carol@example.net"], MSG + b".\nmore\n")
        self.assertQueued(r)
        self.assertEqual(r.stdout + r.stderr, b"")     # quiet on success
        env, body = self.only_msg()
        self.assertEqual(env["sender"], "alice@example.org")
        self.assertEqual(env["rcpt"], ["bob@example.com", "carol@example.net"])
        self.assertEqual(env["notify"], "failure,delay")
        # the body type is what the content is: -B8BITMIME on ASCII is 7bit
        self.assertEqual(env["body"].rstrip(), "7bit")
        self.assertEqual(body, MSG + b".\nmore\n")    # -oi: "." is data

    def test_mutt_bounce_is_sent_as_the_resender(self):
        # mutt's bounce (b) without envelope_from: sendmail -oem -oi --
        # rcpt, with Resent-* fields on top of someone else's message;
        # the envelope sender is the resender, not the original author
        msg = (b"Resent-From: Me <me@example.org>\nResent-To: bob@example.com\n"
               b"Resent-Date: Tue, 1 Dec 2026 01:00:00 +0000\n"
               b"Resent-Message-ID: <r1@example.org>\n"
               b"From: Alice <alice@other.example>\nTo: me@example.org\n"
               b"Subject: fwd\nDate: Mon, 30 Nov 2026 10:00:00 +0000\n"
               b"Message-ID: <a1@other.example>\n\nhello\n")
        r = self.sendmail(["-oem", "-oi", "--", "bob@example.com"], msg)
        self.assertQueued(r)
        env, body = self.only_msg()
        self.assertEqual(env["sender"], "me@example.org")
        self.assertEqual(env["rcpt"], ["bob@example.com"])
        self.assertEqual(body, msg)

    def test_cronie(self):
        # cronie: sendmail -FCronDaemon -i -B8BITMIME -oem user
        msg = (b"To: tester\nSubject: Cron <tester@host> ls\n"
               b"MIME-Version: 1.0\nContent-Type: text/plain; charset=UTF-8\n"
               b"\nfile\n")
        r = self.sendmail(["-FCronDaemon", "-i", "-B8BITMIME", "-oem", "tester"], msg)
        self.assertQueued(r)
        env, body = self.only_msg()
        self.assertEqual(env["rcpt"], ["tester"])
        host = socket.gethostname()
        self.assertEqual(env["sender"], "tester@" + host)
        self.assertIn(b"\nFrom: CronDaemon <tester@%s>\n" % host.encode(), body)
        self.assertTrue(body.startswith(msg[:-6]))

    def test_cron_mailto_list_is_one_argument(self):
        # Debian's cron passes MAILTO="a@x, b@y" as one argument, split on
        # nothing; each argument is an address list (as sendmail and
        # Postfix read it): commas, display names, a group naming nobody
        msg = b"To: a@example.org,b@example.net\nSubject: Cron <root@host> backup\n\nfailed\n"
        r = self.sendmail(["-FCronDaemon", "-i", "-B8BITMIME", "-oem",
                           "a@example.org,b@example.net", "Ops Team <ops@example.com>",
                           "undisclosed-recipients:;", "a@example.org"], msg)
        self.assertQueued(r)
        env, body = self.only_msg()
        self.assertEqual(env["rcpt"], ["a@example.org", "b@example.net", "ops@example.com"])
        self.assertEqual(body.count(b"failed"), 1)
        # what is no address list is refused whole, as before
        r = self.sendmail(["-i", "a@example.org>"], msg)
        self.assertEqual(r.returncode, 65, r.stderr)
        self.assertIn(b"recipient 'a@example.org>' has a blank or special character", r.stderr)

    def test_git_send_email(self):
        # git send-email: sendmail -i rcpts; a patch may hold a lone "."
        patch = (b"From: Alice <alice@example.org>\nTo: list@example.org\n"
                 b"Cc: bob@example.com\nSubject: [PATCH 1/2] fix\n"
                 b"Date: Mon, 1 Jan 2024 00:00:00 +0000\n"
                 b"Message-ID: <p1@example.org>\n\n---\n"
                 b"@@ -1,3 +1,3 @@\n .\n-.\n+..\n.\n")
        r = self.sendmail(["-i", "list@example.org", "bob@example.com"], patch)
        self.assertQueued(r)
        env, body = self.only_msg()
        self.assertEqual(body, patch)
        self.assertEqual(env["sender"], "alice@example.org")

    def test_fullname_with_space_is_one_name(self):
        # the msmtpq / esmtp-wrapper bug: -F "John Smith" split into a recipient
        r = self.sendmail(["-F", "John Smith", "-f", "js@example.org",
                           "bob@example.com"], b"Subject: x\n\nbody\n")
        self.assertQueued(r)
        env, body = self.only_msg()
        self.assertEqual(env["rcpt"], ["bob@example.com"])
        self.assertIn(b"\nFrom: John Smith <js@example.org>\n", body)

    def test_fullname_with_8bit_is_encoded(self):
        # -F "José Pérez" went into From: as raw UTF-8 in a message marked
        # 7bit, and so to a server without 8BITMIME; now RFC 2047 words
        r = self.sendmail(["-F", "José Pérez", "-f", "jp@example.org", "bob@example.com"],
                          b"Subject: x\n\nbody\n")
        self.assertQueued(r)
        env, body = self.only_msg()
        self.assertIn(b"\nFrom: =?UTF-8?B?Sm9zw6kgUMOpcmV6?= <jp@example.org>\n", body)
        self.assertEqual(env["body"].rstrip(), "7bit")
        self.assertFalse(any(c >= 0x80 for c in body), body)

    def test_extract_recipients(self):
        msg = (b"From: a@example.org\nTo: One <one@example.com>, two@example.com\n"
               b"Cc: \"Doe, Jane\" <jane@example.com>\n"
               b"Bcc: secret@example.com\nSubject: t\n\nbody\n")
        r = self.sendmail(["-t", "extra@example.com"], msg)
        self.assertQueued(r)
        env, body = self.only_msg()
        self.assertEqual(env["rcpt"], ["extra@example.com", "one@example.com",
                                       "two@example.com", "jane@example.com",
                                       "secret@example.com"])
        self.assertNotIn(b"secret", body)
        self.assertNotIn(b"Bcc", body)

    def test_bcc_removed_without_t(self):
        msg = b"From: a@example.org\nTo: b@example.com\nBcc: c@example.com\n\nx\n"
        r = self.sendmail(["b@example.com", "c@example.com"], msg)
        self.assertQueued(r)
        env, body = self.only_msg()
        self.assertNotIn(b"Bcc", body)
        self.assertEqual(env["rcpt"], ["b@example.com", "c@example.com"])

    def test_lone_dot_ends_input_without_i(self):
        r = self.sendmail(["bob@example.com"], MSG + b".\nnot part\n")
        self.assertQueued(r)
        _, body = self.only_msg()
        self.assertEqual(body, MSG)

    def test_body_type_follows_the_content(self):
        for args, data, want in ((["-B7BIT"], MSG + b"caf\xc3\xa9\n", "8bitmime"),
                                 ([], b"Subject: \xe9\n\nascii body\n", "8bitmime"),
                                 (["-B8BITMIME"], MSG, "7bit")):
            with self.subTest(args=args):
                for q in self.msg_ids():
                    os.unlink(os.path.join(self.queue, "msg", q))
                self.assertQueued(self.sendmail(["-odq"] + args + ["bob@example.com"], data))
                env, body = self.only_msg()
                self.assertEqual(env["body"].rstrip(), want)
                self.assertTrue(body.startswith(data.split(b"\n")[0]))

    def test_faithful_bytes(self):
        long_line = b"x" * 200000
        body = (b"bare LF\nCRLF line\r\n8-bit \xe9\xff\x80\n" + long_line +
                b"\n\x00NUL in the body is stored\nno final newline")
        msg = MSG + body
        r = self.sendmail(["-i", "bob@example.com"], msg)
        self.assertQueued(r)
        _, stored = self.only_msg()
        self.assertEqual(stored, msg)

    def test_added_fields(self):
        r = self.sendmail(["-f", "me@example.org", "bob@example.com"],
                          b"Subject: hi\n\nbody\n")
        self.assertQueued(r)
        _, body = self.only_msg()
        head = body.split(b"\n\n", 1)[0].decode()
        self.assertRegex(head, r"(?m)^Date: [A-Z][a-z]{2}, \d{1,2} [A-Z][a-z]{2} "
                               r"\d{4} \d\d:\d\d:\d\d [+-]\d{4}$")
        self.assertRegex(head, r"(?m)^Message-ID: <[0-9.]+[0-9a-f]{8}@[^>]+>$")
        self.assertRegex(head, r"(?m)^From: me@example.org$")
        self.assertTrue(head.startswith("Subject: hi\n"))


class TestRefusals(QueueCase):
    def check(self, args, data, code, pattern):
        r = self.sendmail(args, data)
        self.assertEqual(r.returncode, code, r.stderr)
        err = r.stderr.decode("utf-8", "replace")
        self.assertRegex(err, pattern)
        self.assertTrue(err.startswith("sendmail: "), err)
        self.assertNothingQueued()
        return err

    def test_unknown_flag(self):
        err = self.check(["-Z", "bob@example.com"], MSG, 64,
                         r"unknown flag '-Z'")
        self.assertIn("usage: sendmail", err)

    def test_unsupported_mode(self):
        self.check(["-bd"], MSG, 64, r"-bd is not supported")

    def test_no_recipients(self):
        self.check([], MSG, 65, r"no recipients: give them as arguments, or use -t")
        # -t given: what it found is said, not advice to use it
        self.check(["-t"], b"To: undisclosed-recipients:;\nSubject: x\n\nhi\n", 65,
                   r"no recipients: -t found no address in To:, Cc: or Bcc:")

    def test_nul_in_header(self):
        self.check(["bob@example.com"], b"Subject: a\x00b\n\nx\n", 65, r"NUL")

    def test_non_ascii_recipient(self):
        # punycode is for domains: a local part has no ASCII form
        err = self.check(["jörg@example.com"], MSG, 65, r"non-ASCII local part .*SMTPUTF8")
        self.assertNotIn("punycode", err)
        self.assertNotIn("xn--", err)
        self.check(["bob@bücher.example"], MSG, 65, r"non-ASCII domain .*xn-- form")

    def test_non_ascii_sender(self):
        self.check(["-f", "sé@example.org", "bob@example.com"], MSG, 65,
                   r"sender .* non-ASCII")

    def test_envid_cannot_inject_envelope_lines(self):
        self.check(["-V", "abc\nrcpt evil@attacker.example", "bob@example.com"],
                   MSG, 65, r"DSN option")

    def test_max_size(self):
        self.write_config("max-size 10k\n")
        self.check(["-i", "bob@example.com"], MSG + b"y" * 20000, 65,
                   r"larger than max-size")

    def test_config_error(self):
        self.write_config("identity x\n  host h\n  from *\n  prot 25\n")
        self.check(["bob@example.com"], MSG, 78,
                   r"^sendmail: .*postie.conf:6: word 1: unknown key; did "
                   r"you mean 'port'\? \(postie.conf\(5\) lists the keys\); "
                   r"nothing was queued$")

    def test_missing_config_file(self):
        self.check(["-C", os.path.join(self.dir, "nope"), "bob@example.com"],
                   MSG, 78, r"nope: cannot open the config file.*; nothing was queued$")

    def test_password_in_readable_config(self):
        self.write_config("identity x\n  host h\n  default\n  user u\n"
                          "  password sekrit\n")
        os.chmod(self.conf, 0o644)
        err = self.check(["bob@example.com"], MSG, 78, r"chmod 600")
        self.assertNotIn("sekrit", err)

    def test_queue_not_writable(self):
        blocker = os.path.join(self.dir, "file")
        open(blocker, "w").close()
        self.queue = os.path.join(blocker, "queue")
        self.write_config("")
        r = self.sendmail(["bob@example.com"], MSG)
        self.assertIn(r.returncode, (73, 74), r.stderr)
        self.assertIn(b"nothing was queued", r.stderr)


class TestQueueFiles(QueueCase):
    def test_modes(self):
        os.umask(0o022)
        self.assertQueued(self.sendmail(["bob@example.com"], MSG))
        for d in ("tmp", "msg", "state"):
            m = os.stat(os.path.join(self.queue, d)).st_mode
            self.assertEqual(stat.S_IMODE(m), 0o700, d)
        m = os.stat(os.path.join(self.queue, "msg", self.msg_ids()[0])).st_mode
        self.assertEqual(stat.S_IMODE(m), 0o600)

    def test_killed_while_reading_leaves_nothing(self):
        # a message piped in slowly, sendmail stopped half-way: its tmp/
        # file goes with it (a SIGKILL leaves it to deliver's cleaning)
        for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            p = subprocess.Popen([os.path.join(self.bin, "sendmail"), "-odq", "bob@example.com"],
                                 env=self.env, stdin=subprocess.PIPE, stderr=subprocess.PIPE,
                                 preexec_fn=default_stop_signals)
            p.stdin.write(b"Subject: slow\n\nline 1\n")
            p.stdin.flush()
            tmp = os.path.join(self.queue, "tmp")
            for _ in range(250):
                if os.path.isdir(tmp) and os.listdir(tmp):
                    break
                time.sleep(0.02)
            self.assertTrue(os.listdir(tmp), "no tmp/ file while writing")
            p.send_signal(sig)
            p.wait(timeout=10)
            p.stdin.close()
            p.stderr.close()
            self.assertEqual(p.returncode, -sig)
            self.assertEqual(os.listdir(tmp), [])
            self.assertEqual(self.msg_ids(), [])
        # and a message written whole is still queued as before
        self.assertQueued(self.sendmail(["bob@example.com"], MSG))

    def test_concurrent_spools_are_distinct(self):
        procs = [subprocess.Popen([os.path.join(self.bin, "sendmail"), "-i",
                                   "r%d@example.com" % i],
                                  stdin=subprocess.PIPE, env=self.env)
                 for i in range(40)]
        for i, p in enumerate(procs):
            p.communicate(MSG + b"n=%d\n" % i, timeout=60)
            self.assertEqual(p.returncode, 0)
        ids = self.msg_ids()
        self.assertEqual(len(ids), 40)
        seen = set()
        for qid in ids:
            env, body = self.read_msg(qid)
            n = int(body.rsplit(b"n=", 1)[1])
            self.assertEqual(env["rcpt"], ["r%d@example.com" % n])
            seen.add(n)
        self.assertEqual(seen, set(range(40)))

    def test_log_line(self):
        self.assertQueued(self.sendmail(["-f", "a@example.org", "bob@example.com"], MSG))
        with open(os.path.join(self.dir, "postie.log")) as f:
            log = f.read()
        qid = self.msg_ids()[0]
        self.assertRegex(log, r"sendmail\[\d+\]: queued %s from=<a@example.org> "
                              r"rcpts=1 size=%d" % (re.escape(qid), len(MSG)))

    @unittest.skipIf(os.environ.get("POSTIE_SANITIZED") == "1",
                     "sanitizer shadow memory makes RSS meaningless")
    def test_streaming_memory_is_flat(self):
        # 200 MB through a pipe: peak RSS must stay under 16 MB. VmHWM of
        # the running process is read (ru_maxrss would count the forked
        # Python parent's pages before exec).
        size = 200 * 1024 * 1024
        self.write_config("max-size 300M\n")
        p = subprocess.Popen([os.path.join(self.bin, "sendmail"), "-i",
                              "bob@example.com"], stdin=subprocess.PIPE,
                             env=self.env)
        chunk = (b"0123456789abcdef" * 4095 + b"0123456789abcde\n")
        p.stdin.write(MSG)
        sent = len(MSG)
        peak = 0
        while sent < size:
            p.stdin.write(chunk)
            sent += len(chunk)
            if sent % (16 * len(chunk)) == 0:
                peak = max(peak, vm_hwm_kib(p.pid))
        p.stdin.flush()
        peak = max(peak, vm_hwm_kib(p.pid))
        p.stdin.close()
        self.assertEqual(p.wait(timeout=120), 0)
        self.assertGreater(peak, 0)
        print("peak RSS %d KiB for %d MB" % (peak, sent >> 20), end=" ")
        self.assertLess(peak, 16 * 1024, "peak RSS %d KiB" % peak)
        qid = self.msg_ids()[0]
        path = os.path.join(self.queue, "msg", qid)
        with open(path, "rb") as f:
            head = f.read(4096)
        env_len = head.index(b"\nend\n") + 5
        self.assertEqual(os.path.getsize(path) - env_len, sent)


def vm_hwm_kib(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    return 0


class TestDispatch(QueueCase):
    def test_names_and_subcommands(self):
        self.assertQueued(self.sendmail(["bob@example.com"], MSG))
        a = self.run_cmd("mailq", [])
        b = subprocess.run([POSTIE, "mailq"], capture_output=True, env=self.env)
        c = self.sendmail(["-bp"], b"")
        self.assertEqual(a.returncode, 0)
        self.assertEqual(a.stdout, b.stdout)
        self.assertEqual(a.stdout, c.stdout)
        self.assertIn(b"1 message in the queue", a.stdout)

    def test_postie_sendmail(self):
        r = subprocess.run([POSTIE, "sendmail", "bob@example.com"], input=MSG,
                           capture_output=True, env=self.env)
        self.assertQueued(r)
        self.assertEqual(len(self.msg_ids()), 1)

    def test_unknown_command(self):
        r = subprocess.run([POSTIE, "frobnicate"], capture_output=True, env=self.env)
        self.assertEqual(r.returncode, 64)
        self.assertIn(b"unknown command 'frobnicate'", r.stderr)

    def test_make_install(self):
        root = os.path.dirname(os.path.dirname(os.path.abspath(POSTIE)))
        build = os.path.basename(os.path.dirname(os.path.abspath(POSTIE)))
        dest = os.path.join(self.dir, "dest")
        r = subprocess.run(["make", "-s", "-C", root, "install", "BUILD=" + build,
                            "PREFIX=/usr/local", "DESTDIR=" + dest],
                           capture_output=True, timeout=120)
        self.assertEqual(r.returncode, 0, r.stderr)
        bindir = os.path.join(dest, "usr/local/bin")
        self.assertTrue(os.access(os.path.join(bindir, "postie"), os.X_OK))
        for name in ("sendmail", "mailq", "deliver", "fetch", "newaliases"):
            self.assertEqual(os.readlink(os.path.join(bindir, name)), "postie")
        for page in ("man1/postie.1", "man5/postie.conf.5"):
            self.assertTrue(os.path.exists(os.path.join(dest, "usr/local/share/man", page)))
        # the installed links act as their names
        r = subprocess.run([os.path.join(bindir, "mailq")], capture_output=True, env=self.env)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertTrue(r.stdout.endswith(b"messages in the queue\n"))

    def test_version(self):
        r = subprocess.run([POSTIE, "--version"], capture_output=True)
        self.assertEqual(r.returncode, 0)
        self.assertRegex(r.stdout, rb"^postie \d")

    def test_help_of_each_command(self):
        # "deliver --help" shows the usage and exits 0 (not "unknown flag")
        for cmd in ("sendmail", "mailq", "deliver", "fetch", "queue", "newaliases"):
            r = subprocess.run([POSTIE, cmd, "--help"], capture_output=True, env=self.env)
            self.assertEqual(r.returncode, 0, (cmd, r.stderr))
            self.assertTrue(r.stdout.startswith(b"usage: postie "), (cmd, r.stdout))
            self.assertEqual(r.stderr, b"")
        self.assertNothingQueued()

    def test_newaliases_checks_and_queues_nothing(self):
        r = self.sendmail(["-bi"], b"")
        self.assertEqual(r.returncode, 0)
        self.assertEqual(r.stdout, b"no aliases file; 0 aliases from alias lines\n")
        self.assertNothingQueued()

    def test_config_search_order(self):
        # -C beats $POSTIE_CONFIG beats $XDG_CONFIG_HOME/postie/config
        other = os.path.join(self.dir, "other-queue")
        alt = os.path.join(self.dir, "alt.conf")
        with open(alt, "w") as f:
            f.write("queue %s\n" % other)
        r = self.sendmail(["-C", alt, "bob@example.com"], MSG)
        self.assertQueued(r)
        self.assertEqual(len(os.listdir(os.path.join(other, "msg"))), 1)
        self.assertEqual(self.msg_ids(), [])
        xdg = os.path.join(self.dir, "xdg")
        os.makedirs(os.path.join(xdg, "postie"))
        third = os.path.join(self.dir, "third-queue")
        with open(os.path.join(xdg, "postie", "config"), "w") as f:
            f.write("queue %s\n" % third)
        env = dict(self.env, XDG_CONFIG_HOME=xdg)
        env.pop("POSTIE_CONFIG")
        r = subprocess.run([os.path.join(self.bin, "sendmail"), "bob@example.com"],
                           input=MSG, capture_output=True, env=env)
        self.assertQueued(r)
        self.assertEqual(len(os.listdir(os.path.join(third, "msg"))), 1)

    def test_no_config_at_all_uses_defaults(self):
        env = dict(self.env, XDG_CONFIG_HOME=os.path.join(self.dir, "none"))
        env.pop("POSTIE_CONFIG")
        if os.path.exists("/etc/postie.conf"):
            self.skipTest("/etc/postie.conf exists on this machine")
        r = subprocess.run([os.path.join(self.bin, "sendmail"), "bob@example.com"],
                           input=MSG, capture_output=True, env=env)
        self.assertQueued(r)
        qdir = os.path.join(self.dir, ".local", "state", "postie", "queue", "msg")
        self.assertEqual(len(os.listdir(qdir)), 1)
