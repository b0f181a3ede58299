"""deliver against real SMTP servers on loopback: a scripted server for
faults, TLS and AUTH; outcomes, retries, bounces, local delivery."""
import glob
import json
import os
import shutil
import socket
import signal
import subprocess
import threading
import time
import unittest

import certs
from pt import QueueCase, default_stop_signals
from smtpserver import Server

MSG = (b"From: Alice <alice@example.org>\n"
       b"To: Bob <bob@example.com>\n"
       b"Subject: deliver test\n"
       b"Date: Mon, 1 Jan 2024 00:00:00 +0000\n"
       b"Message-ID: <deliver-test@example.org>\n\n"
       b"line one\n.leading dot\n\nlast line\n")


class DeliverCase(QueueCase):
    tls = "none"
    identity_extra = ""

    def start(self, **kw):
        self.server = Server(**kw)
        self.addCleanup(self.server.stop)
        self.configure()
        return self.server

    def configure(self, extra="", host="127.0.0.1", port=None, timeout=15):
        self.write_config(
            "batch-delay 1s\nretry 1m 5m\nbounce maildir %s\n" % os.path.join(self.dir, "bounces") +
            extra +
            "identity test\n  default\n  host %s\n  port %d\n  tls %s\n"
            "  connect-timeout 3s\n  timeout %ds\n" % (host, port or self.server.port, self.tls,
                                                      timeout) +
            self.identity_extra)

    def enqueue(self, rcpts, data=MSG, sender="alice@example.org"):
        r = self.sendmail(["-odq", "-i", "-f", sender] + rcpts, data)
        self.assertQueued(r)
        return [i for i in self.msg_ids()][-1]

    def enqueue_numbered(self, n, rcpt="bob@example.com"):
        """n messages to rcpt, subjects m0, m1, ..."""
        for i in range(n):
            self.enqueue([rcpt], MSG.replace(b"deliver test", b"m%d" % i))

    def deliver(self, *args, timeout=60):
        return self.run_cmd("deliver", list(args), timeout=timeout)

    def deliver_timed(self, *args):
        """deliver's result and the seconds it took."""
        t = time.monotonic()
        r = self.deliver(*args)
        return r, time.monotonic() - t

    def queue_many_and_deliver_in_batches(self, n=300, nofile=128):
        """n messages, then deliver with only nofile descriptors: more
        messages than one batch holds."""
        import resource
        for i in range(n):
            self.assertQueued(self.sendmail(["-odq", "-i", "-f", "a@example.org", "r@example.com"],
                                            b"Subject: %d\n\n%d\n" % (i, i)))
        def limit():
            resource.setrlimit(resource.RLIMIT_NOFILE, (nofile, nofile))
        return subprocess.run([os.path.join(self.bin, "deliver")], env=self.env,
                              capture_output=True, preexec_fn=limit, timeout=120)

    def mailq(self):
        return json.loads(self.run_cmd("mailq", ["--json"]).stdout)

    def states(self, qid):
        for m in self.mailq()["messages"]:
            if m["id"] == qid:
                return {r["address"]: (r["state"], r["reply"]) for r in m["recipients"]}
        return None

    def bounces(self):
        return sorted(glob.glob(os.path.join(self.dir, "bounces", "new", "*")))


