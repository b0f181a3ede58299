"""mailq: the listing for people and JSON for scripts, from the queue
files as deliver will leave them."""
import json
import os
import re
import subprocess

from pt import QueueCase, POSTIE

MSG = b"From: a@example.org\nSubject: q\n\nbody\n"


class TestMailq(QueueCase):
    config_extra = ("identity work\n  from *@example.org\n  host smtp.example.org\n"
                    "  user me\n  password s3cr3t-pass\n")

    def journal(self, qid, lines):
        with open(os.path.join(self.queue, "state", qid), "a") as f:
            f.write("".join(l + "\n" for l in lines))

    def test_empty(self):
        r = self.run_cmd("mailq", [])
        self.assertEqual(r.returncode, 0)
        self.assertEqual(r.stdout, b"0 messages in the queue\n")
        j = json.loads(self.run_cmd("mailq", ["--json"]).stdout)
        self.assertEqual(j["messages"], [])
        self.assertEqual(j["count"], 0)

    def test_states_text_and_json(self):
        self.assertQueued(self.sendmail(["-f", "a@example.org", "r0@example.com",
                                         "r1@example.com", "r2@example.com",
                                         "localuser"], MSG))
        self.assertQueued(self.sendmail(["-f", "nobody@elsewhere.test",
                                         "x@example.com"], MSG))
        first, second = self.msg_ids()
        self.journal(first, ["1700000000 attempt",
                             "1700000001 defer * 421 4.7.0 try again later",
                             "1700000002 ok 0 250 2.0.0 Ok: queued",
                             "1700000003 fail 1 550 5.1.1 <r1@example.com>: no such user\x1b[31m",
                             "1700000004 next 1700000300"])
        r = self.run_cmd("mailq", [])
        self.assertEqual(r.returncode, 0)
        out = r.stdout.decode()
        self.assertNotIn("\x1b", out)                  # server bytes sanitized
        self.assertNotIn("s3cr3t", out)
        self.assertIn("  identity  work\n", out)
        self.assertIn("  attempts  1, next try ", out)
        self.assertIn("r0@example.com  sent: 250 2.0.0 Ok: queued\n", out)
        self.assertIn("r1@example.com  failed: 550 5.1.1 <r1@example.com>: no such user?[31m\n", out)
        self.assertIn("r2@example.com  deferred: 421 4.7.0 try again later\n", out)
        self.assertIn("localuser  deferred: 421", out)
        self.assertIn("  identity  none\n", out)
        self.assertIn("x@example.com  waiting: no identity", out)
        self.assertTrue(out.endswith("\n2 messages in the queue\n"), out)

        j = json.loads(self.run_cmd("mailq", ["--json"]).stdout)
        self.assertEqual(j["count"], 2)
        m = j["messages"][0]
        self.assertEqual(m["id"], first)
        self.assertEqual(m["sender"], "a@example.org")
        self.assertEqual(m["identity"], "work")
        self.assertEqual(m["attempts"], 1)
        self.assertEqual(m["size"], os.path.getsize(
            os.path.join(self.queue, "msg", first)) - len(open(
                os.path.join(self.queue, "msg", first), "rb").read().split(b"\nend\n")[0]) - 5)
        self.assertEqual(m["next_try"], "2023-11-14T22:18:20Z")
        states = [(x["address"], x["state"]) for x in m["recipients"]]
        self.assertEqual(states, [("r0@example.com", "sent"), ("r1@example.com", "failed"),
                                  ("r2@example.com", "deferred"), ("localuser", "deferred")])
        self.assertEqual(m["recipients"][2]["reply"], "421 4.7.0 try again later")
        n = j["messages"][1]
        self.assertIsNone(n["identity"])
        self.assertIn("no identity", n["recipients"][0]["reply"])
        self.assertIsNone(n["next_try"])
        self.assertNotIn("s3cr3t", json.dumps(j))

    def test_unreadable_entry_does_not_hide_others(self):
        self.assertQueued(self.sendmail(["r@example.com"], MSG))
        with open(os.path.join(self.queue, "msg", "1000000000.000000.1"), "w") as f:
            f.write("garbage\n")
        out = self.run_cmd("mailq", []).stdout.decode()
        self.assertIn("1000000000.000000.1  unreadable: ", out)
        self.assertIn("not a postie queue file", out)
        self.assertTrue(out.endswith("2 messages in the queue\n"))

    def test_sendmail_bp_matches(self):
        self.assertQueued(self.sendmail(["r@example.com"], MSG))
        a = self.run_cmd("mailq", []).stdout
        b = self.sendmail(["-bp"], b"").stdout
        self.assertEqual(a, b)

    def test_unknown_flag(self):
        r = self.run_cmd("mailq", ["--frob"])
        self.assertEqual(r.returncode, 64)
        # one prefix: the command's name, once
        self.assertEqual(r.stderr, b"mailq: unknown flag '--frob' (see postie(1) for the flags of mailq)\n")

    def test_usage_names_every_flag(self):
        r = self.run_cmd("mailq", ["stray-argument"])
        self.assertEqual(r.returncode, 64)
        self.assertEqual(r.stderr, b"mailq: usage: mailq [-C config] [-v] [--json] [-q]\n")

    def test_sendmail_bp_json_matches(self):
        """SPEC: mailq is also sendmail -bp, and mailq --json is the same
        listing as JSON; so sendmail -bp --json is mailq --json."""
        self.assertQueued(self.sendmail(["r@example.com"], MSG))
        a = self.run_cmd("mailq", ["--json"])
        for args in (["-bp", "--json"], ["--json", "-bp"]):
            b = self.sendmail(args, b"")
            self.assertEqual(b.returncode, 0, b.stderr)
            self.assertEqual(json.loads(b.stdout), json.loads(a.stdout))
        # --json means nothing when sending: a usage error, not a recipient
        r = self.sendmail(["--json", "r@example.com"], MSG)
        self.assertEqual(r.returncode, 64)
        self.assertIn(b"--json", r.stderr)
        self.assertEqual(len(self.msg_ids()), 1)

    def test_times_carry_their_zone(self):
        """A local time without its zone is ambiguous: every time mailq
        prints for people ends in the numeric zone (+0100)."""
        self.assertQueued(self.sendmail(["-f", "a@example.org", "r@example.com"], MSG))
        qid = self.msg_ids()[0]
        self.journal(qid, ["1700000000 attempt", "1700000001 defer 0 451 later",
                           "1700000002 next 1700000300"])
        for tz, zone in (("UTC", "+0000"), ("CET-1", "+0100"), ("IST-5:30", "+0530")):
            out = self.run_cmd("mailq", [], env={"TZ": tz}).stdout.decode()
            q = re.search(r"queued (\S+ \S+)( [+-]\d{4})?\n", out)
            self.assertIsNotNone(q, out)
            self.assertEqual(q.group(2), " " + zone, out)
            self.assertIn("next try %s %s\n" % (
                {"UTC": "2023-11-14 22:18:20", "CET-1": "2023-11-14 23:18:20",
                 "IST-5:30": "2023-11-15 03:48:20"}[tz], zone), out)
