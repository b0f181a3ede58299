"""deliver against a real Postfix (postfix.py): submission with STARTTLS
and AUTH, implicit TLS, CHUNKING as Postfix offers it, and Postfix's own
replies for a wrong password and a message over message_size_limit.
One Postfix serves the whole class; each test reads only its own mail."""
import glob
import json
import os
import random
import re
import signal
import subprocess
import time
import unittest

import certs
import postfix
import sshd
from pt import QueueCase

WHY_NOT = postfix.available()

# a line of dots, a lone dot, a long line, 8-bit text and no final
# newline: what SMTP framing and Postfix's line storage could disturb
BODIES = [
    b"From: Alice <alice@example.org>\nTo: Bob <bob@example.com>\n"
    b"Subject: first\nMessage-ID: <pf-1@example.org>\n\n"
    b"line one\n.leading dot\n..two dots\n.\nlast line\n",
    b"From: Alice <alice@example.org>\nTo: Carol <carol@example.com>\n"
    b"Subject: second\nMessage-ID: <pf-2@example.org>\n"
    b"Content-Type: text/plain; charset=utf-8\nContent-Transfer-Encoding: 8bit\n\n"
    b"caf\xc3\xa9 \xe2\x82\xac\n" + b"x" * 1500 + b"\n\n\ttab\n",
    b"From: Alice <alice@example.org>\nTo: Dave <dave@example.net>\n"
    b"Subject: third\nMessage-ID: <pf-3@example.org>\n\nno final newline",
]

LIMIT = 20000        # message_size_limit: far above BODIES, far below BIG


class PostfixCase(QueueCase):
    @classmethod
    def setUpClass(cls):
        # at most 3 recipients a transaction (no test needs more at once)
        cls.pf = postfix.Postfix(users={"me@example.org": "s3cret pass"},
                                 mechanisms=("PLAIN",), message_size_limit=LIMIT,
                                 recipient_limit=3)

    @classmethod
    def tearDownClass(cls):
        cls.pf.stop()

    def setUp(self):
        super().setUp()
        self.pf.clear()
        self.password = "s3cret pass"

    def configure(self, tls="starttls"):
        pw = os.path.join(self.dir, "pw")
        with open(pw, "w") as f:
            f.write("#!/bin/sh\necho '%s'\n" % self.password)
        os.chmod(pw, 0o700)
        port = self.pf.submission if tls == "starttls" else self.pf.smtps
        self.write_config(
            "batch-delay 1s\nretry 1m 5m\nbounce maildir %s\n" % os.path.join(self.dir, "bounces") +
            "identity pf\n  default\n  host localhost\n  port %d\n  tls %s\n"
            "  tls-ca %s\n  user me@example.org\n  password-command \"%s\"\n"
            "  connect-timeout 5s\n  timeout 20s\n" % (port, tls, certs.path("ca.crt"), pw))

    def enqueue(self, rcpts, data, sender="alice@example.org", args=()):
        r = self.sendmail(["-odq", "-i", "-f", sender] + list(args) + rcpts, data)
        self.assertQueued(r)
        return self.msg_ids()[-1]

    def deliver(self):
        r = self.run_cmd("deliver", ["-v"], timeout=60)
        self.assertEqual(r.returncode, 0, r.stderr)
        return r

    def states(self, qid):
        mq = json.loads(self.run_cmd("mailq", ["--json"]).stdout)
        for m in mq["messages"]:
            if m["id"] == qid:
                return {r["address"]: (r["state"], r["reply"]) for r in m["recipients"]}
        return None

    def mine(self, rcpts, count, timeout=20):
        """The sink's messages for these recipients (other tests' late
        deliveries are not ours), waiting for count of them."""
        deadline = time.time() + timeout
        while True:
            got = [m for m in self.pf.messages() if set(m.rcpts) & set(rcpts)]
            if len(got) >= count or time.time() > deadline:
                return got
            time.sleep(0.05)

    def received(self, count):
        got = self.pf.messages(count)
        self.assertEqual(len(got), count, (got, self.pf.log_text()[-3000:]))
        return got

    def queued(self):
        """{Message-ID line: (envelope, bytes)} of what sendmail queued."""
        out = {}
        for qid in self.msg_ids():
            env, data = self.read_msg(qid)
            out[self.message_id(data)] = (env, data)
        return out

    @staticmethod
    def message_id(data):
        for line in data.split(b"\n"):
            if line.lower().startswith(b"message-id:"):
                return line
        return None

    def several_messages_arrive_byte_for_byte(self, tls, method="PLAIN"):
        self.configure(tls)
        for i, body in enumerate(BODIES):
            self.enqueue(["bob@example.com", "carol@example.com"] if i == 0 else
                         ["dave@example.net"], body)
        queued = self.queued()
        sessions = self.pf.log_text().count("sasl_username=me@example.org")
        r = self.deliver()
        self.assertEqual(self.msg_ids(), [], r.stderr)
        got = self.received(len(BODIES))
        for m in got:
            env, data = queued[self.message_id(m.data)]
            # Postfix stores lines: a last line without a newline gets one
            want = data if data.endswith(b"\n") else data + b"\n"
            self.assertEqual(m.data, want)
            self.assertEqual(m.sender, env["sender"])
            self.assertEqual(m.rcpts, env["rcpt"])
            self.assertIn(b"with ESMTPSA", m.received)      # TLS and AUTH
            self.assertIn(b"(using TLSv1.", m.received)
        log = self.pf.log_text()
        # authenticated with PLAIN once per message; the callers check
        # that it was one session and that the mail went as DATA: Postfix
        # offers CHUNKING, which postie keeps from libESMTP
        self.assertEqual(log.count("sasl_username=me@example.org") - sessions, len(BODIES), log)
        self.assertIn("sasl_method=%s" % method, log)
        return log