class TestPlain(DeliverCase):
    def test_nothing_ever_queued_is_no_error(self):
        # no queue directory, or one made by hand (or emptied) without
        # its msg/: nothing to do, exit 0, for deliver and sendmail -q
        # alike (cron runs them every few minutes)
        self.start()
        self.assertFalse(os.path.exists(self.queue))
        for made in (False, True):
            if made:
                os.mkdir(self.queue, 0o700)         # made by hand
            for r in (self.deliver(), self.sendmail(["-q"], b"")):
                self.assertEqual((r.returncode, r.stderr), (0, b""), made)
        self.assertEqual(os.listdir(self.queue), [])
        self.assertEqual(self.server.connections, 0)

    def test_many_messages_one_connection(self):
        srv = self.start()
        a = self.enqueue(["bob@example.com", "carol@example.com"])
        b = self.enqueue(["dave@example.net"], MSG.replace(b"deliver test", b"second") + b"no final newline")
        r = self.deliver()
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(self.msg_ids(), [])
        self.assertEqual(srv.connections, 1)
        self.assertEqual(len(srv.messages), 2)
        m = srv.messages[0]
        self.assertEqual(m.mail_from, "alice@example.org")
        self.assertEqual(m.rcpts, ["bob@example.com", "carol@example.com"])
        # CRLF on the wire, the leading dot survived stuffing
        self.assertEqual(m.data, MSG.replace(b"\n", b"\r\n"))
        self.assertTrue(srv.messages[1].data.endswith(b"\r\nno final newline\r\n"))
        log = open(os.path.join(self.dir, "postie.log")).read()
        self.assertIn("%s: to=<bob@example.com> via=test status=sent reply=250 2.0.0" % a, log)
        self.assertIn("%s: to=<dave@example.net> via=test status=sent" % b, log)

    def test_progress_on_a_terminal(self):
        srv = self.start()
        for _ in range(25):
            self.enqueue(["bob@example.com"])
        rc, screen = self.run_cmd_tty("deliver", [])
        self.assertEqual(rc, 0, screen)
        self.assertIn("\rdeliver: 1/25 messages", screen)
        self.assertIn("\rdeliver: 25/25 messages\r\n", screen)
        self.assertEqual(len(srv.messages), 25)

    def test_size_is_what_goes_after_the_354(self):
        # RFC 1870: the octets sent, CR LF pairs counted. Short LF lines
        # grow by half on the wire and base64 lines by under 2%: a guess
        # was under the one and over the other, and a server whose limit
        # lies between the real size and the guess refused the message.
        short = b"Subject: short lines\n\n" + b"x\n" * 1000
        b64 = b"Subject: base64\n\n" + (b"A" * 76 + b"\n") * 1000
        for body in (short, b64, b"Subject: no newline at the end\n\nlast line"):
            srv = self.start(extensions=("PIPELINING", "8BITMIME", "SIZE 100000000"))
            self.enqueue(["bob@example.com"], body)
            r = self.deliver()
            self.assertEqual(r.returncode, 0, r.stderr)
            self.assertEqual(len(srv.messages), 1, r.stderr)
            wire = srv.messages[0].data       # after the 354, unstuffed, no final dot
            text = body.split(b"\n\n", 1)[1].replace(b"\n", b"\r\n")
            self.assertTrue(wire.endswith(text if body.endswith(b"\n") else text + b"\r\n"),
                            wire[-80:])
            mail = [c for c in srv.commands if c.startswith("MAIL FROM")][0]
            self.assertIn(" SIZE=%d" % len(wire), mail)

    def test_a_reply_out_of_step_is_not_called_a_refusal(self):
        # a proxy that sent a second greeting after CONNECT, late: what
        # comes as the EHLO reply is a 220, no refusal of EHLO
        srv = self.start(script={"EHLO": "220 again"})
        qid = self.enqueue(["bob@example.com"])
        r = self.deliver()
        self.assertEqual(r.returncode, 0, r.stderr)
        why = self.states(qid)["bob@example.com"][1]
        self.assertIn("127.0.0.1 answered EHLO out of step (a server or proxy that sent more "
                      "than it was asked for?): 220 again", why)
        self.assertEqual(srv.messages, [])
        # a real refusal is still one
        srv = self.start(script={"EHLO": "554 5.7.1 go away"})
        r = self.deliver("--now")
        self.assertIn("127.0.0.1 refused EHLO: 554 5.7.1 go away",
                      self.states(qid)["bob@example.com"][1])

    def test_messages_a_broken_session_never_reached_are_not_tried(self):
        # the server drops the connection at the third MAIL: the two
        # before are sent; the third and the rest were never answered:
        # deferred with a reason that says so (not one borrowed from the
        # session), no attempt counted, and the next run sends them at
        # once (before: an attempt each, and the retry schedule)
        count = {"n": 0}

        def mail(arg):
            count["n"] += 1
            return "DROP" if count["n"] == 3 else None
        srv = self.start(script={"MAIL": mail})
        self.enqueue_numbered(5)
        ids = self.msg_ids()
        r = self.deliver()
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(len(srv.messages), 2)
        left = self.msg_ids()
        self.assertEqual(len(left), 3)
        for m in self.mailq()["messages"]:
            self.assertEqual(m["attempts"], 0, m)
            self.assertEqual(m["recipients"][0]["state"], "deferred")
            self.assertEqual(m["recipients"][0]["reply"], "not sent: the session ended before it "
                             "(127.0.0.1 closed the connection while waiting for the reply to "
                             "MAIL)")
        r = self.deliver()
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(len(srv.messages), 5)
        self.assertEqual(self.msg_ids(), [])

    def test_a_message_the_server_always_drops_does_not_hold_the_others(self):
        # the server drops the session at one message's MAIL every time:
        # it takes the attempts; the others, never reached, are not
        # charged, and go ahead of it (never tried before retries)
        def mail(sender):
            return "DROP" if sender.startswith("poison@") else None
        srv = self.start(script={"MAIL": mail})
        self.enqueue(["bob@example.com"], MSG.replace(b"deliver test", b"y1"))
        poison = self.enqueue(["bob@example.com"], sender="poison@example.org")
        for i in (3, 4):
            self.enqueue(["bob@example.com"], MSG.replace(b"deliver test", b"y%d" % i))
        self.assertEqual(self.deliver().returncode, 0)
        self.assertEqual(len(srv.messages), 1)
        self.assertEqual(self.deliver("--now").returncode, 0)     # the poison is first now
        attempts = {m["id"]: m["attempts"] for m in self.mailq()["messages"]}
        self.assertEqual(attempts.pop(poison), 1)
        self.assertEqual(set(attempts.values()), {0})
        r = self.deliver("--now")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(sorted(m.data.split(b"Subject: ")[1][:2] for m in srv.messages),
                         [b"y1", b"y3", b"y4"])
        self.assertEqual(self.msg_ids(), [poison])

    def test_a_refused_mail_among_answered_ones_is_recorded(self):
        # the server refuses the first message's MAIL and takes the
        # second: the refusal is the first message's outcome (failed,
        # with its reply), not "not sent"
        def mail(sender):
            return "553 5.7.1 sender not allowed" if sender.startswith("bad@") else None
        # with PIPELINING (the pump answers MAIL itself) and without
        for ext in (("8BITMIME", "PIPELINING", "SIZE 100000000"), ("8BITMIME", "SIZE 100000000")):
            self.start(script={"MAIL": mail}, extensions=ext)
            bad = self.enqueue(["bob@example.com"], sender="bad@example.org")
            self.enqueue(["carol@example.com"], MSG.replace(b"deliver test", b"second"))
            r = self.deliver()
            self.assertEqual(r.returncode, 0, r.stderr)
            self.assertEqual([m.rcpts for m in self.server.messages], [["carol@example.com"]])
            self.assertEqual(self.msg_ids(), [])
            log = open(os.path.join(self.dir, "postie.log")).read()
            self.assertIn("%s: to=<bob@example.com> via=test status=failed reply=553 5.7.1 "
                          "sender not allowed" % bad, log)

    def test_too_many_recipients_go_in_more_transactions_now(self):
        # a server that takes 3 recipients a transaction (Gmail: 100) and
        # says 452 4.5.3 for the rest: they go in another transaction in
        # the same run (RFC 5321 4.5.3.1.10), not a retry minutes later
        count = {"n": 0}

        def mail(arg):
            count["n"] = 0

        def rcpt(arg):
            count["n"] += 1
            return "452 4.5.3 Too many recipients" if count["n"] > 3 else None
        srv = self.start(script={"MAIL": mail, "RCPT": rcpt})
        rcpts = ["r%d@example.com" % i for i in range(8)]
        qid = self.enqueue(rcpts)
        r = self.deliver()
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual([m.rcpts for m in srv.messages],
                         [rcpts[0:3], rcpts[3:6], rcpts[6:8]])
        self.assertEqual(self.msg_ids(), [])
        self.assertEqual(len({m.data for m in srv.messages}), 1)
        # each recipient once, in the log as sent
        log = open(os.path.join(self.dir, "postie.log")).read()
        for a in rcpts:
            self.assertEqual(log.count("to=<%s> via=test status=sent" % a), 1, log)
        # a 452 for every recipient (no progress) is a plain deferral
        count["n"] = 99

        def rcpt_none(arg):
            return "452 4.5.3 Too many recipients"
        srv = self.start(script={"RCPT": rcpt_none})
        qid = self.enqueue(["a@example.com", "b@example.com"])
        r = self.deliver()
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(srv.connections, 1)
        self.assertEqual(self.states(qid)["a@example.com"][0], "deferred")

    def test_server_without_8bitmime(self):
        srv = self.start(extensions=("PIPELINING", "SIZE 100000000"))
        eight = self.enqueue(["bob@example.com"], MSG + b"caf\xc3\xa9\n")
        seven = self.enqueue(["carol@example.com"], MSG)
        r = self.deliver()
        self.assertEqual(r.returncode, 0, r.stderr)
        # the 7-bit message is not held hostage by the 8-bit one
        self.assertEqual([m.rcpts for m in srv.messages], [["carol@example.com"]])
        self.assertEqual(self.msg_ids(), [eight])
        self.assertIn("does not offer 8BITMIME", self.states(eight)["bob@example.com"][1])
        # decided per message from the EHLO reply: one session, not two
        self.assertEqual(srv.connections, 1)
        # only 8-bit mail for such a server: the session ends with QUIT
        r = self.deliver("--now")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(srv.connections, 2)
        self.assertEqual(srv.commands[-1], "QUIT")
        self.assertEqual(self.msg_ids(), [eight])

    def test_refused_transaction_then_the_next_one_same_session(self):
        # libESMTP's RSET and QUIT go on as it sends them: a refused
        # recipient, then the next message, in one session with one EHLO
        srv = self.start(script={"RCPT": lambda a: "550 5.1.1 no such user" if a == "bob@example.com"
                                 else None})
        self.enqueue(["bob@example.com"])
        self.enqueue(["carol@example.com"])
        r = self.deliver("-v")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual([m.rcpts for m in srv.messages], [["carol@example.com"]])
        self.assertEqual(self.msg_ids(), [])        # a 5xx: failed, its notice sent
        self.assertEqual(len(self.bounces()), 1)
        verbs = [c.split(" ", 1)[0] for c in srv.commands]
        self.assertEqual(srv.connections, 1)
        self.assertEqual(verbs.count("EHLO"), 1, verbs)
        self.assertEqual(verbs[0], "EHLO")
        self.assertEqual(verbs[-1], "QUIT")
        # PIPELINING: the DATA goes with the refused RCPT (554), then RSET
        self.assertEqual(verbs, ["EHLO", "MAIL", "RCPT", "DATA", "RSET", "MAIL", "RCPT", "DATA",
                                 "QUIT"])

    def test_chunking_offered_is_kept_from_libesmtp(self):
        # libESMTP's pipelined BDAT crashes on a dropped connection: the
        # EHLO reply it sees never offers CHUNKING, so it sends DATA
        srv = self.start(extensions=("8BITMIME", "PIPELINING", "CHUNKING"))
        body = MSG + b"..two dots\nno final newline"
        self.enqueue(["bob@example.com"], body)
        r = self.deliver("-v")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("DATA", srv.commands)
        self.assertFalse(any(c.startswith("BDAT") for c in srv.commands), srv.commands)
        # -v shows the server's EHLO reply (postie read it); the one
        # libESMTP saw, also shown, has no CHUNKING
        self.assertEqual(r.stderr.count(b"CHUNKING"), 1, r.stderr)
        # CRLF everywhere, the dots survived stuffing, the last line ended
        self.assertEqual(srv.messages[0].data, body.replace(b"\n", b"\r\n") + b"\r\n")

    def test_verbose_shows_every_message_with_chunking_offered(self):
        # -v used to stop after the first MAIL when the server offered
        # CHUNKING: every command of every message is shown
        srv = self.start(extensions=("8BITMIME", "PIPELINING", "CHUNKING", "SIZE 100000000"))
        for i in range(3):
            self.enqueue(["r%d@example.com" % i], MSG.replace(b"deliver test", b"m%d" % i))
        r = self.deliver("-v")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(len(srv.messages), 3)
        err = r.stderr.decode()
        for i in range(3):
            self.assertIn("deliver: > RCPT TO:<r%d@example.com>" % i, err)
        self.assertEqual(err.count("deliver: > MAIL FROM:<alice@example.org>"), 3, err)
        self.assertEqual(err.count("deliver: > DATA"), 3, err)
        self.assertEqual(err.count("deliver: < 250 2.0.0 queued as"), 3, err)
        self.assertIn("deliver: > QUIT", err)

    def test_per_recipient_mix_retry_and_bounce(self):
        def rcpt(addr):
            return {"bad@example.com": "550 5.1.1 no such user",
                    "later@example.com": "451 4.7.1 greylisted"}.get(addr)
        srv = self.start(script={"RCPT": rcpt})
        qid = self.enqueue(["ok@example.com", "bad@example.com", "later@example.com"])
        r = self.deliver()
        self.assertEqual(r.returncode, 0, r.stderr)
        st = self.states(qid)
        self.assertEqual(st["ok@example.com"][0], "sent")
        self.assertEqual(st["bad@example.com"], ("failed", "550 5.1.1 no such user"))
        self.assertEqual(st["later@example.com"], ("deferred", "451 4.7.1 greylisted"))
        self.assertEqual(srv.messages[0].rcpts, ["ok@example.com"])
        m = self.mailq()["messages"][0]
        self.assertEqual(m["attempts"], 1)
        self.assertIsNotNone(m["next_try"])
        self.assertEqual(self.bounces(), [])     # not final yet
        # not due: a plain run leaves it alone
        self.deliver()
        self.assertEqual(self.mailq()["messages"][0]["attempts"], 1)
        # the greylisting passes; --now ignores the retry time
        srv.script.pop("RCPT")
        r = self.deliver("--now")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(self.msg_ids(), [])
        self.assertEqual([m.rcpts for m in srv.messages], [["ok@example.com"], ["later@example.com"]])
        notices = self.bounces()
        self.assertEqual(len(notices), 1)
        text = open(notices[0], "rb").read()
        self.assertIn(b"Content-Type: multipart/report; report-type=delivery-status", text)
        self.assertIn(b"Final-Recipient: rfc822; bad@example.com", text)
        self.assertIn(b"Status: 5.1.1", text)
        self.assertIn(b"550 5.1.1 no such user", text)
        self.assertIn(b"Subject: deliver test", text)          # original headers
        self.assertNotIn(b"later@example.com", text.split(b"text/rfc822-headers")[0])

    def test_stale_tmp_files_are_removed_by_a_run(self):
        self.start()
        self.enqueue(["bob@example.com"])
        old = os.path.join(self.queue, "tmp", "1000.000000.1")
        fresh = os.path.join(self.queue, "tmp", "2000.000000.2")
        for p in (old, fresh):
            open(p, "w").close()
        t = time.time() - 37 * 3600
        os.utime(old, (t, t))
        # and an orphan journal whose message is gone
        orphan = os.path.join(self.queue, "state", "1000.000000.3")
        open(orphan, "w").close()
        self.assertEqual(self.deliver().returncode, 0)
        self.assertFalse(os.path.exists(old))
        self.assertTrue(os.path.exists(fresh))
        self.assertFalse(os.path.exists(orphan))

    def test_null_sender_is_never_forced(self):
        srv = self.start()
        self.identity_extra = "  force-sender me@corp.example.com\n"
        self.configure()
        self.enqueue(["x@example.com"], sender="")
        self.enqueue(["y@example.com"], sender="alice@example.org")
        self.assertEqual(self.deliver().returncode, 0)
        self.assertEqual([m.mail_from for m in srv.messages], ["", "me@corp.example.com"])

    def test_server_text_is_printable_ascii(self):
        self.start(script={"RCPT": "451 4.7.1 \u009b31mred \u00e9"})
        qid = self.enqueue(["bob@example.com"])
        self.deliver()
        journal = open(os.path.join(self.queue, "state", qid), "rb").read()
        self.assertIn(b"451 4.7.1 ??31mred ??", journal)
        self.assertFalse(any(b >= 0x80 for b in journal))

    def test_detached_deliver_keeps_no_caller_descriptors(self):
        self.start()
        rfd, wfd = os.pipe()
        p = subprocess.run([os.path.join(self.bin, "sendmail"), "-i", "-f", "a@example.org",
                            "bob@example.com"], input=MSG, env=self.env, pass_fds=(wfd,),
                           capture_output=True, timeout=30)
        os.close(wfd)
        self.assertEqual(p.returncode, 0, p.stderr)
        import select
        ready, _, _ = select.select([rfd], [], [], 0.5)     # batch-delay is 1s
        self.assertTrue(ready, "the pipe is still held open by the detached deliver")
        self.assertEqual(os.read(rfd, 10), b"")
        os.close(rfd)

    def test_no_bounce_for_a_bounce(self):
        self.start(script={"RCPT": "550 5.1.1 gone"})
        self.enqueue(["x@example.com"], sender="")
        self.assertEqual(self.deliver().returncode, 0)
        self.assertEqual(self.msg_ids(), [])
        self.assertEqual(self.bounces(), [])

    def test_notify_never_gets_no_notice(self):
        self.start(script={"RCPT": "550 5.1.1 gone"})
        r = self.sendmail(["-odq", "-i", "-f", "alice@example.org", "-N", "never",
                           "x@example.com"], MSG)
        self.assertQueued(r)
        self.assertEqual(self.deliver().returncode, 0)
        self.assertEqual(self.msg_ids(), [])
        self.assertEqual(self.bounces(), [])

    def test_ssh_identity_never_connects_directly(self):
        srv = self.start()
        self.identity_extra = "  ssh me@gateway.example.org\n"
        self.configure()
        qid = self.enqueue(["bob@example.com"])
        # the gateway cannot be reached: deferred, and never a direct path
        r = self.deliver()
        self.assertEqual(r.returncode, 75)
        self.assertEqual(srv.connections, 0)
        self.assertIn(b"gateway.example.org", r.stderr)
        self.assertEqual(self.states(qid)["bob@example.com"][0], "waiting")
        self.assertIn("gateway.example.org", self.mailq()["messages"][0]["unreachable"]["reason"])

    def test_stage_failures(self):
        cases = [
            ({"greeting": "421 4.3.2 busy"}, "deferred", "421"),
            ({"MAIL": "451 4.3.0 mail later"}, "deferred", "451 4.3.0 mail later"),
            ({"MAIL": "553 5.7.1 sender rejected"}, "failed", "553 5.7.1 sender rejected"),
            ({"DATA": "554 5.5.1 no data"}, "failed", "554"),
            ({"DOT": "452 4.3.1 disk full"}, "deferred", "452 4.3.1 disk full"),
            ({"DOT": "554 5.6.0 content rejected"}, "failed", "554 5.6.0 content rejected"),
            ({"DOT": "DROP"}, "deferred", ""),
            ({"DOT": "DROP-BEFORE-DOT"}, "deferred", ""),
            ({"MAIL": "DROP"}, "deferred", ""),
        ]
        for script, state, reply in cases:
            with self.subTest(script=script):
                for q in self.msg_ids():
                    os.unlink(os.path.join(self.queue, "msg", q))
                srv = self.start(script=script)
                qid = self.enqueue(["bob@example.com"])
                r = self.deliver()
                self.assertEqual(r.returncode, 0, r.stderr)
                self.assertEqual(srv.messages, [])
                if state == "failed":
                    self.assertEqual(self.msg_ids(), [])        # bounced, removed
                    self.assertIn(reply.encode(), open(self.bounces()[-1], "rb").read())
                else:
                    st = self.states(qid)["bob@example.com"]
                    self.assertEqual(st[0], state)
                    self.assertIn(reply, st[1] or "")
                    self.assertTrue(st[1], "a deferral always says why")

    def test_stalled_server_times_out(self):
        srv = self.start(script={"MAIL": ("STALL", 8)})
        self.configure(timeout=3)
        qid = self.enqueue(["bob@example.com"])
        t = time.time()
        r = self.deliver()
        self.assertLess(time.time() - t, 7.5)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(self.states(qid)["bob@example.com"],
                         ("deferred", "127.0.0.1 timed out waiting for the reply to MAIL (3 s)"))
        self.assertEqual(srv.messages, [])

    def test_offline_exits_75_quickly(self):
        self.server = Server()
        port = self.server.port
        self.server.stop()                   # nothing listens there now
        self.configure(port=port)
        qid = self.enqueue(["bob@example.com"])
        t = time.time()
        r = self.deliver()
        self.assertLess(time.time() - t, 3)
        self.assertEqual(r.returncode, 75, r.stderr)
        self.assertIn(b"cannot connect to 127.0.0.1", r.stderr)
        self.assertIn(b"mail stays queued", r.stderr)
        self.assertIn(b"Connection refused", r.stderr)
        # not reaching the upstream is no attempt at the message; mailq
        # says why it waits
        m = self.mailq()["messages"][0]
        self.assertEqual(m["attempts"], 0)
        self.assertEqual(self.states(qid)["bob@example.com"][0], "waiting")
        self.assertIn("Connection refused", m["unreachable"]["reason"])
        self.assertEqual(m["unreachable"]["since"], m["unreachable"]["last"])
        text = self.run_cmd("mailq", []).stdout.decode()
        self.assertRegex(text, r"\n  upstream  not reached since \d{4}-\d\d-\d\d \d\d:\d\d:\d\d [+-]\d{4}: "
                               r"cannot connect to 127.0.0.1 port %d: Connection refused\n" % port)

    def test_offline_runs_do_not_eat_the_retry_schedule(self):
        # cron's */15 line while the laptop is offline: five runs, then
        # the network is back and the next plain run sends what waits
        self.server = Server()
        port = self.server.port
        self.server.stop()
        self.configure(port=port)
        qid = self.enqueue(["bob@example.com"])
        for _ in range(5):
            self.assertEqual(self.deliver().returncode, 75)
        m = self.mailq()["messages"][0]
        self.assertEqual((m["attempts"], m["next_try"]), (0, None), m)
        self.assertIsNotNone(m["unreachable"])
        with open(os.path.join(self.queue, "state", qid), "a"):
            pass
        self.assertEqual(os.path.getsize(os.path.join(self.queue, "state", qid)), 0)
        srv = Server(port=port)
        self.addCleanup(srv.stop)
        r = self.deliver()
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(self.msg_ids(), [])
        self.assertEqual([m.rcpts for m in srv.messages], [["bob@example.com"]])
        # reached again: the note is gone
        self.assertFalse(os.path.exists(os.path.join(self.queue, "unreachable")))

    def test_server_deferrals_keep_their_backoff(self):
        # what a server itself deferred still waits for its retry time
        srv = self.start(script={"RCPT": "451 4.7.1 later"})
        qid = self.enqueue(["bob@example.com"])
        self.assertEqual(self.deliver().returncode, 0)
        self.assertEqual(self.mailq()["messages"][0]["attempts"], 1)
        srv.script.pop("RCPT")
        self.assertEqual(self.deliver().returncode, 0)
        self.assertEqual(self.msg_ids(), [qid])      # not due for 1m
        self.assertEqual(srv.messages, [])

    def test_one_failed_connect_per_identity_per_run(self):
        # more messages than one batch holds (128 descriptors): the dead
        # upstream is dialled once, and said once
        self.server = Server()
        port = self.server.port
        self.server.stop()
        self.configure(port=port)
        r = self.queue_many_and_deliver_in_batches()
        self.assertEqual(r.returncode, 75, r.stderr)
        self.assertEqual(r.stderr.decode().count("cannot connect"), 1, r.stderr)
        log = open(os.path.join(self.dir, "postie.log")).read()
        self.assertEqual(log.count("cannot connect to 127.0.0.1"), 1, log)
        self.assertEqual(len(self.msg_ids()), 300)

    @unittest.skipUnless(os.geteuid() == 0 and shutil.which("unshare"),
                         "needs root: a private /etc/resolv.conf (unshare -m) and port 53")
    def test_dns_that_never_answers_is_bounded_by_the_connect_timeout(self):
        # a name server that swallows every query, in a private mount
        # namespace's /etc/resolv.conf; the resolver alone would wait 15 s
        sink = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        sink.bind(("127.0.0.2", 53))
        self.addCleanup(sink.close)
        resolv = os.path.join(self.dir, "resolv.conf")
        with open(resolv, "w") as f:
            f.write("nameserver 127.0.0.2\noptions timeout:5 attempts:3\n")
        self.write_config("identity t\n  default\n  host smtp.blackhole.test\n  port 25\n"
                          "  tls none\n  connect-timeout 2s\n")
        qid = self.enqueue(["bob@example.com"])
        cmd = ["unshare", "-m", "--propagation", "private", "--", "/bin/sh", "-c",
               'mount --bind "$0" /etc/resolv.conf && exec "$@"', resolv,
               os.path.join(self.bin, "deliver")]
        t = time.time()
        r = subprocess.run(cmd, env=self.env, capture_output=True, timeout=60)
        took = time.time() - t
        self.assertEqual(r.returncode, 75, r.stderr)
        self.assertLess(took, 6, r.stderr)
        self.assertIn(b"no answer from DNS within 2 s", r.stderr)
        self.assertEqual(self.states(qid)["bob@example.com"][0], "waiting")

    def test_offline_names_every_unreachable_identity(self):
        dead = []
        for _ in range(2):
            s = Server()
            dead.append(s.port)
            s.stop()
        self.write_config("identity one\n  from *@one.example\n  host 127.0.0.1\n  port %d\n"
                          "  tls none\nidentity two\n  default\n  host 127.0.0.1\n  port %d\n"
                          "  tls none\n" % tuple(dead))
        self.enqueue(["bob@example.com"], sender="a@one.example")
        self.enqueue(["bob@example.com"], sender="b@two.example")
        r = self.deliver()
        self.assertEqual(r.returncode, 75, r.stderr)
        err = r.stderr.decode()
        self.assertEqual(err.count("\n"), 1, err)           # one line
        self.assertIn("identity one: cannot connect to 127.0.0.1 port %d" % dead[0], err)
        self.assertIn("identity two: cannot connect to 127.0.0.1 port %d" % dead[1], err)

    def test_local_recipient_to_maildir_and_mda(self):
        self.start()
        self.enqueue(["tester"])
        self.assertEqual(self.deliver().returncode, 0)
        got = glob.glob(os.path.join(self.dir, "Maildir", "new", "*"))
        self.assertEqual(len(got), 1)
        body = open(got[0], "rb").read()
        self.assertTrue(body.startswith(b"Return-Path: <alice@example.org>\nDelivered-To: tester\n"))
        self.assertTrue(body.endswith(MSG))
        # through an mda, with %T and %F, no shell
        out = os.path.join(self.dir, "mda-out")
        script = os.path.join(self.dir, "mda.sh")
        with open(script, "w") as f:
            f.write("#!/bin/sh\n{ echo \"to=$1 from=$2\"; cat; } > %s\n" % out)
        os.chmod(script, 0o755)
        self.configure('mda "%s %%T %%F"\n' % script)
        self.enqueue(["tester"])
        self.assertEqual(self.deliver().returncode, 0)
        data = open(out, "rb").read()
        self.assertTrue(data.startswith(b"to=tester from=alice@example.org\n"))
        self.assertTrue(data.endswith(MSG))
        self.assertEqual(self.msg_ids(), [])

    def local_mda_sleeping(self, in_a_child=False):
        """A local mda that sleeps 2 s, then stores the message (a file a
        delivery in self.dir/store), in its own process or in a child it
        starts; deliver started on one message."""
        store = os.path.join(self.dir, "store")
        os.mkdir(store)
        script = os.path.join(self.dir, "slow-mda.sh")
        work = "sleep 2\nf=$(mktemp -p %s m.XXXXXX) && cat > \"$f\"\n" % store
        with open(script, "w") as f:
            f.write("#!/bin/sh\n" + ("( %s) &\nwait\n" % work.replace("\n", "; ")
                                    if in_a_child else work) +
                    "echo 'the mda says why' >&2\nexit ${MDA_EXIT:-0}\n")
        os.chmod(script, 0o755)
        self.start()
        self.configure('mda "%s %%T"\n' % script)
        self.enqueue(["tester"])
        p = subprocess.Popen([os.path.join(self.bin, "deliver")], env=self.env,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                             preexec_fn=default_stop_signals)
        time.sleep(0.7)
        return p, store

    def test_a_local_mda_dies_with_deliver(self):
        # deliver killed outright while its mda works: the mda goes too,
        # and what it started (it was left running, stored the message,
        # and the next run handed it again: two deliveries); here the
        # sleep and the store are in a child of the mda's shell
        p, store = self.local_mda_sleeping(in_a_child=True)
        p.kill()
        p.communicate()
        time.sleep(2.5)
        self.assertEqual(os.listdir(store), [])
        r = self.deliver()
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(len(os.listdir(store)), 1)
        self.assertEqual(self.msg_ids(), [])

    def test_a_stop_waits_for_the_local_mda(self):
        p, store = self.local_mda_sleeping()
        p.send_signal(signal.SIGTERM)
        out, err = p.communicate(timeout=30)
        self.assertEqual(p.returncode, 75, err)
        self.assertEqual(len(os.listdir(store)), 1)
        self.assertEqual(self.msg_ids(), [])
        self.assertEqual(self.deliver().returncode, 0)
        self.assertEqual(len(os.listdir(store)), 1)

    def test_a_local_mda_failing_says_why(self):
        p, store = self.local_mda_sleeping()
        p.communicate(timeout=30)
        self.env["MDA_EXIT"] = "75"
        qid = self.enqueue(["tester"])
        self.assertEqual(self.deliver().returncode, 0)
        self.assertIn("the mda %s failed: exit 75: the mda says why"
                      % os.path.join(self.dir, "slow-mda.sh"), self.states(qid)["tester"][1])

    def test_a_notice_to_the_sender_goes_the_way_its_message_came(self):
        # bounce sender, no default identity: the notice (null sender,
        # which matches no 'from') goes through the identity its message
        # used, not 'no identity' until lifetime drops it
        def rcpt(addr):
            return "550 5.1.1 no such user" if addr.startswith("fail@") else None
        srv = self.start(script={"RCPT": rcpt})
        self.write_config(
            "retry 1m 5m\nbounce sender\n"
            "identity work\n  from *@corp.example\n  host 127.0.0.1\n  port %d\n"
            "  tls none\n"
            "identity home\n  from *@home.example\n  host 127.0.0.1\n  port 9\n"
            "  tls none\n" % srv.port)
        self.enqueue(["fail@example.net"], sender="me@corp.example")
        r = self.deliver()
        self.assertEqual(r.returncode, 0, r.stderr)
        (notice,) = self.mailq()["messages"]
        self.assertEqual((notice["sender"], notice["identity"]), ("", "work"))
        log = open(os.path.join(self.dir, "postie.log")).read()
        self.assertIn("failure notice queued to <me@corp.example>", log)
        self.assertNotIn("sent to", log)            # not sent yet
        r = self.deliver("--now")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(self.msg_ids(), [])
        self.assertEqual([(m.mail_from, m.rcpts) for m in srv.messages],
                         [("", ["me@corp.example"])])

    def test_a_notice_that_cannot_be_written_is_said_every_run(self):
        # bounce into a Maildir that cannot be made: the message stays
        # queued, and every run says so with the same status (the first
        # run exited 74 with no message id, later ones 0 and silent)
        self.start(script={"RCPT": "550 5.1.1 nope"})
        self.write_config(
            "retry 1m 5m\nbounce maildir /dev/null/nope\n"
            "identity test\n  default\n  host 127.0.0.1\n  port %d\n  tls none\n"
            % self.server.port)
        qid = self.enqueue(["bob@example.com"])
        codes = []
        for _ in range(3):
            r = self.deliver()
            self.assertNotEqual(r.returncode, 0, r.stderr)
            self.assertIn("deliver: %s: cannot write its failure notice (" % qid,
                          r.stderr.decode())
            self.assertIn("it stays queued until one can be written: see bounce in "
                          "postie.conf(5)", r.stderr.decode())
            codes.append(r.returncode)
            self.assertEqual(self.msg_ids(), [qid])
        self.assertEqual(len(set(codes)), 1, codes)

    def test_lifetime_expiry_bounces(self):
        self.start(script={"RCPT": "451 4.7.1 later"})
        qid = self.enqueue(["bob@example.com"])
        path = os.path.join(self.queue, "msg", qid)
        data = open(path, "rb").read()
        old = int(time.time()) - 6 * 86400
        data = data.replace(b"\nqueued ", b"\nqueued %d\nx-was " % old, 1)
        with open(path, "wb") as f:
            f.write(data)
        self.assertEqual(self.deliver().returncode, 0)
        self.assertEqual(self.msg_ids(), [])
        text = open(self.bounces()[0], "rb").read()
        self.assertIn(b"not delivered in 6 days (lifetime)", text)

    def test_lifetime_expiry_while_offline(self):
        # never reached: the notice says so (not "last reply: none") and
        # its Status: is 4.4.7, delivery time expired
        self.server = Server()
        port = self.server.port
        self.server.stop()
        self.configure(port=port, extra="lifetime 1h\n")
        qid = self.enqueue(["bob@example.com"])
        self.assertEqual(self.deliver().returncode, 75)
        path = os.path.join(self.queue, "msg", qid)
        data = open(path, "rb").read()
        old = int(time.time()) - 2 * 3600
        with open(path, "wb") as f:
            f.write(data.replace(b"\nqueued ", b"\nqueued %d\nx-was " % old, 1))
        self.deliver()
        self.assertEqual(self.msg_ids(), [])
        text = open(self.bounces()[0], "rb").read()
        self.assertIn(b"<bob@example.com>: not delivered in 2 hours (lifetime); the mail server "
                      b"was never reached: cannot connect to 127.0.0.1 port %d: Connection refused"
                      % port, text)
        self.assertIn(b"Action: failed\nStatus: 4.4.7\n", text)
        self.assertNotIn(b"last reply: none", text)

    def test_lifetime_under_a_day_says_hours(self):
        self.start(script={"RCPT": "451 4.7.1 later"})
        self.configure(extra="lifetime 2h\n")
        qid = self.enqueue(["bob@example.com"])
        self.assertEqual(self.deliver().returncode, 0)      # deferred: 451 4.7.1
        path = os.path.join(self.queue, "msg", qid)
        data = open(path, "rb").read()
        old = int(time.time()) - 3 * 3600 - 60
        data = data.replace(b"\nqueued ", b"\nqueued %d\nx-was " % old, 1)
        with open(path, "wb") as f:
            f.write(data)
        self.assertEqual(self.deliver("--now").returncode, 0)
        text = open(self.bounces()[0], "rb").read()
        self.assertIn(b"not delivered in 3 hours (lifetime); last reply: 451 4.7.1 later", text)
        self.assertNotIn(b"0 days", text)
        self.assertIn(b"Action: failed\nStatus: 4.7.1\n", text)     # the last reply's code

    def test_enhanced_status_codes_are_kept(self):
        # a server that offers ENHANCEDSTATUSCODES, as Postfix does:
        # libESMTP parses the code apart from the text
        ext = ("8BITMIME", "PIPELINING", "SIZE 100000000", "DSN", "ENHANCEDSTATUSCODES")
        srv = self.start(extensions=ext, script={
            "RCPT": lambda a: "450 4.7.1 <%s>: Recipient address rejected: greylisted" % a
            if a.startswith("later") else None,
            "DOT": "552 5.3.4 Message size exceeds fixed limit"})
        qid = self.enqueue(["later@example.com", "big@example.com"])
        self.assertEqual(self.deliver().returncode, 0)
        st = self.states(qid)
        self.assertEqual(st["later@example.com"],
                         ("deferred", "450 4.7.1 <later@example.com>: Recipient address rejected: greylisted"))
        self.assertEqual(st["big@example.com"], ("failed", "552 5.3.4 Message size exceeds fixed limit"))
        log = open(os.path.join(self.dir, "postie.log")).read()
        self.assertIn("reply=450 4.7.1 <later@example.com>", log)
        # the notice's Status: is the server's, not a made-up 5.0.0
        srv.script.pop("RCPT")
        srv.script["RCPT"] = "550 5.1.1 gone"
        self.assertEqual(self.deliver("--now").returncode, 0)
        text = open(self.bounces()[0], "rb").read()
        self.assertIn(b"Final-Recipient: rfc822; big@example.com\nAction: failed\nStatus: 5.3.4\n", text)
        self.assertIn(b"Diagnostic-Code: smtp; 552 5.3.4 Message size exceeds fixed limit", text)
        self.assertIn(b"Final-Recipient: rfc822; later@example.com\nAction: failed\nStatus: 5.1.1\n", text)

    def test_failing_bounce_mda_gives_way_to_the_maildir_past_lifetime(self):
        mda = os.path.join(self.dir, "mda")
        with open(mda, "w") as f:
            f.write("#!/bin/sh\ncat >/dev/null\nexit 75\n")
        os.chmod(mda, 0o700)
        self.server = self.start(script={"RCPT": "550 5.1.1 gone"})
        self.write_config("bounce mda\nmda %s\nlifetime 5d\n"
                          "identity test\n  default\n  host 127.0.0.1\n  port %d\n  tls none\n"
                          % (mda, self.server.port))
        qid = self.enqueue(["bob@example.com"])
        self.deliver()
        self.assertEqual(self.msg_ids(), [qid])          # the notice failed: kept
        self.assertNotIn("failure notice for", open(os.path.join(self.dir, "postie.log")).read())
        maildir = os.path.join(self.dir, "Maildir", "new")
        self.assertFalse(os.path.isdir(maildir) and os.listdir(maildir))
        path = os.path.join(self.queue, "msg", qid)
        data = open(path, "rb").read()
        old = int(time.time()) - 6 * 86400
        with open(path, "wb") as f:
            f.write(data.replace(b"\nqueued ", b"\nqueued %d\nx-was " % old, 1))
        r = self.deliver()
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(self.msg_ids(), [])
        notices = os.listdir(maildir)
        self.assertEqual(len(notices), 1)
        self.assertIn(b"550 5.1.1 gone", open(os.path.join(maildir, notices[0]), "rb").read())
        log = open(os.path.join(self.dir, "postie.log")).read()
        self.assertIn("the mda has failed past lifetime", log)
        self.assertIn("%s: failure notice for <alice@example.org> written to %s"
                      % (qid, os.path.join(self.dir, "Maildir")), log)

    def test_sendmail_burst_goes_out_in_one_connection(self):
        srv = self.start()
        for i in range(5):
            r = self.sendmail(["-i", "-f", "alice@example.org", "bob@example.com"],
                              MSG + b"patch %d\n" % i)
            self.assertQueued(r)
        for _ in range(100):
            if len(srv.messages) == 5 and not self.msg_ids():
                break
            time.sleep(0.1)
        self.assertEqual(len(srv.messages), 5)
        self.assertEqual(srv.connections, 1)
        self.assertEqual(self.msg_ids(), [])

    def test_odi_delivers_before_returning(self):
        srv = self.start()
        r = self.sendmail(["-odi", "-i", "-f", "alice@example.org", "bob@example.com"], MSG)
        self.assertQueued(r)
        self.assertEqual(len(srv.messages), 1)
        self.assertEqual(self.msg_ids(), [])

    def test_sendmail_q_runs_the_queue(self):
        srv = self.start(script={"RCPT": "451 later"})
        self.enqueue(["bob@example.com"])
        self.deliver()
        srv.script.clear()
        r = self.sendmail(["-q"], b"")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(len(srv.messages), 1)

    def test_more_messages_than_descriptors(self):
        # a run holds each message open and locked: with a hard limit of
        # 128 descriptors, 300 messages go out in batches, none skipped
        srv = self.start()
        r = self.queue_many_and_deliver_in_batches()
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(self.msg_ids(), [])
        self.assertEqual(len(srv.messages), 300)
        self.assertLessEqual(srv.connections, 5)      # batches of 128 - 64

    def test_mailq_q_runs_the_queue(self):
        srv = self.start()
        self.enqueue(["bob@example.com"])
        r = self.run_cmd("mailq", ["-q"])
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(len(srv.messages), 1)
        self.assertEqual(self.msg_ids(), [])

    def test_concurrent_runners_never_send_twice(self):
        srv = self.start()
        n = 500
        for i in range(n):
            self.assertQueued(self.sendmail(["-odq", "-i", "-f", "a@example.org", "r@example.com"],
                                            b"Subject: %d\n\n%d\n" % (i, i)))
        import subprocess
        procs = [subprocess.Popen([os.path.join(self.bin, "deliver")], env=self.env,
                                  stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
                 for _ in range(4)]
        for p in procs:
            p.wait(timeout=120)
            self.assertEqual(p.returncode, 0, p.stderr.read())
        self.assertEqual(self.msg_ids(), [])
        subjects = [m.data.split(b"\r\n", 1)[0] for m in srv.messages]
        self.assertEqual(len(subjects), n)
        self.assertEqual(len(set(subjects)), n)


class TestStopSignal(DeliverCase):
    """SIGTERM, SIGINT or SIGHUP while a message's end waits for the
    server's reply: the reply is awaited and recorded, the next message is
    not sent, and the run exits 75. Killed at once, the message would go
    again on the next run (the server had it). A second signal kills."""

    def stop_during_first_reply(self, sig, second=False):
        got_end = threading.Event()

        def slow_dot(data):
            got_end.set()
            time.sleep(1.0)            # the reply to the first end is late
            return None                # then the default 250
        srv = self.start(script={"DOT": slow_dot})
        self.enqueue_numbered(4)
        p = subprocess.Popen([os.path.join(self.bin, "deliver")], env=self.env,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                             preexec_fn=default_stop_signals)
        self.assertTrue(got_end.wait(20), "the server never got a message's end")
        p.send_signal(sig)
        if second:
            time.sleep(0.1)
            p.send_signal(sig)
        out, err = p.communicate(timeout=30)
        return srv, p.returncode, err.decode()

    def test_a_signal_waits_for_the_reply_under_way(self):
        for sig, name in ((signal.SIGTERM, "Terminated"), (signal.SIGINT, "Interrupt"),
                          (signal.SIGHUP, "Hangup")):
            srv, rc, err = self.stop_during_first_reply(sig)
            self.assertEqual(rc, 75, err)
            self.assertIn("stopped (%s): every message sent is recorded; the rest stays queued "
                          "for a later run" % name, err)
            self.assertEqual(len(srv.messages), 1, err)
            left = self.msg_ids()
            self.assertEqual(len(left), 3)
            # the rest as they were: no attempt, no deferral
            for qid in left:
                self.assertEqual({s for s, _ in self.states(qid).values()}, {"waiting"})
            # and nothing twice: the next run sends the other three
            self.start()
            r = self.deliver()
            self.assertEqual(r.returncode, 0, r.stderr)
            self.assertEqual(len(self.server.messages), 3)
            self.assertEqual(self.msg_ids(), [])

    def test_a_second_signal_ends_it_at_once(self):
        srv, rc, err = self.stop_during_first_reply(signal.SIGTERM, second=True)
        self.assertEqual(rc, -signal.SIGTERM, err)


class TestPipelining(DeliverCase):
    """Under PIPELINING a message costs two round trips: MAIL goes with
    its RCPT lines and DATA in one write (the MAIL reply is held back by
    the server here, and what had arrived by then is recorded); a refused
    MAIL defers or fails every recipient exactly as it always did."""

    def group(self, rcpts):
        return ["RCPT TO:<%s>" % r for r in rcpts] + ["DATA"]

    def test_mail_goes_with_its_recipients_and_data(self):
        srv = self.start(mail_wait=0.3)
        self.enqueue(["bob@example.com", "carol@example.com"])
        self.enqueue(["dave@example.net"])
        r = self.deliver()
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(self.msg_ids(), [])
        self.assertEqual(srv.connections, 1)
        self.assertEqual(srv.mail_pending, [self.group(["bob@example.com", "carol@example.com"]),
                                            self.group(["dave@example.net"])])
        self.assertEqual([m.rcpts for m in srv.messages],
                         [["bob@example.com", "carol@example.com"], ["dave@example.net"]])

    def test_server_without_pipelining_gets_mail_alone(self):
        srv = self.start(mail_wait=0.3, extensions=("8BITMIME", "SIZE 100000000", "DSN"))
        self.enqueue(["bob@example.com", "carol@example.com"])
        r = self.deliver("-v")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(self.msg_ids(), [])
        self.assertEqual(srv.mail_pending, [[]])
        self.assertNotIn(b"sent on with the recipients", r.stderr)

    def test_mail_refused_4xx_defers_every_recipient(self):
        srv = self.start(mail_wait=0.2, script={"MAIL": "451-4.3.0 mail\r\n451 4.3.0 later"})
        qid = self.enqueue(["bob@example.com", "carol@example.com"])
        r = self.deliver("-v")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(srv.mail_pending, [self.group(["bob@example.com", "carol@example.com"])])
        self.assertEqual(srv.messages, [])
        # the journal says what a refused MAIL always made it say (the
        # lines as libESMTP joins a multi-line reply, the same before)
        said = "451 4.3.0 mail??4.3.0 later"
        self.assertEqual(self.states(qid), {"bob@example.com": ("deferred", said),
                                            "carol@example.com": ("deferred", said)})
        log = open(os.path.join(self.dir, "postie.log")).read()
        self.assertIn("%s: to=<carol@example.com> via=test status=deferred reply=%s" % (qid, said),
                      log)
        # -v shows the server's MAIL reply where it came
        err = r.stderr.decode()
        self.assertIn("deliver: < 451 4.3.0 later  (the server's reply to MAIL FROM)", err)
        self.assertLess(err.index("> DATA"), err.index("(the server's reply to MAIL FROM)"))

    def test_mail_refused_5xx_fails_every_recipient(self):
        srv = self.start(mail_wait=0.2, script={"MAIL": "553 5.7.1 sender rejected"})
        self.enqueue(["bob@example.com", "carol@example.com"])
        r = self.deliver()
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(srv.mail_pending, [self.group(["bob@example.com", "carol@example.com"])])
        self.assertEqual(self.msg_ids(), [])
        notice = open(self.bounces()[-1], "rb").read()
        self.assertIn(b"<bob@example.com>: 553 5.7.1 sender rejected\n", notice)
        self.assertIn(b"<carol@example.com>: 553 5.7.1 sender rejected\n", notice)
        self.assertIn(b"Diagnostic-Code: smtp; 553 5.7.1 sender rejected\n", notice)
        self.assertNotIn(b"reply to MAIL FROM", notice)

    def test_drop_after_mail_defers_with_the_reason(self):
        srv = self.start(script={"MAIL": "DROP"})
        qid = self.enqueue(["bob@example.com", "carol@example.com"])
        r = self.deliver()
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(self.states(qid)["bob@example.com"],
                         ("deferred", "127.0.0.1 closed the connection while waiting for the reply "
                          "to MAIL"))
        # a 421 and the close: the 421 is the reason, as it was
        srv = self.start(script={"MAIL": ("THEN-DROP", "421 4.3.2 shutting down")})
        r = self.deliver("--now")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(self.states(qid), {
            "bob@example.com": ("deferred", "421 4.3.2 shutting down"),
            "carol@example.com": ("deferred", "421 4.3.2 shutting down")})

    def test_refused_mail_between_accepted_ones(self):
        seen = [0]

        def mail(arg):
            seen[0] += 1
            return "452 4.3.1 insufficient storage" if seen[0] == 2 else None
        srv = self.start(mail_wait=0.2, script={"MAIL": mail})
        a = self.enqueue(["bob@example.com"])
        b = self.enqueue(["carol@example.com", "erin@example.com"],
                         MSG.replace(b"deliver test", b"second"))
        c = self.enqueue(["dave@example.net"], MSG.replace(b"deliver test", b"third"))
        r = self.deliver()
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(srv.connections, 1)
        self.assertEqual([m.rcpts for m in srv.messages], [["bob@example.com"], ["dave@example.net"]])
        self.assertEqual(self.msg_ids(), [b])
        self.assertEqual(self.states(b), {
            "carol@example.com": ("deferred", "452 4.3.1 insufficient storage"),
            "erin@example.com": ("deferred", "452 4.3.1 insufficient storage")})
        self.assertEqual(len(srv.mail_pending), 3)
        self.assertEqual(srv.mail_pending[1], self.group(["carol@example.com", "erin@example.com"]))
        log = open(os.path.join(self.dir, "postie.log")).read()
        self.assertIn("%s: to=<bob@example.com> via=test status=sent" % a, log)
        self.assertIn("%s: to=<dave@example.net> via=test status=sent" % c, log)


class TestEndOfDataPipelined(DeliverCase):
    """Under PIPELINING the end of a message's data goes with the next
    message's MAIL, RCPT and DATA (RFC 2920: message content may begin a
    group), so a message costs one round trip; each message's outcome is
    still the server's own reply to its data, recorded before the next
    message's data goes out."""

    def test_next_group_goes_with_the_end_of_data(self):
        srv = self.start(end_wait=0.3)
        self.enqueue(["bob@example.com"])
        self.enqueue(["carol@example.com", "dave@example.net"],
                     MSG.replace(b"deliver test", b"second"))
        r = self.deliver()
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(self.msg_ids(), [])
        self.assertEqual(srv.connections, 1)
        self.assertTrue(srv.end_pending[0][0].startswith("MAIL FROM:<"), srv.end_pending)
        self.assertEqual(srv.end_pending[0][1:], ["RCPT TO:<carol@example.com>",
                                                  "RCPT TO:<dave@example.net>", "DATA"])
        self.assertEqual(srv.end_pending[1], ["QUIT"])
        self.assertEqual([m.rcpts for m in srv.messages],
                         [["bob@example.com"], ["carol@example.com", "dave@example.net"]])

    def test_what_waits_in_the_kernel_goes_out_with_the_next_group(self):
        # each message's data and dot wait corked for the next group; once
        # it went whole the cork comes off: left on, the kernel would send
        # them only after 200 ms, and 20 messages would take 4 s or more
        srv = self.start()
        self.enqueue_numbered(20)
        r, took = self.deliver_timed()
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(len(srv.messages), 20)
        self.assertLess(took, 2.0)

    def test_each_message_gets_its_own_end_reply(self):
        ends = [0]

        def dot(data):
            ends[0] += 1
            return {1: "554 5.7.1 looks like spam", 2: "451-4.3.0 disk\r\n451 4.3.0 full"}.get(
                ends[0])
        srv = self.start(end_wait=0.1, script={"DOT": dot})
        a = self.enqueue(["bob@example.com"])
        b = self.enqueue(["carol@example.com"], MSG.replace(b"deliver test", b"second"))
        c = self.enqueue(["dave@example.net"], MSG.replace(b"deliver test", b"third"))
        r = self.deliver("-v")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(srv.connections, 1)
        self.assertEqual([m.rcpts for m in srv.messages], [["dave@example.net"]])
        # the first failed (a notice, gone), the second waits, the third went
        self.assertEqual(self.msg_ids(), [b])
        self.assertEqual(self.states(b), {"carol@example.com": ("deferred",
                                                                "451 4.3.0 disk??4.3.0 full")})
        notice = open(self.bounces()[-1], "rb").read()
        self.assertIn(b"<bob@example.com>: 554 5.7.1 looks like spam\n", notice)
        log = open(os.path.join(self.dir, "postie.log")).read()
        self.assertIn("%s: to=<bob@example.com> via=test status=failed reply=554 5.7.1 looks "
                      "like spam" % a, log)
        self.assertIn("%s: to=<dave@example.net> via=test status=sent" % c, log)
        err = r.stderr.decode()
        self.assertIn("deliver: < 554 5.7.1 looks like spam  (the server's reply to the end "
                      "of the data)", err)

    def test_no_reply_to_the_end_of_data_defers(self):
        ends = [0]

        def dot(data):
            ends[0] += 1
            return "DROP" if ends[0] == 1 else None
        srv = self.start(script={"DOT": dot})
        a = self.enqueue(["bob@example.com"])
        b = self.enqueue(["carol@example.com"], MSG.replace(b"deliver test", b"second"))
        r = self.deliver()
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(srv.messages, [])
        self.assertEqual(sorted(self.msg_ids()), sorted([a, b]))
        self.assertEqual(self.states(a), {"bob@example.com": (
            "deferred", "127.0.0.1 closed the connection while waiting for the reply to the "
            "message data")})
        # the second was never answered either: not sent, deferred
        self.assertEqual(self.states(b)["carol@example.com"][0], "deferred")
        r = self.deliver("--now")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(self.msg_ids(), [])
        self.assertEqual(sorted(m.rcpts[0] for m in srv.messages),
                         ["bob@example.com", "carol@example.com"])

    def test_without_pipelining_the_end_waits_for_its_reply(self):
        srv = self.start(end_wait=0.3, extensions=("8BITMIME", "SIZE 100000000", "DSN"))
        self.enqueue(["bob@example.com"])
        self.enqueue(["carol@example.com"], MSG.replace(b"deliver test", b"second"))
        r = self.deliver("-v")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(self.msg_ids(), [])
        self.assertEqual(srv.end_pending, [[], []])
        self.assertNotIn(b"the end of the data went on", r.stderr)


class TestRouting(DeliverCase):
    def test_identities_by_sender_with_their_own_connections(self):
        work = Server(tls="starttls", cert=certs.path("localhost.crt"),
                      key=certs.path("localhost.key"))
        home = Server(tls="starttls", cert=certs.path("localhost.crt"),
                      key=certs.path("localhost.key"))
        self.addCleanup(work.stop)
        self.addCleanup(home.stop)
        ca = certs.path("ca.crt")
        self.write_config(
            "identity work\n  from *@corp.example.com\n  host localhost\n  port %d\n"
            "  tls-ca %s\n  helo laptop.corp.example.com\n  force-sender me@corp.example.com\n"
            "identity home\n  default\n  host localhost\n  port %d\n  tls-ca %s\n"
            % (work.port, ca, home.port, ca))
        for sender in ("boss@corp.example.com", "alice@example.org", "x@CORP.example.com"):
            r = self.sendmail(["-odq", "-i", "-f", sender, "-N", "failure,delay", "-R", "hdrs",
                               "-B", "8BITMIME", "bob@example.com"], MSG + b"Gr\xc3\xbc\xc3\x9fe\n")
            self.assertQueued(r)
        r = self.deliver()
        self.assertEqual(r.returncode, 0, r.stderr)
        # two sessions in one process, each with its own TLS context
        self.assertEqual((work.connections, home.connections), (1, 1))
        self.assertEqual([m.mail_from for m in work.messages],
                         ["me@corp.example.com", "me@corp.example.com"])
        self.assertEqual([m.mail_from for m in home.messages], ["alice@example.org"])
        self.assertTrue(all(m.tls for m in work.messages + home.messages))
        self.assertIn("EHLO laptop.corp.example.com", work.commands)
        mail = [c for c in work.commands if c.startswith("MAIL FROM")][0]
        self.assertIn("BODY=8BITMIME", mail)
        self.assertIn("RET=HDRS", mail)
        self.assertRegex(mail, r"SIZE=\d+")
        rcpt = [c for c in work.commands if c.startswith("RCPT TO")][0]
        self.assertIn("NOTIFY=FAILURE,DELAY", rcpt)

    def test_no_identity_waits_with_a_reason(self):
        self.write_config("identity work\n  from *@corp.example.com\n  host 127.0.0.1\n  port 9\n")
        qid = self.enqueue(["bob@example.com"], sender="alice@example.org")
        r = self.deliver()
        self.assertEqual(r.returncode, 0, r.stderr)
        m = self.mailq()["messages"][0]
        self.assertEqual(m["attempts"], 0)
        self.assertIn("no identity", m["recipients"][0]["reply"])

    def test_connect_timeout(self):
        # a listener whose backlog is full: SYNs go unanswered
        import socket
        l = socket.socket()
        l.bind(("127.0.0.1", 0))
        l.listen(0)
        self.addCleanup(l.close)
        fillers = []
        for _ in range(8):
            c = socket.socket()
            c.setblocking(False)
            c.connect_ex(l.getsockname())
            fillers.append(c)
        self.addCleanup(lambda: [c.close() for c in fillers])
        self.write_config("identity t\n  default\n  host 127.0.0.1\n  port %d\n  tls none\n"
                          "  connect-timeout 2s\n" % l.getsockname()[1])
        qid = self.enqueue(["bob@example.com"])
        t = time.time()
        r = self.deliver()
        took = time.time() - t
        self.assertEqual(r.returncode, 75, r.stderr)
        self.assertGreater(took, 1.5)
        self.assertLess(took, 6)
        self.assertIn(b"connect timeout", r.stderr)
        self.assertEqual(self.states(qid)["bob@example.com"][0], "waiting")   # no attempt
        self.assertIn("connect timeout", self.mailq()["messages"][0]["unreachable"]["reason"])


class TestTLS(DeliverCase):
    tls = "starttls"

    def server_for(self, cert="localhost", **kw):
        return self.start(tls=kw.pop("mode", "starttls"), cert=certs.path(cert + ".crt"),
                          key=certs.path(cert + ".key"), **kw)

    def implicit_server(self, **kw):
        """The scripted server as an implicit-TLS server with the tests'
        CA, postie configured for it."""
        srv = self.server_for(mode="implicit", **kw)
        self.tls = "tls"
        self.identity_extra = "  tls-ca %s\n" % certs.path("ca.crt")
        self.configure(host="localhost")
        return srv

    def deliver_with(self, identity_extra, cert="localhost", tls="starttls", **kw):
        self.tls = tls
        self.identity_extra = identity_extra
        srv = self.server_for(cert, mode=tls if tls != "tls" else "implicit", **kw)
        self.configure(host="localhost")
        qid = self.enqueue(["bob@example.com"])
        t = time.time()
        r = self.deliver("-v")
        self.took = time.time() - t
        return srv, qid, r

    @staticmethod
    def tcp_sockets(pid):
        """{state: count} of the TCP sockets (IPv4 and IPv6) that process
        pid holds, read from /proc/net/tcp and tcp6 (state 0A: LISTEN)."""
        inodes = set()
        for fd in os.listdir("/proc/%d/fd" % pid):
            try:
                link = os.readlink("/proc/%d/fd/%s" % (pid, fd))
            except OSError:
                continue
            if link.startswith("socket:["):
                inodes.add(link[8:-1])
        states = {}
        for table in ("/proc/net/tcp", "/proc/net/tcp6"):
            with open(table) as f:
                for row in f.readlines()[1:]:
                    cols = row.split()
                    if cols[9] in inodes:
                        states[cols[3]] = states.get(cols[3], 0) + 1
        return states

    def test_no_listening_socket_while_sending_over_tls(self):
        # libESMTP gets a socketpair end: no TCP port another local user
        # could reach exists at any moment; looked at while a large
        # message is on its way (the server holds the data for 4 s)
        srv = self.implicit_server(script={"BODY": ("STALL", 4)})
        self.enqueue(["bob@example.com"], MSG + (b"x" * 999 + b"\n") * 2000)
        p = subprocess.Popen([os.path.join(self.bin, "deliver")], env=self.env,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        try:
            deadline = time.time() + 20
            while "DATA" not in srv.commands and time.time() < deadline:
                time.sleep(0.02)
            self.assertIn("DATA", srv.commands)
            time.sleep(0.3)
            states = self.tcp_sockets(p.pid)
        finally:
            p.communicate(timeout=60)
        self.assertEqual(states.get("01"), 1, states)   # the upstream, established
        self.assertNotIn("0A", states)                  # no listener

    def test_the_end_of_the_data_ends_its_tls_record(self):
        # a server reads a TLS record at a time and answers what it has
        # read before it reads on: the dot ends its record, so the server
        # answers it before it reads the next MAIL group (which goes in
        # the same TCP segment, corked). Given both in one record, Postfix
        # held its reply to the dot behind a slow check of the next RCPT,
        # and a connection lost then re-sends a message it has queued
        # (test_postfix: test_session_killed_after_the_first_message)
        srv = self.implicit_server(end_wait=0.2)
        self.enqueue_numbered(3)
        r = self.deliver()
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(len(srv.messages), 3)
        whole = b"".join(srv.tls_reads)
        bounds, at = [], 0
        for rd in srv.tls_reads:
            bounds.append((at, at + len(rd)))
            at += len(rd)
        tails, pos = [], 0
        while True:
            dot = whole.find(b"\r\n.\r\n", pos)
            if dot < 0:
                break
            end = next(b[1] for b in bounds if b[0] <= dot + 2 < b[1])
            tails.append(whole[dot + 5:end])    # the dot's record, after it
            pos = dot + 5
        self.assertEqual(tails, [b"", b"", b""], srv.tls_reads)
        # and the next group came behind it without waiting for its reply
        self.assertEqual(len(srv.end_pending), 3)
        self.assertTrue(srv.end_pending[0][0].startswith("MAIL FROM:<"), srv.end_pending)
        self.assertEqual(srv.end_pending[0][1:], ["RCPT TO:<bob@example.com>", "DATA"])
        self.assertEqual(srv.end_pending[2], ["QUIT"])

    def test_a_server_that_writes_each_reply_alone_costs_no_delayed_ack(self):
        # the scripted server writes each reply on its own, Nagle on (no
        # TCP_NODELAY): a reply after the first waits for our ACK of the
        # one before, which Linux delays by 40 ms when the client has
        # nothing to send; the pump ACKs at once while replies are due.
        # 40 messages took 1.8 s before (45 ms each), plain and TLS alike;
        # now 0.02 s and 0.07 s here
        for mode in ("none", "tls"):
            with self.subTest(mode=mode):
                if mode == "tls":
                    srv = self.implicit_server()
                else:
                    self.tls = mode
                    srv = self.start()
                self.enqueue_numbered(40)
                r, took = self.deliver_timed()
                self.assertEqual(r.returncode, 0, r.stderr)
                self.assertEqual(len(srv.messages), 40)
                # held by Nagle, 40 ms a message at least: 1.6 s
                self.assertLess(took, 1.4)

    def test_a_close_without_ending_tls_is_said_as_a_close(self):
        # the server (or a middlebox) closes TCP without TLS's close_notify:
        # the reason says it closed the connection, and what was awaited,
        # not OpenSSL's unexpected EOF as EPROTO's "Protocol error"
        for stage, what in (("RCPT", "RCPT"), ("DATA", "DATA")):
            with self.subTest(stage=stage):
                for q in self.msg_ids():
                    os.unlink(os.path.join(self.queue, "msg", q))
                self.implicit_server(script={stage: "DROP"})
                qid = self.enqueue(["bob@example.com"])
                r = self.deliver()
                self.assertEqual(r.returncode, 0, r.stderr)
                self.assertEqual(self.states(qid)["bob@example.com"], (
                    "deferred", "localhost closed the connection while waiting for the "
                    "reply to %s" % what))

    def test_unreadable_tls_ca_says_why(self):
        missing = os.path.join(self.dir, "no-such-ca.pem")
        junk = os.path.join(self.dir, "junk.pem")
        with open(junk, "w") as f:
            f.write("not a certificate\n")
        for ca, why in ((missing, "No such file or directory"), (junk, "no PEM certificate in it")):
            with self.subTest(ca=ca):
                for q in self.msg_ids():
                    os.unlink(os.path.join(self.queue, "msg", q))
                srv, qid, r = self.deliver_with("  tls-ca %s\n" % ca)
                self.assertEqual(srv.connections, 0)
                self.assertEqual(self.states(qid)["bob@example.com"][1],
                                 "cannot load tls-ca %s: %s" % (ca, why))

    def test_system_cas_serve_every_identity(self):
        # without tls-ca the system's CAs verify (OpenSSL's default paths;
        # SSL_CERT_FILE points them at the tests' CA here): built once a
        # run, while the connection is made, and shared by two identities,
        # one STARTTLS, one implicit TLS; a third, pinned, needs none
        a = self.server_for(mode="starttls")
        b = self.server_for(mode="implicit")
        c = self.server_for(mode="implicit")
        pin = subprocess.run(["openssl", "x509", "-noout", "-fingerprint", "-sha256", "-in",
                              certs.path("localhost.crt")], capture_output=True, text=True,
                             check=True).stdout.strip().split("=", 1)[1].replace(":", "")
        self.write_config(
            "identity one\n  from *@one.example\n  host localhost\n  port %d\n"
            "  tls starttls\n"
            "identity two\n  from *@two.example\n  host localhost\n  port %d\n  tls tls\n"
            "identity three\n  default\n  host localhost\n  port %d\n  tls tls\n"
            "  tls-fingerprint sha256:%s\n" % (a.port, b.port, c.port, pin))
        self.enqueue(["bob@example.com"], sender="a@one.example")
        self.enqueue(["bob@example.com"], sender="b@two.example")
        self.enqueue(["bob@example.com"], sender="c@three.example")
        self.env["SSL_CERT_FILE"] = certs.path("ca.crt")
        self.env["SSL_CERT_DIR"] = self.dir     # no hashed CAs there
        r = self.deliver("-v")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(self.msg_ids(), [])
        for srv in (a, b, c):
            self.assertEqual(len(srv.messages), 1, r.stderr.decode())
            self.assertTrue(srv.messages[0].tls)
        # and the system's CAs are what verified: without the tests' CA
        # in them, the first two are refused; the pinned one still goes
        self.env["SSL_CERT_FILE"] = os.path.join(self.dir, "no-such-file.pem")
        for sender in ("a@one.example", "b@two.example", "c@three.example"):
            self.enqueue(["bob@example.com"], sender=sender)
        r = self.deliver()
        self.assertEqual((len(a.messages), len(b.messages), len(c.messages)), (1, 1, 2),
                         r.stderr)
        reasons = sorted(st["bob@example.com"][1] for st in map(self.states, self.msg_ids()))
        self.assertEqual(len(reasons), 2, reasons)
        for why in reasons:
            self.assertIn("TLS with localhost: certificate verification failed", why)

    def test_valid_chain(self):
        srv, qid, r = self.deliver_with("  tls-ca %s\n" % certs.path("ca.crt"))
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(len(srv.messages), 1, (self.states(qid), srv.errors, srv.commands,
                                                srv.connections, self.took, r.stderr.decode()))
        self.assertTrue(srv.messages[0].tls)

    def test_refusals(self):
        ca = "  tls-ca %s\n" % certs.path("ca.crt")
        own_ca = ("(a server with a CA of its own: set tls-ca to that CA's certificate, "
                  "or pin the server's with tls-fingerprint)")
        cases = [       # what failed, then what to do
            ("wrong", ca, "hostname mismatch for localhost (set host to a name the "
                          "certificate carries)"),
            ("self", ca, "self-signed certificate (tls-ca holds no CA that signed it: point "
                         "it at the right one, or pin the server's certificate with "
                         "tls-fingerprint)"),
            ("expired", ca, "expired (is this machine's clock right? if so, the server's "
                            "certificate is out of date)"),
            ("self", "  tls-fingerprint sha256:" + "00" * 32 + "\n", "does not match tls-fingerprint"),
            ("localhost", "", "unable to get local issuer certificate " + own_ca),
        ]
        for cert, extra, why in cases:
            with self.subTest(cert=cert, extra=extra):
                for q in self.msg_ids():
                    os.unlink(os.path.join(self.queue, "msg", q))
                srv, qid, r = self.deliver_with(extra, cert)
                self.assertEqual(r.returncode, 0, r.stderr)
                self.assertEqual(srv.messages, [])
                self.assertFalse(any(c.startswith("MAIL") for c in srv.commands), srv.commands)
                st = self.states(qid)["bob@example.com"]
                self.assertEqual(st[0], "deferred")
                self.assertIn(why, st[1])

    def test_an_address_the_certificate_lacks_says_what_to_set(self):
        self.server_for(mode="starttls")
        self.tls, self.identity_extra = "starttls", "  tls-ca %s\n" % certs.path("ca.crt")
        self.configure(host="127.0.0.1")
        qid = self.enqueue(["bob@example.com"])
        self.deliver()
        self.assertIn("IP address mismatch (the certificate does not carry this address: set "
                      "host to a name it carries, or pin it with tls-fingerprint)",
                      self.states(qid)["bob@example.com"][1])

    def test_the_wrong_tls_for_the_port_says_which_to_set(self):
        ca = "  tls-ca %s\n" % certs.path("ca.crt")
        # tls tls against a STARTTLS port: its plain greeting is no TLS
        srv = self.server_for(mode="starttls")
        self.tls, self.identity_extra = "tls", ca
        self.configure(host="localhost")
        qid = self.enqueue(["bob@example.com"])
        self.deliver()
        why = self.states(qid)["bob@example.com"][1]
        self.assertIn("wrong version number (port %d does not start with TLS: for a port "
                      "that offers STARTTLS (as 587 does) set tls starttls)" % srv.port, why)
        # tls starttls against an implicit-TLS port: each waits for the other
        os.unlink(os.path.join(self.queue, "msg", qid))
        srv = self.server_for(mode="implicit")
        self.tls = "starttls"
        self.configure(host="localhost", timeout=2)
        qid = self.enqueue(["bob@example.com"])
        self.deliver()
        why = self.states(qid)["bob@example.com"][1]
        self.assertIn("timed out waiting for the greeting (2 s) (if port %d wants TLS at "
                      "once (as 465 does), set tls tls)" % srv.port, why)
        self.assertEqual(srv.messages, [])

    def test_pinned_self_signed(self):
        srv, qid, r = self.deliver_with("  tls-fingerprint %s\n" % certs.fingerprint("self.crt"), "self")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(len(srv.messages), 1)

    def test_starttls_not_offered_never_plain(self):
        srv, qid, r = self.deliver_with("  tls-ca %s\n" % certs.path("ca.crt"), offer_starttls=False)
        self.assertEqual(srv.messages, [])
        self.assertFalse(any(c.startswith("MAIL") for c in srv.commands))
        self.assertIn("does not offer STARTTLS", self.states(qid)["bob@example.com"][1])

    def test_implicit_tls(self):
        srv, qid, r = self.deliver_with("  tls-ca %s\n" % certs.path("ca.crt"), tls="tls")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(len(srv.messages), 1)
        self.assertTrue(srv.messages[0].tls)

    def test_implicit_tls_wrong_host(self):
        srv, qid, r = self.deliver_with("  tls-ca %s\n" % certs.path("ca.crt"), "wrong", tls="tls")
        self.assertEqual(srv.messages, [])
        self.assertIn("hostname mismatch", self.states(qid)["bob@example.com"][1])

    def test_client_certificate(self):
        ca = "  tls-ca %s\n" % certs.path("ca.crt")
        srv, qid, r = self.deliver_with(
            ca + "  tls-cert %s\n  tls-key %s\n" % (certs.path("client.crt"), certs.path("client.key")),
            client_ca=certs.path("ca.crt"))
        self.assertEqual(len(srv.messages), 1, (self.states(qid), srv.errors))
        for q in self.msg_ids():
            os.unlink(os.path.join(self.queue, "msg", q))
        srv, qid, r = self.deliver_with(ca, client_ca=certs.path("ca.crt"))
        self.assertEqual(srv.messages, [])
        self.assertEqual(self.states(qid)["bob@example.com"][0], "deferred")


class TestAuth(DeliverCase):
    tls = "starttls"

    def setup_auth(self, password_line, mechanisms=("PLAIN", "LOGIN", "CRAM-MD5"), **script):
        self.identity_extra = ("  tls-ca %s\n  user me@example.org\n%s" %
                               (certs.path("ca.crt"), password_line))
        srv = self.start(tls="starttls", cert=certs.path("localhost.crt"),
                         key=certs.path("localhost.key"),
                         users={"me@example.org": "s3cret pass"}, mechanisms=mechanisms,
                         script=script)
        self.configure(host="localhost")
        return srv

    @staticmethod
    def verbs(srv):
        return [c.split(" ", 1)[0].upper() for c in srv.commands]

    def password_command(self, word="s3cret pass"):
        script = os.path.join(self.dir, "pw")
        with open(script, "w") as f:
            f.write("#!/bin/sh\necho '%s'\necho second-line-ignored\n" % word)
        os.chmod(script, 0o700)
        return '  password-command "%s"\n' % script

    def test_mechanisms(self):
        for mech in ("PLAIN", "LOGIN", "CRAM-MD5"):
            with self.subTest(mech=mech):
                srv = self.setup_auth(self.password_command(), mechanisms=(mech,))
                self.enqueue(["bob@example.com"])
                r = self.deliver("-v")
                self.assertEqual(r.returncode, 0, r.stderr)
                self.assertEqual(len(srv.messages), 1, r.stderr)
                self.assertEqual(srv.messages[0].user, "me@example.org")
                self.assertNotIn(b"s3cret", r.stderr)          # -v redacts AUTH
                self.assertNotIn(b"czNjcmV0IHBhc3M", r.stderr)  # nor in base64
                self.assertIn(b"deliver: > AUTH %s" % mech.encode(), r.stderr)
                self.assertIn(b"(redacted)", r.stderr)
                log = open(os.path.join(self.dir, "postie.log")).read()
                self.assertNotIn("s3cret", log)
                # an ordinary client's dialogue: one EHLO after TLS, AUTH
                # once, then the transaction; no EHLO after AUTH
                self.assertEqual(self.verbs(srv), ["EHLO", "STARTTLS", "EHLO", "AUTH",
                                                   "MAIL", "RCPT", "DATA", "QUIT"])

    def test_auth_reply_split_across_reads(self):
        # a 334 that arrives in two pieces is still one line: no false
        # failure, and the answer to it stays redacted
        self.identity_extra = ("  tls-ca %s\n  user me@example.org\n%s" %
                               (certs.path("ca.crt"), self.password_command()))
        srv = self.start(tls="starttls", cert=certs.path("localhost.crt"),
                         key=certs.path("localhost.key"), users={"me@example.org": "s3cret pass"},
                         mechanisms=("LOGIN",), split_challenges=True)
        self.configure(host="localhost")
        self.enqueue(["bob@example.com"])
        r = self.deliver("-v")
        self.assertEqual(len(srv.messages), 1, r.stderr)
        self.assertNotIn(b"czNjcmV0IHBhc3M", r.stderr)     # base64 of the password
        self.assertNotIn(b"s3cret", r.stderr)

    def test_535_is_a_deferral_and_no_unauthenticated_mail(self):
        srv = self.setup_auth(self.password_command("wrong"))
        qid = self.enqueue(["bob@example.com"])
        r = self.deliver()
        self.assertEqual(srv.messages, [])
        self.assertFalse(any(c.startswith("MAIL") for c in srv.commands), srv.commands)
        st = self.states(qid)["bob@example.com"]
        self.assertEqual(st[0], "deferred")
        self.assertTrue(st[1].startswith("authentication failed for user 'me@example.org' "
                                         "(PLAIN): 535"), st[1])
        # the log names the identity once
        log = open(os.path.join(self.dir, "postie.log")).read()
        self.assertIn("identity test: authentication failed for user", log)
        self.assertNotIn("identity test: identity", log)
        self.assertNotIn("wrong", json.dumps(self.mailq()))

    def test_identity_failure_is_said_on_a_terminal_only(self):
        # a wrong password is a deferral (exit 0): silent from cron, one
        # line for a person at a terminal, who would otherwise not know
        self.setup_auth(self.password_command("wrong"))
        self.enqueue(["bob@example.com"])
        r = self.deliver()
        self.assertEqual((r.returncode, r.stderr), (0, b""))
        rc, out = self.run_cmd_tty("deliver", ["--now"])
        self.assertEqual(rc, 0, out)
        self.assertEqual(out.strip().splitlines(), [
            "deliver: identity test: authentication failed for user 'me@example.org' "
            "(PLAIN): 535 5.7.8 authentication credentials invalid; its mail stays queued "
            "(mailq shows it)"])

    def test_no_usable_mechanism_sends_nothing(self):
        srv = self.setup_auth(self.password_command(), mechanisms=("XOAUTH2",))
        qid = self.enqueue(["bob@example.com"])
        self.deliver()
        self.assertFalse(any(c.startswith("MAIL") for c in srv.commands), srv.commands)
        self.assertEqual(self.states(qid)["bob@example.com"], (
            "deferred", "localhost offers AUTH XOAUTH2; the identity allows PLAIN LOGIN "
            "CRAM-MD5 (auth in postie.conf(5))"))

    def test_password_command_failing(self):
        script = os.path.join(self.dir, "pwfail")
        with open(script, "w") as f:
            f.write("#!/bin/sh\nexit 3\n")
        os.chmod(script, 0o700)
        srv = self.setup_auth('  password-command "%s"\n' % script)
        qid = self.enqueue(["bob@example.com"])
        r = self.deliver()
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(srv.connections, 0)
        self.assertEqual(self.states(qid)["bob@example.com"][1],
                         "password-command %s failed (exit 3)" % script)
        log = open(os.path.join(self.dir, "postie.log")).read()
        self.assertIn("identity test: password-command %s failed (exit 3)" % script, log)
        # an empty first line, then more: named as such
        with open(script, "w") as f:
            f.write("#!/bin/sh\necho\necho more\n")
        self.deliver("--now")
        self.assertEqual(self.states(qid)["bob@example.com"][1],
                         "password-command %s failed (an empty first line)" % script)


class TestPasswordCommandEnds(DeliverCase):
    """The password-command ends with deliver: killed (SIGKILL, nothing can
    run), the helper gets SIGTERM from the kernel; told to stop (SIGTERM),
    deliver kills it and leaves the messages as they were."""

    def start_slow_helper(self):
        pidfile = os.path.join(self.dir, "helper.pid")
        script = os.path.join(self.dir, "slow-token")
        with open(script, "w") as f:
            f.write("#!/bin/sh\necho $$ > %s\nexec sleep 30\n" % pidfile)
        os.chmod(script, 0o700)
        self.start(extensions=("AUTH PLAIN", "PIPELINING"))
        self.identity_extra = ('  user alice\n  auth-without-tls yes\n  password-command "%s"\n'
                               % script)
        self.configure()
        qid = self.enqueue(["bob@example.com"])
        p = subprocess.Popen([os.path.join(self.bin, "deliver")], env=self.env,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                             preexec_fn=default_stop_signals)
        for _ in range(200):
            if os.path.exists(pidfile) and open(pidfile).read().strip():
                break
            time.sleep(0.02)
        return p, int(open(pidfile).read()), qid

    def gone(self, pid, within):
        end = time.monotonic() + within
        while time.monotonic() < end:
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                return True
            with open("/proc/%d/stat" % pid) as f:      # a zombie is gone too
                if f.read().rsplit(")", 1)[1].split()[0] == "Z":
                    return True
            time.sleep(0.02)
        return False

    def test_killed_deliver_takes_its_helper_along(self):
        p, helper, qid = self.start_slow_helper()
        p.kill()
        p.wait()
        self.assertTrue(self.gone(helper, 3), "the password-command outlived deliver")

    def test_told_to_stop_it_kills_the_helper_and_defers_nothing(self):
        p, helper, qid = self.start_slow_helper()
        t = time.monotonic()
        p.send_signal(signal.SIGTERM)
        out, err = p.communicate(timeout=20)
        self.assertLess(time.monotonic() - t, 5, err)
        self.assertEqual(p.returncode, 75, err)
        self.assertIn(b"stopped (Terminated)", err)
        self.assertTrue(self.gone(helper, 3))
        self.assertEqual(self.states(qid)["bob@example.com"][0], "waiting")
        self.assertEqual(self.server.connections, 0)


class TestOAuth2(DeliverCase):
    """XOAUTH2 and OAUTHBEARER against the scripted server: tokens longer
    than any AUTH line, the error challenge, a server without them."""
    tls = "starttls"
    # an access token as long as Microsoft's can be: 6 KiB
    TOKEN = ("eyJ0eXAiOiJKV1QiLCJub25jZSI6" + "Ab3-_x.9" * 800)[:6144]

    def setup_oauth(self, auth, token, mechanisms=("PLAIN", "XOAUTH2", "OAUTHBEARER")):
        script = os.path.join(self.dir, "token")
        with open(script, "w") as f:
            f.write("#!/bin/sh\necho '%s'\n" % token)
        os.chmod(script, 0o700)
        self.identity_extra = ("  tls-ca %s\n  user me@example.org\n  auth %s\n"
                               "  password-command \"%s\"\n" % (certs.path("ca.crt"), auth, script))
        srv = self.start(tls="starttls", cert=certs.path("localhost.crt"),
                         key=certs.path("localhost.key"),
                         users={"me@example.org": self.TOKEN}, mechanisms=mechanisms)
        self.configure(host="localhost")
        return srv

    def assert_token_kept(self, r):
        # nothing sent is shown whole when it could carry the token, in
        # the clear or in base64 (every line postie sent is short)
        for line in r.stderr.split(b"\n"):
            if line.startswith(b"deliver: > "):
                self.assertLess(len(line), 200, line[:200])
        self.assertNotIn(self.TOKEN[-200:].encode(), r.stderr)
        self.assertNotIn(b"Ab3-_x.9Ab3", r.stderr)
        log = open(os.path.join(self.dir, "postie.log")).read()
        self.assertNotIn("Ab3-_x.9Ab3", log)
        self.assertNotIn("Ab3-_x.9Ab3", json.dumps(self.mailq()))

    def test_long_tokens_go_after_the_334(self):
        for mech in ("XOAUTH2", "OAUTHBEARER"):
            with self.subTest(mech=mech):
                srv = self.setup_oauth(mech, self.TOKEN)
                self.enqueue(["bob@example.com"])
                r = self.deliver("-v")
                self.assertEqual(r.returncode, 0, r.stderr)
                self.assertEqual(len(srv.messages), 1, r.stderr)
                self.assertEqual(srv.messages[0].user, "me@example.org")
                # "AUTH MECH" alone, the response after the server's 334
                self.assertEqual(srv.auths, [(mech, False)])
                self.assertEqual([c.split(" ", 1)[0] for c in srv.commands],
                                 ["EHLO", "STARTTLS", "EHLO", "AUTH", "MAIL", "RCPT",
                                  "DATA", "QUIT"])
                self.assertIn(b"deliver: > AUTH %s\n" % mech.encode(), r.stderr)
                self.assertIn(b"deliver: > (redacted)\n", r.stderr)
                self.assert_token_kept(r)
                if mech == "OAUTHBEARER":
                    self.assertEqual(srv.oauth_hosts, [("localhost", str(srv.port))])

    def test_refused_token_reports_the_decoded_status(self):
        for mech, status, answer in (("XOAUTH2", "401", b""),
                                     ("OAUTHBEARER", "invalid_token", b"AQ==")):
            with self.subTest(mech=mech):
                srv = self.setup_oauth(mech, "expired-" + self.TOKEN[8:])
                qid = self.enqueue(["bob@example.com"])
                r = self.deliver("-v")
                self.assertEqual(r.returncode, 0, r.stderr)     # a deferral
                self.assertEqual(srv.messages, [])
                self.assertNotIn("MAIL", [c.split(" ", 1)[0] for c in srv.commands])
                # the error challenge answered as RFC 7628 (XOAUTH2: empty)
                self.assertEqual(srv.error_answers, [answer])
                self.assertEqual(self.states(qid)["bob@example.com"], (
                    "deferred", "authentication failed for user 'me@example.org' (%s, status "
                    "%s): 535 5.7.3 Authentication unsuccessful" % (mech, status)))
                self.assert_token_kept(r)

    def test_server_offering_neither_names_both_lists(self):
        srv = self.setup_oauth("XOAUTH2 OAUTHBEARER", self.TOKEN, mechanisms=("PLAIN", "LOGIN"))
        qid = self.enqueue(["bob@example.com"])
        r = self.deliver()
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(srv.auths, [])
        self.assertNotIn("MAIL", [c.split(" ", 1)[0] for c in srv.commands])
        self.assertEqual(self.states(qid)["bob@example.com"], (
            "deferred", "localhost offers AUTH PLAIN LOGIN; the identity allows XOAUTH2 "
            "OAUTHBEARER (auth in postie.conf(5))"))

    def test_password_command_output_over_64_kib(self):
        srv = self.setup_oauth("XOAUTH2", "x" * (64 * 1024 + 1))
        qid = self.enqueue(["bob@example.com"])
        self.deliver()
        self.assertEqual(srv.connections, 0)
        self.assertRegex(self.states(qid)["bob@example.com"][1],
                         r"password-command .* failed \(its first line is over 64 KiB\)")
