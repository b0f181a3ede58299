"""deliver against a real Postfix whose SASL is Dovecot's auth service
(postfix.py with sasl="dovecot", dovecot.py): PLAIN and LOGIN, STARTTLS
and implicit TLS, several messages in one session arriving byte for
byte, and a wrong password."""
import json
import unittest

import dovecot
import postfix
from test_postfix import BODIES, LIMIT, PostfixCase

WHY_NOT = postfix.available() or dovecot.available()


class DovecotCase(PostfixCase):
    mechanisms = ("PLAIN",)

    @classmethod
    def setUpClass(cls):
        cls.pf = postfix.Postfix(users={"me@example.org": "s3cret pass"},
                                 mechanisms=cls.mechanisms, message_size_limit=LIMIT,
                                 sasl="dovecot")


@unittest.skipIf(WHY_NOT, WHY_NOT)
class TestDovecotPlain(DovecotCase):
    mechanisms = ("PLAIN", "LOGIN")

    def test_starttls_plain_several_messages_one_session(self):
        log = self.several_messages_arrive_byte_for_byte("starttls")
        self.assertRegex(log, r"submission/smtpd\[\d+\]: disconnect from .* ehlo=2 "
                              r"starttls=1 auth=1 mail=3 rcpt=4 data=3 quit=1 commands=\d+\n")
        # Dovecot did the checking
        self.assertRegex(log, r"auth: Debug: client passdb out: OK\t\d+\tuser=me@example.org")

    def test_implicit_tls_several_messages_one_session(self):
        log = self.several_messages_arrive_byte_for_byte("tls")
        self.assertRegex(log, r"smtps/smtpd\[\d+\]: disconnect from .* ehlo=1 "
                              r"auth=1 mail=3 rcpt=4 data=3 quit=1 commands=\d+\n")

    def test_wrong_password_is_a_deferral_naming_identity_and_user(self):
        self.password = "not the password"
        self.configure()
        qid = self.enqueue(["bob@example.com"], BODIES[0])
        r = self.deliver()
        self.assertEqual(self.msg_ids(), [qid])
        state, reply = self.states(qid)["bob@example.com"]
        self.assertEqual(state, "deferred")
        self.assertIn("'me@example.org'", reply)
        self.assertIn("535 5.7.8 Error: authentication failed", reply)
        self.assertIn("identity pf", r.stderr.decode())
        self.assertNotIn("not the password", json.dumps(self.states(qid)))
        self.assertNotIn(b"not the password", r.stderr)
        self.assertEqual(self.pf.messages(), [])
        # Dovecot, not Postfix, refused it
        self.assertRegex(self.pf.log_text(), r"passwd-file\(me@example.org.*\): "
                                             r"Password mismatch")


@unittest.skipIf(WHY_NOT, WHY_NOT)
class TestDovecotLogin(DovecotCase):
    mechanisms = ("LOGIN",)

    def test_starttls_login_several_messages_one_session(self):
        log = self.several_messages_arrive_byte_for_byte("starttls", method="LOGIN")
        self.assertRegex(log, r"submission/smtpd\[\d+\]: disconnect from .* ehlo=2 "
                              r"starttls=1 auth=1 mail=3 rcpt=4 data=3 quit=1 commands=\d+\n")


if __name__ == "__main__":
    unittest.main()
