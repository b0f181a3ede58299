"""sendmail -bs: an SMTP dialogue on stdin/stdout, driven by a scripted
client that waits for each reply as a real client would."""
import os
import subprocess

from pt import QueueCase


class Client:
    def __init__(self, case):
        self.p = subprocess.Popen([os.path.join(case.bin, "sendmail"), "-bs"],
                                  stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                  env=case.env)
        case.addCleanup(self.close)
        self.greeting = self.reply()

    def reply(self):
        """The whole (possibly multi-line) reply: (code, [lines])."""
        lines = []
        while True:
            line = self.p.stdout.readline()
            if not line:
                raise EOFError("server closed")
            assert line.endswith(b"\r\n"), line
            lines.append(line[4:-2].decode())
            if line[3:4] != b"-":
                return int(line[:3]), lines

    def cmd(self, text):
        self.p.stdin.write(text.encode() + b"\r\n")
        self.p.stdin.flush()
        return self.reply()

    def data(self, payload):
        code, _ = self.cmd("DATA")
        assert code == 354, code
        self.p.stdin.write(payload + b".\r\n")
        self.p.stdin.flush()
        return self.reply()

    def close(self):
        if self.p.poll() is None:
            self.p.kill()
        self.p.wait()
        for f in (self.p.stdin, self.p.stdout):
            try:
                f.close()
            except BrokenPipeError:
                pass


