"""deliver against servers that misbehave: drops at every point of a
session with CHUNKING offered, replies dripped a byte at a time, endless
replies, a server that stops reading the data, a reply before the end of
the data, control bytes in replies. In the three TLS modes. Every run is
bounded by its own timeout: a hang is a failure."""
import os
import time

import certs
from test_deliver import DeliverCase, MSG

MODES = ("none", "starttls", "tls")
TIMEOUT = 2         # the identity's timeout in these tests, seconds
SLOW = 0.3          # seconds between dripped bytes: a reply takes > TIMEOUT
CHUNKING = ("8BITMIME", "PIPELINING", "SIZE 100000000", "CHUNKING")


def big_message(size):
    line = b"x" * 76 + b"\n"
    return MSG + line * (size // len(line))


class HostileCase(DeliverCase):
    def serve(self, mode, **kw):
        """A scripted server in TLS mode (none, starttls, tls) and an
        identity for it with timeout TIMEOUT."""
        self.tls = mode
        if mode == "none":
            self.identity_extra = ""
            srv = self.start(**kw)
            self.configure(timeout=TIMEOUT)
        else:
            self.identity_extra = "  tls-ca %s\n" % certs.path("ca.crt")
            srv = self.start(tls="implicit" if mode == "tls" else "starttls",
                             cert=certs.path("localhost.crt"),
                             key=certs.path("localhost.key"), **kw)
            self.configure(host="localhost", timeout=TIMEOUT)
        return srv

    def clear_queue(self):
        for q in self.msg_ids():
            os.unlink(os.path.join(self.queue, "msg", q))

    def timed_deliver(self, *args, limit=30):
        """deliver, which must end by itself within limit seconds."""
        t = time.time()
        r = self.deliver(*args, timeout=limit)
        self.took = time.time() - t
        self.assertNotIn(r.returncode, (-11, 139), "deliver crashed")
        return r

    def assertDeferred(self, qid, why):
        st = self.states(qid)
        self.assertIsNotNone(st, "the message must stay queued")
        for addr, (state, reply) in st.items():
            self.assertEqual(state, "deferred", (addr, reply))
            self.assertIn(why, reply or "")
        log = open(os.path.join(self.dir, "postie.log"), "rb").read()
        self.assertNotIn(("%s: to=" % qid).encode() + b"<bob@example.com> via=test status=sent", log)


class TestDrops(HostileCase):
    """libESMTP 1.1 crashed (SIGSEGV) when a server offering CHUNKING
    dropped the connection after a session's first message."""

    def test_drop_at_every_point_with_chunking_offered(self):
        def nth(n, then, default=None):
            seen = [0]

            def f(arg):
                seen[0] += 1
                return then if seen[0] == n else default
            return f

        for mode in MODES:
            # postie's own STARTTLS dialogue sends the first EHLO
            ehlo = 2 if mode == "starttls" else 1
            points = [
                ("after greeting", {"EHLO": nth(ehlo, "DROP")}, 0),
                ("during EHLO", {"EHLO": nth(ehlo, ("PARTIAL", "250-test.example\r\n250-PIPEL"))}, 0),
                ("at MAIL", {"MAIL": "DROP"}, 0),
                ("at RCPT", {"RCPT": "DROP"}, 0),
                ("at DATA", {"DATA": "DROP"}, 0),
                ("mid-data", {"DOT": "DROP-BEFORE-DOT"}, 0),
                ("after the first message", {"DOT": nth(1, ("THEN-DROP", "250 2.0.0 queued"))}, 1),
                ("between messages", {"MAIL": nth(2, "DROP")}, 1),
            ]
            for name, script, sent in points:
                with self.subTest(mode=mode, drop=name):
                    self.clear_queue()
                    srv = self.serve(mode, extensions=CHUNKING, script=script)
                    ids = [self.enqueue(["bob@example.com"], MSG.replace(b"deliver test", b"n%d" % i))
                           for i in range(3)]
                    r = self.timed_deliver()
                    self.assertEqual(r.returncode, 0, r.stderr)
                    self.assertFalse(any(c.startswith("BDAT") for c in srv.commands))
                    self.assertEqual(len(srv.messages), sent)
                    for qid in ids[sent:]:
                        st = self.states(qid)["bob@example.com"]
                        self.assertEqual(st[0], "deferred")
                        self.assertTrue(st[1], "a deferral says why")
                    self.assertEqual(self.msg_ids(), sorted(ids[sent:]))
                    # the server mends: the rest goes, nothing twice
                    srv.script.clear()
                    r = self.timed_deliver("--now")
                    self.assertEqual(r.returncode, 0, r.stderr)
                    self.assertEqual(self.msg_ids(), [])
                    subjects = sorted(m.data.split(b"Subject: ")[1][:2] for m in srv.messages)
                    self.assertEqual(subjects, [b"n0", b"n1", b"n2"])


class TestDeadlines(HostileCase):
    def test_dripped_greeting_and_ehlo(self):
        for mode in MODES:
            for stage, why in (("greeting", "timed out waiting for the greeting (2 s)"),
                               ("EHLO", "timed out waiting for the reply to EHLO (2 s)")):
                with self.subTest(mode=mode, stage=stage):
                    self.clear_queue()
                    self.serve(mode, drip={stage: SLOW})
                    qid = self.enqueue(["bob@example.com"])
                    r = self.timed_deliver()
                    self.assertEqual(r.returncode, 0, r.stderr)
                    self.assertLess(self.took, TIMEOUT + 5)
                    self.assertDeferred(qid, why)

    def test_a_late_reply_to_a_pipelined_rcpt(self):
        # a tarpit: the first RCPT answered after the timeout, the rest in
        # time; libESMTP, with two RCPTs pipelined, crashed (SIGSEGV)
        for mode in MODES:
            with self.subTest(mode=mode):
                self.clear_queue()
                late = []

                def rcpt(a):
                    if not late:
                        late.append(a)
                        time.sleep(TIMEOUT + 1.5)
                    return None
                self.serve(mode, script={"RCPT": rcpt})
                qid = self.enqueue(["bob@example.com", "carol@example.com"])
                r = self.timed_deliver()
                self.assertEqual(r.returncode, 0, r.stderr)
                self.assertDeferred(qid, "timed out waiting for")

    def test_endless_replies(self):
        cases = [(m, "EHLO", "250-x", "sent a reply over 100 lines (the reply to EHLO)")
                 for m in MODES]
        cases += [(m, "greeting", "220-x", "sent a reply over 100 lines (the greeting)")
                  for m in MODES]
        for mode, stage, line, why in cases:
            with self.subTest(mode=mode, stage=stage):
                self.clear_queue()
                self.serve(mode, script={stage: ("ENDLESS", line)})
                qid = self.enqueue(["bob@example.com"])
                r = self.timed_deliver("-v")
                self.assertEqual(r.returncode, 0, r.stderr)
                self.assertLess(self.took, TIMEOUT + 5)
                self.assertDeferred(qid, why)
                self.assertLess(len(r.stderr), 64 * 1024, "-v output is bounded")

    def test_long_reply_line(self):
        self.serve("none", script={"MAIL": "250 " + "y" * 3000})
        qid = self.enqueue(["bob@example.com"])
        r = self.timed_deliver()
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertDeferred(qid, "sent a reply line over 2048 bytes (the reply to MAIL)")

    def test_server_stops_reading_the_data(self):
        for mode in MODES:
            with self.subTest(mode=mode):
                self.clear_queue()
                srv = self.serve(mode, script={"BODY": ("STALL", 40)})
                qid = self.enqueue(["bob@example.com"], big_message(12 << 20))
                r = self.timed_deliver(limit=45)
                self.assertEqual(r.returncode, 0, r.stderr)
                self.assertLess(self.took, 3 * TIMEOUT + 8)
                st = self.states(qid)["bob@example.com"]
                self.assertEqual(st[0], "deferred")
                # the socket buffers may hold all of it: then the reply
                # to the end of the data is what never comes
                self.assertRegex(st[1], r"stopped reading the message data \(nothing taken for 2 s\)|"
                                        r"timed out waiting for the reply to the message data \(2 s\)")
                self.assertEqual(srv.messages, [])


class TestEarlyReply(HostileCase):
    def test_reply_before_the_end_of_the_data_is_not_delivery(self):
        for mode in MODES:
            with self.subTest(mode=mode):
                self.clear_queue()
                srv = self.serve(mode, script={"BODY": ("EARLY", 100, "250 2.0.0 queued")})
                qid = self.enqueue(["bob@example.com"], big_message(3 << 20))
                r = self.timed_deliver()
                self.assertEqual(r.returncode, 0, r.stderr)
                self.assertDeferred(qid, "answered before the end of the message data "
                                         "(protocol error): 250 2.0.0 queued")
                self.assertEqual(srv.messages, [])


class TestControlBytes(HostileCase):
    def test_control_bytes_never_reach_terminal_or_log(self):
        evil = "\x1b]0;owned\x07\x1b[2J\x00\x9b"
        for mode in MODES:
            with self.subTest(mode=mode):
                self.clear_queue()
                self.serve(mode, script={"greeting": "220 test.example " + evil + " ESMTP",
                                         "RCPT": "450 4.2.0 busy " + evil + " later"})
                qid = self.enqueue(["bob@example.com"])
                r = self.timed_deliver("-v")
                self.assertEqual(r.returncode, 0, r.stderr)
                st = self.states(qid)["bob@example.com"]
                self.assertEqual(st[0], "deferred")
                self.assertIn("busy", st[1])
                log = open(os.path.join(self.dir, "postie.log"), "rb").read()
                for out in (r.stderr, log, st[1].encode()):
                    for bad in (b"\x1b", b"\x00", b"\x07", b"\xc2\x9b", b"\x9b"):
                        self.assertNotIn(bad, out)