@unittest.skipIf(WHY_NOT, WHY_NOT)
class TestPostfix(PostfixCase):
    def test_starttls_auth_plain_several_messages_one_session(self):
        log = self.several_messages_arrive_byte_for_byte("starttls")
        self.assertRegex(log, r"submission/smtpd\[\d+\]: disconnect from .* ehlo=2 "
                              r"starttls=1 auth=1 mail=3 rcpt=4 data=3 quit=1 commands=\d+\n")

    def test_no_delayed_ack_is_waited_for_after_starttls(self):
        # over TLS 1.3 Postfix sends its session ticket after the handshake,
        # and its reply to our EHLO waited under Nagle for our ACK of the
        # ticket, which Linux delays 40 ms: 42-46 ms from EHLO to its reply
        # in most sessions, against under 2 ms with the ACKs sent at once
        self.configure("starttls")
        slow = 0
        for i in range(7):
            self.enqueue(["bob@example.com"], BODIES[0])
            if self.stderr_gap("deliver", ["-v"], b"< 220 2.0.0 Ready to start TLS",
                               b"< 250-") > 0.03:
                slow += 1
        self.assertLessEqual(slow, 1)
        self.received(7)        # all in the sink: none arrives in the next test

    def test_implicit_tls_several_messages_one_session(self):
        log = self.several_messages_arrive_byte_for_byte("tls")
        self.assertRegex(log, r"smtps/smtpd\[\d+\]: disconnect from .* ehlo=1 "
                              r"auth=1 mail=3 rcpt=4 data=3 quit=1 commands=\d+\n")

    def test_bcc_only_in_the_envelope(self):
        self.configure()
        body = (b"From: Alice <alice@example.org>\nTo: Bob <bob@example.com>\n"
                b"Bcc: Hidden <hidden@example.net>\nSubject: bcc\n"
                b"Message-ID: <pf-bcc@example.org>\n\nsecret copy\n")
        r = self.sendmail(["-odq", "-i", "-t", "-f", "alice@example.org"], body)
        self.assertQueued(r)
        self.deliver()
        m, = self.received(1)
        self.assertEqual(m.rcpts, ["bob@example.com", "hidden@example.net"])
        self.assertNotIn(b"hidden", m.data.lower())
        self.assertNotIn(b"\nbcc:", b"\n" + m.data.lower())
        self.assertTrue(m.data.endswith(b"\n\nsecret copy\n"))

    def test_wrong_password_is_a_deferral_with_the_server_reason(self):
        self.password = "not the password"
        self.configure()
        qid = self.enqueue(["bob@example.com"], BODIES[0])
        self.deliver()
        self.assertEqual(self.msg_ids(), [qid])
        state, reply = self.states(qid)["bob@example.com"]
        self.assertEqual(state, "deferred")
        self.assertEqual(reply, "authentication failed for user "
                                "'me@example.org' (PLAIN): 535 5.7.8 Error: authentication failed: "
                                "authentication failure")
        self.assertNotIn("not the password", json.dumps(self.states(qid)))
        self.assertEqual(self.pf.messages(), [])
        self.assertRegex(self.pf.log_text(), r"SASL PLAIN authentication failed")

    def test_past_its_recipient_limit_the_rest_go_at_once(self):
        # smtpd_recipient_limit 3: Postfix says 452 4.5.3 for the 4th on;
        # the rest go in more transactions in the same run
        rcpts = ["r%d@example.com" % i for i in range(7)]
        self.configure()
        qid = self.enqueue(rcpts, BODIES[0])
        r = self.deliver()
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(self.msg_ids(), [])
        got = self.received(3)
        self.assertEqual(sorted(a for m in got for a in m.rcpts), rcpts)
        log = open(os.path.join(self.dir, "postie.log")).read()
        self.assertIn("reply=452 4.5.3 Error: too many recipients", log)
        for a in rcpts:
            self.assertEqual(log.count("%s: to=<%s> via=pf status=sent" % (qid, a)), 1, log)

    def test_over_message_size_limit_fails_with_a_notice(self):
        self.configure()
        big = BODIES[0] + b"y" * 99 + b"\n"
        big += b"y" * 99 * (LIMIT // 100 + 10) + b"\n"
        qid = self.enqueue(["bob@example.com", "dave@example.com"], big)
        small = self.enqueue(["carol@example.com"], BODIES[2])
        self.deliver()
        self.assertEqual(self.msg_ids(), [])
        got = self.received(1)
        self.assertEqual(got[0].rcpts, ["carol@example.com"])   # the next one still went
        notices = glob.glob(os.path.join(self.dir, "bounces", "new", "*"))
        self.assertEqual(len(notices), 1)
        text = open(notices[0], "rb").read()
        # Postfix refuses the MAIL FROM (postie declares SIZE=; under
        # PIPELINING it came with the RCPT lines and DATA, which Postfix
        # answers 503); the notice gives its reply as sent for each
        # recipient, and its Status: 5.3.4
        self.assertIn(b"<bob@example.com>: 552 5.3.4 Message size exceeds fixed limit\n", text)
        self.assertIn(b"<dave@example.com>: 552 5.3.4 Message size exceeds fixed limit\n", text)
        self.assertIn(b"\nFinal-Recipient: rfc822; bob@example.com\nAction: failed\n"
                      b"Status: 5.3.4\n"
                      b"Diagnostic-Code: smtp; 552 5.3.4 Message size exceeds fixed limit\n", text)
        self.assertIn(b"X-Postie-Queue-ID: %s\n" % qid.encode(), text)
        self.assertNotIn(b"yyyy", text)            # headers only, not the big body
        log = open(os.path.join(self.dir, "postie.log")).read()
        self.assertIn("%s: to=<bob@example.com> via=pf status=failed" % qid, log)
        self.assertIn("%s: to=<dave@example.com> via=pf status=failed" % qid, log)
        self.assertIn("%s: to=<carol@example.com> via=pf status=sent" % small, log)


@unittest.skipIf(WHY_NOT, WHY_NOT)
class TestPostfixMechanisms(PostfixCase):
    """LOGIN and CRAM-MD5 (HMAC-MD5 by postie) against Cyrus SASL's sasldb,
    chosen with the auth key; the server sees one EHLO after TLS, AUTH
    once, then the mail."""
    @classmethod
    def setUpClass(cls):
        cls.pf = postfix.Postfix(users={"me@example.org": "s3cret pass"},
                                 mechanisms=("PLAIN", "LOGIN", "CRAM-MD5"))

    def test_login_and_cram_md5(self):
        for mech in ("LOGIN", "CRAM-MD5"):
            with self.subTest(mech=mech):
                self.pf.clear()
                self.configure("tls")
                with open(self.conf, "a") as f:
                    f.write("  auth %s\n" % mech)
                self.enqueue(["bob@example.com"], BODIES[0])
                start = len(self.pf.log_text())
                r = self.deliver()
                self.assertEqual(self.msg_ids(), [], r.stderr)
                self.received(1)
                log = self.pf.log_text()[start:]
                self.assertIn("sasl_method=%s, sasl_username=me@example.org" % mech, log)
                self.assertRegex(log, r"smtps/smtpd\[\d+\]: disconnect from .* ehlo=1 "
                                      r"auth=1 mail=1 rcpt=1 data=1 quit=1 commands=6\n")


@unittest.skipIf(WHY_NOT, WHY_NOT)
class TestPostfixFaults(PostfixCase):
    """Postfix answering as a busy real server does: greylisting, unknown
    users, a session held, then killed."""
    @classmethod
    def setUpClass(cls):
        cls.pf = postfix.Postfix(users={"me@example.org": "s3cret pass"},
                                 mechanisms=("PLAIN",), message_size_limit=LIMIT,
                                 recipient_access={
                                     "later@example.com": "450 4.7.1 greylisted",
                                     "bad@example.com": "550 5.1.1 no such user",
                                     "slow@example.com": "sleep 5"})

    def test_replies_keep_their_enhanced_codes(self):
        self.configure("starttls")
        qid = self.enqueue(["ok@example.com", "later@example.com", "bad@example.com"], BODIES[0])
        self.deliver()
        st = self.states(qid)
        self.assertEqual(st["later@example.com"], (
            "deferred", "450 4.7.1 <later@example.com>: Recipient address rejected: greylisted"))
        self.assertEqual(st["bad@example.com"], (
            "failed", "550 5.1.1 <bad@example.com>: Recipient address rejected: no such user"))
        log = open(os.path.join(self.dir, "postie.log")).read()
        self.assertRegex(log, r"to=<ok@example.com> via=pf status=sent reply=250 2\.0\.0 Ok: queued as ")

    def test_session_killed_after_the_first_message(self):
        # Postfix offers CHUNKING; its smtpd is killed while message 2's
        # RCPT is held (after message 1's 250 reached postie): no crash,
        # message 1 recorded once, the rest deferred, then sent by the
        # next run, nothing twice
        self.configure("starttls")
        self.enqueue(["bob@example.com"], BODIES[0])
        self.enqueue(["slow@example.com"], BODIES[1])
        self.enqueue(["dave@example.net"], BODIES[2])
        start = len(self.pf.log_text())
        p = subprocess.Popen([os.path.join(self.bin, "deliver")], env=self.env,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        killed = False
        deadline = time.time() + 20
        while time.time() < deadline and not killed:
            log = self.pf.log_text()[start:]
            # qmgr has message 1: it was committed and its 250 is out;
            # message 2's RCPT is held for 5 s
            m = re.search(r"(\w+): message-id=<pf-1@example.org>", log)
            if m and re.search(r"%s: from=<alice@example.org>.*queue active" % m.group(1), log):
                time.sleep(0.5)
                pid = re.findall(r"submission/smtpd\[(\d+)\]: \w+: client=", log)[-1]
                os.kill(int(pid), signal.SIGKILL)
                killed = True
            time.sleep(0.005)
        try:
            out, err = p.communicate(timeout=60)
        finally:
            p.kill()
        self.assertTrue(killed, self.pf.log_text()[start:])
        self.assertEqual(p.returncode, 0, err)          # deferrals, not a crash
        self.assertEqual(len(self.msg_ids()), 2, err)
        # messages 2 (its RCPT held) and 3 were never answered: deferred
        # with a reason that says so, no attempt counted (the next run
        # sends them without waiting out the retry schedule)
        for m in json.loads(self.run_cmd("mailq", ["--json"]).stdout)["messages"]:
            self.assertEqual(m["attempts"], 0, m)
            self.assertEqual(m["recipients"][0]["state"], "deferred")
            self.assertTrue(m["recipients"][0]["reply"].startswith(
                "not sent: the session ended before it ("), m)
        # the next run (Postfix restarts the service after its throttle
        # time): the held recipient is held again, within the timeout
        r = self.run_cmd("deliver", ["--now"], timeout=60)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(self.msg_ids(), [], r.stderr)
        got = self.mine(["bob@example.com", "slow@example.com", "dave@example.net"], 3)
        self.assertEqual(sorted(m.rcpts[0] for m in got),
                         ["bob@example.com", "dave@example.net", "slow@example.com"])
        time.sleep(0.5)     # nothing more arrives
        self.assertEqual(len(self.mine(["bob@example.com"], 1)), 1)

@unittest.skipUnless(sshd.available(), "OpenSSH sshd and ssh-keygen are needed (openssh-server)")
class TestPostfixThroughARelay(PostfixCase):
    """Through the SSH tunnel and a SOCKS proxy (ssh -D), both by the
    test's own sshd, to Postfix over STARTTLS. Postfix answers a message's
    end of data, then the next group, in two writes; the second waited for
    the relay's delayed ACK of the first (sshd's TCP connection to
    Postfix, which postie cannot hurry): 40 messages took 1.9-2.2 s, 48 ms
    each. Once the session sees that gap, each group waits for the reply
    to its end: 0.15-0.31 s."""

    def setUp(self):
        super().setUp()
        self.key = sshd.keygen(os.path.join(self.dir, "user_key"))
        self.sshd = sshd.Sshd(authorized=[self.key + ".pub"])
        self.addCleanup(self.sshd.stop)
        os.makedirs(os.path.join(self.dir, ".ssh"), 0o700, exist_ok=True)
        self.known = os.path.join(self.dir, ".ssh", "known_hosts")
        with open(self.known, "w") as f:
            f.write(self.sshd.known_hosts_line())

    def send_40(self, route):
        self.configure("starttls")
        with open(self.conf, "a") as f:
            f.write(route)
        rcpt = "relay%d@example.com" % random.randrange(1 << 30)
        for i in range(40):
            self.enqueue([rcpt], BODIES[0].replace(b"first", b"relayed %d" % i))
        t = time.monotonic()
        r = self.deliver()
        took = time.monotonic() - t
        self.assertEqual(self.msg_ids(), [], r.stderr)
        got = self.mine([rcpt], 40)
        self.assertEqual(sorted(int(re.search(rb"relayed (\d+)", m.data).group(1)) for m in got),
                         list(range(40)))
        self.assertTrue(b"through this relay each group now waits for the reply to the end"
                        in r.stderr, r.stderr[-1500:])
        self.assertLess(took, 1.2, r.stderr[-2000:])

    def test_the_ssh_tunnel(self):
        self.send_40("  ssh %s@127.0.0.1:%d\n  ssh-key %s\n" % (
            self.sshd.user, self.sshd.port, self.key))

    def test_a_socks_proxy(self):
        from test_reach import ssh_socks, stop
        p, port = ssh_socks(self.sshd, self.key, self.known)
        self.addCleanup(stop, p)
        self.send_40("  proxy socks5://127.0.0.1:%d\n" % port)


if __name__ == "__main__":
    unittest.main()