class TestSmtpPipe(QueueCase):
    def test_dialogue(self):
        c = Client(self)
        self.assertEqual(c.greeting[0], 220)
        code, lines = c.cmd("EHLO client.example")
        self.assertEqual(code, 250)
        self.assertIn("8BITMIME", lines)
        self.assertIn("PIPELINING", lines)
        self.assertIn("DSN", lines)
        self.assertEqual(c.cmd("NOOP")[0], 250)
        self.assertEqual(c.cmd("RCPT TO:<x@example.com>")[0], 503)  # MAIL first
        self.assertEqual(c.cmd("MAIL FROM:<alice@example.org> BODY=8BITMIME")[0], 250)
        self.assertEqual(c.cmd("MAIL FROM:<again@example.org>")[0], 503)
        self.assertEqual(c.cmd("RCPT TO:<bob@example.com> NOTIFY=FAILURE")[0], 250)
        self.assertEqual(c.cmd("RCPT TO:<jörg@example.com>")[0], 553)
        self.assertEqual(c.cmd("RCPT TO:bad")[0], 501)
        code, lines = c.data(b"Subject: one\r\n\r\n..leading dot\r\nline\r\n")
        self.assertEqual(code, 250)
        qid = lines[0].rsplit(" ", 1)[1]
        self.assertTrue(lines[0].startswith("2.0.0 Ok: queued as "), lines)
        # a second transaction in the same session
        self.assertEqual(c.cmd("MAIL FROM:<>")[0], 250)
        self.assertEqual(c.cmd("RCPT TO:<carol@example.com>")[0], 250)
        self.assertEqual(c.cmd("RSET")[0], 250)
        self.assertEqual(c.cmd("DATA")[0], 503)     # RSET cleared it
        self.assertEqual(c.cmd("MAIL FROM:<>")[0], 250)
        self.assertEqual(c.cmd("RCPT TO:<carol@example.com>")[0], 250)
        self.assertEqual(c.data(b"Subject: two\r\n\r\nbody\r\n")[0], 250)
        self.assertEqual(c.cmd("FOO")[0], 500)
        self.assertEqual(c.cmd("QUIT")[0], 221)
        c.p.wait(timeout=10)
        self.assertEqual(c.p.returncode, 0)

        ids = self.msg_ids()
        self.assertEqual(len(ids), 2)
        env, body = self.read_msg(qid)
        self.assertEqual(env["sender"], "alice@example.org")
        self.assertEqual(env["rcpt"], ["bob@example.com"])
        self.assertEqual(env["notify"], "FAILURE")
        self.assertEqual(env["body"].rstrip(), "7bit")     # ASCII, whatever BODY= said
        self.assertTrue(body.startswith(b"Subject: one\r\n"))
        self.assertTrue(body.endswith(b"\r\n\r\n.leading dot\r\nline\r\n"))
        other = [i for i in ids if i != qid][0]
        env2, _ = self.read_msg(other)
        self.assertEqual(env2["sender"], "")
        self.assertEqual(env2["rcpt"], ["carol@example.com"])

    def test_refused_data_keeps_the_dialogue_in_step(self):
        self.write_config("max-size 1k\n")
        c = Client(self)
        c.cmd("HELO x")
        c.cmd("MAIL FROM:<a@example.org>")
        c.cmd("RCPT TO:<b@example.com>")
        code, lines = c.data(b"Subject: big\r\n\r\n" + b"y" * 3000 + b"\r\n")
        self.assertEqual(code, 554)
        self.assertIn("max-size", lines[0])
        self.assertEqual(c.cmd("NOOP")[0], 250)
        self.assertEqual(c.cmd("QUIT")[0], 221)
        self.assertNothingQueued()

    def test_client_vanishing_mid_data_queues_nothing(self):
        c = Client(self)
        c.cmd("HELO x")
        c.cmd("MAIL FROM:<a@example.org>")
        c.cmd("RCPT TO:<b@example.com>")
        self.assertEqual(c.cmd("DATA")[0], 354)
        c.p.stdin.write(b"Subject: cut\r\n\r\npartial")
        c.p.stdin.close()
        c.p.wait(timeout=10)
        self.assertEqual(c.p.returncode, 65)
        self.assertNothingQueued()

    def test_dsn_parameters_are_checked_not_cut(self):
        """NOTIFY, ENVID, RET and BODY values a queue could not honour
        are refused with 501, not truncated or taken as something else,
        and the transaction stays usable."""
        c = Client(self)
        c.cmd("EHLO x")
        long_envid = "E" * 101
        self.assertEqual(c.cmd("MAIL FROM:<a@example.org> ENVID=" + long_envid)[0], 501)
        self.assertEqual(c.cmd("MAIL FROM:<a@example.org> RET=MOST")[0], 501)
        self.assertEqual(c.cmd("MAIL FROM:<a@example.org> BODY=BINARYMIME")[0], 501)
        self.assertEqual(c.cmd("MAIL FROM:<a@example.org> ENVID=a=b")[0], 501)
        self.assertEqual(c.cmd("MAIL FROM:<a@example.org> SMTPUTF8")[0], 555)
        ok = "Q" * 100
        self.assertEqual(c.cmd("MAIL FROM:<a@example.org> RET=HDRS ENVID=" + ok)[0], 250)
        self.assertEqual(c.cmd("RCPT TO:<b@example.com> NOTIFY=SUCCESS,BOGUS")[0], 501)
        self.assertEqual(c.cmd("RCPT TO:<b@example.com> NOTIFY=" + "DELAY," * 20 + "DELAY")[0], 501)
        self.assertEqual(c.cmd("RCPT TO:<b@example.com> NOTIFY=NEVER,FAILURE")[0], 501)
        self.assertEqual(c.cmd("RCPT TO:<b@example.com> FOO=BAR")[0], 555)
        self.assertEqual(c.cmd("RCPT TO:<b@example.com> NOTIFY=SUCCESS,DELAY")[0], 250)
        code, lines = c.data(b"Subject: dsn\r\n\r\nbody\r\n")
        self.assertEqual(code, 250)
        qid = lines[0].rsplit(" ", 1)[1]
        c.cmd("QUIT")
        env, _ = self.read_msg(qid)
        self.assertEqual(env["envid"], ok)
        self.assertEqual(env["ret"], "hdrs")
        self.assertEqual(env["notify"], "SUCCESS,DELAY")
        self.assertEqual(env["rcpt"], ["b@example.com"])
