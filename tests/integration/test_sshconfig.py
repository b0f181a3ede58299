"""~/.ssh/config for fetch and for deliver's SSH tunnel, against real
OpenSSH sshd's on loopback: a host alias (HostName, Port, User,
IdentityFile, UserKnownHostsFile), postie's own keys winning, ProxyJump
through one and two jump hosts (each a private sshd whose log shows the
direct-tcpip channel it opened), an unknown host key at a jump host, and
the clear refusals (ProxyCommand, an untrusted config file)."""
import os
import socket
import time
import unittest

import sshd
from test_fetch import FetchCase, BODY
from test_tunnel import TunnelCase


def host_block(alias, port, user, extra=""):
    return ("Host %s\n  HostName 127.0.0.1\n  Port %d\n  User %s\n"
            "  IdentityFile %%d/user_key\n  IdentitiesOnly yes\n"
            "  UserKnownHostsFile ~/.ssh/kh_%%n\n%s" % (alias, port, user, extra))


class SshConfigMixin:
    """HOME/.ssh/config and per-alias known_hosts files (kh_ALIAS)."""

    def ssh_config(self, text):
        path = os.path.join(self.dir, ".ssh", "config")
        with open(path, "w") as f:
            f.write(text)
        os.chmod(path, 0o600)
        return path

    def write_kh(self, alias, *servers):
        """kh_ALIAS lists these servers' host keys ([127.0.0.1]:port)."""
        with open(os.path.join(self.dir, ".ssh", "kh_" + alias), "w") as f:
            for s in servers:
                f.write(s.known_hosts_line())

    def jump(self):
        s = sshd.Sshd(authorized=[self.key + ".pub"])
        self.addCleanup(s.stop)
        return s

    @staticmethod
    def forwarded(jump, port):
        """Did the jump sshd open a direct-tcpip channel to 127.0.0.1:port?"""
        return "target 127.0.0.1 port %d" % port in jump.log_text()


class TestFetchSshConfig(SshConfigMixin, FetchCase):
    def setUp(self):
        super().setUp()
        # no default known_hosts: what the test's config names is used
        os.unlink(os.path.join(self.dir, ".ssh", "known_hosts"))

    def configure_alias(self, ssh="mailbox"):
        self.write_config(
            "fetch inbox\n  ssh %s\n  remote %s\n  local %s\n  folders INBOX\n"
            "  mode move\n  client laptop\n  connect-timeout 5s\n  timeout 10s\n" % (
                ssh, self.remote, self.local))

    def test_alias_gives_host_port_user_key_known_hosts(self):
        self.ssh_config(host_block("mailbox", self.sshd.port, self.sshd.user))
        self.write_kh("mailbox", self.sshd)
        self.configure_alias()
        data = self.put("1700000000.a")
        r = self.fetch("-v")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(self.local_data("1700000000.a"), data)
        self.assertEqual(self.remote_names(), [])
        # the IdentityFile (%d) and the UserKnownHostsFile (%n) were used
        self.assertIn(b"with %s/user_key" % self.dir.encode(), r.stderr)
        self.assertIn(b"found in %s/.ssh/kh_mailbox" % self.dir.encode(), r.stderr)
        self.assertIn("Accepted publickey for %s" % self.sshd.user, self.sshd.log_text())

    def test_postie_keys_win(self):
        # ssh_config names a wrong port, user and known_hosts; postie's
        # ssh, ssh-key and ssh-known-hosts say otherwise and win
        self.ssh_config("Host mailbox\n  HostName 127.0.0.1\n  Port 1\n  User nobody\n"
                        "  IdentityFile /nonexistent\n  UserKnownHostsFile /nonexistent\n")
        mine = os.path.join(self.dir, "mine_kh")
        with open(mine, "w") as f:
            f.write(self.sshd.known_hosts_line())
        self.write_config(
            "fetch inbox\n  ssh %s@mailbox:%d\n  ssh-key %s\n  ssh-known-hosts %s\n"
            "  remote %s\n  local %s\n  timeout 10s\n" % (
                self.sshd.user, self.sshd.port, self.key, mine, self.remote, self.local))
        self.put("1700000000.b")
        r = self.fetch()
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(self.local_names(), ["1700000000.b"])

    def test_proxyjump_one_hop(self):
        j = self.jump()
        self.ssh_config(host_block("mailbox", self.sshd.port, self.sshd.user,
                                   "  ProxyJump gw\n") +
                        host_block("gw", j.port, j.user))
        self.write_kh("mailbox", self.sshd)
        self.write_kh("gw", j)
        self.configure_alias()
        data = self.put("1700000000.c")
        r = self.fetch("-v")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(self.local_data("1700000000.c"), data)
        self.assertIn(b"jump host gw (hop 1 of 1) open", r.stderr)
        self.assertIn(b"ssh: connected to 127.0.0.1 port %d\n" % j.port, r.stderr)
        self.assertIn(b"ssh: connected to 127.0.0.1 port %d through the jump host gw\n"
                      % self.sshd.port, r.stderr)
        self.assertIn(b"ssh: mailbox is %s@127.0.0.1 port %d through gw"
                      % (self.sshd.user.encode(), self.sshd.port), r.stderr)
        # the jump host carried the session to the mail server
        self.assertTrue(self.forwarded(j, self.sshd.port), j.log_text()[-3000:])
        self.assertIn("Accepted publickey for %s" % j.user, j.log_text())
        # without the jump host, no way through
        j.stop()
        self.put("1700000001.c")
        r = self.fetch()
        self.assertEqual(r.returncode, 75, r.stderr)
        self.assertIn(b"ProxyJump host gw (hop 1 of 1)", r.stderr)
        self.assertEqual(self.remote_names(), ["1700000001.c"])

    def test_proxyjump_two_hops(self):
        j1, j2 = self.jump(), self.jump()
        self.ssh_config(host_block("mailbox", self.sshd.port, self.sshd.user,
                                   "  ProxyJump gw1,%s@gw2\n" % j2.user) +
                        host_block("gw1", j1.port, j1.user) +
                        host_block("gw2", j2.port, "nobody"))
        self.write_kh("mailbox", self.sshd)
        self.write_kh("gw1", j1)
        self.write_kh("gw2", j2)
        self.configure_alias()
        for i in range(3):
            self.put("170000000%d.d" % i)
        r = self.fetch("-v")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(len(self.local_names()), 3)
        self.assertEqual(self.remote_names(), [])
        # gw1 forwarded to gw2, gw2 to the mail server, in that order
        self.assertTrue(self.forwarded(j1, j2.port), j1.log_text()[-3000:])
        self.assertTrue(self.forwarded(j2, self.sshd.port), j2.log_text()[-3000:])
        self.assertFalse(self.forwarded(j1, self.sshd.port))
        # the hop's user written in ProxyJump won over its User
        self.assertIn("Accepted publickey for %s" % j2.user, j2.log_text())

    def test_first_hop_own_proxyjump_is_followed(self):
        # as ssh: gw2's own ProxyJump puts gw1 before it
        j1, j2 = self.jump(), self.jump()
        self.ssh_config(host_block("mailbox", self.sshd.port, self.sshd.user,
                                   "  ProxyJump gw2\n") +
                        host_block("gw2", j2.port, j2.user, "  ProxyJump gw1\n") +
                        host_block("gw1", j1.port, j1.user))
        self.write_kh("mailbox", self.sshd)
        self.write_kh("gw1", j1)
        self.write_kh("gw2", j2)
        self.configure_alias()
        self.put("1700000000.g")
        r = self.fetch("-v")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(self.local_names(), ["1700000000.g"])
        self.assertIn(b"jump host gw1 (hop 1 of 2) open", r.stderr)
        self.assertTrue(self.forwarded(j1, j2.port), j1.log_text()[-3000:])
        self.assertTrue(self.forwarded(j2, self.sshd.port), j2.log_text()[-3000:])

    def test_silent_server_behind_jump_is_bounded(self):
        # the jump host reaches a listener that never speaks: the SSH
        # handshake through the channel waits for "timeout", no longer,
        # and closing the hop does not wait for the far side either
        silent = socket.socket()
        silent.bind(("127.0.0.1", 0))
        silent.listen(4)
        self.addCleanup(silent.close)
        j = self.jump()
        self.ssh_config(host_block("mailbox", silent.getsockname()[1], self.sshd.user,
                                   "  ProxyJump gw\n") +
                        host_block("gw", j.port, j.user))
        self.write_kh("gw", j)
        self.write_config(
            "fetch inbox\n  ssh mailbox\n  remote %s\n  local %s\n"
            "  connect-timeout 4s\n  timeout 4s\n" % (self.remote, self.local))
        t = time.time()
        r = self.fetch()
        took = time.time() - t
        self.assertEqual(r.returncode, 75, r.stderr)
        self.assertIn(b"SSH handshake with 127.0.0.1 failed", r.stderr)
        self.assertTrue(self.forwarded(j, silent.getsockname()[1]))
        self.assertLess(took, 6.5, r.stderr)     # one timeout (4 s), not two

    def test_unknown_host_key_at_jump_is_refused(self):
        j = self.jump()
        self.ssh_config(host_block("mailbox", self.sshd.port, self.sshd.user,
                                   "  ProxyJump gw\n") +
                        host_block("gw", j.port, j.user))
        self.write_kh("mailbox", self.sshd)
        self.write_kh("gw")                 # nothing known about the jump host
        self.configure_alias()
        self.put("1700000000.e")
        r = self.fetch()
        self.assertEqual(r.returncode, 76, r.stderr)
        self.assertIn(b"ProxyJump host gw (hop 1 of 1)", r.stderr)
        self.assertIn(j.host_fingerprint().encode(), r.stderr)
        self.assertIn(b"is not in %s/.ssh/kh_gw" % self.dir.encode(), r.stderr)
        self.assertNotIn(b"ssh-fingerprint", r.stderr)    # the server's pin, not a hop's
        self.assertFalse(self.forwarded(j, self.sshd.port))
        self.assertEqual(self.remote_names(), ["1700000000.e"])

    def test_proxycommand_only_is_a_clear_error(self):
        path = self.ssh_config("Host mailbox\n  HostName 127.0.0.1\n"
                               "  ProxyCommand ssh -W %h:%p gw\n")
        self.configure_alias()
        r = self.fetch()
        self.assertEqual(r.returncode, 78, r.stderr)
        self.assertIn(b"%s:3: ProxyCommand is how ssh reaches mailbox" % path.encode(),
                      r.stderr)
        self.assertIn(b"ProxyJump", r.stderr)

    def test_certificate_named_when_login_fails(self):
        stranger = sshd.keygen(os.path.join(self.dir, "stranger"))
        path = self.ssh_config("Host mailbox\n  HostName 127.0.0.1\n  Port %d\n  User %s\n"
                               "  IdentitiesOnly yes\n  IdentityFile %s\n"
                               "  CertificateFile %s-cert.pub\n  IdentityFile /nonexistent/key\n"
                               "  UserKnownHostsFile ~/.ssh/kh_mailbox\n" % (
                                   self.sshd.port, self.sshd.user, stranger, stranger))
        self.write_kh("mailbox", self.sshd)
        self.configure_alias()
        r = self.fetch()
        self.assertEqual(r.returncode, 77, r.stderr)
        # what was tried, and what could not be
        self.assertIn(b"refused %s (tried no ssh-agent (IdentitiesOnly), %s, not /nonexistent/key"
                      b" (No such file" % (self.sshd.user.encode(), stranger.encode()), r.stderr)
        self.assertIn(b"its public key in %s's ~/.ssh/authorized_keys on the server"
                      % self.sshd.user.encode(), r.stderr)
        self.assertIn(b"%s:7 gives a CertificateFile, which postie does not offer"
                      % path.encode(), r.stderr)

    def test_untrusted_config_is_refused(self):
        path = self.ssh_config(host_block("mailbox", self.sshd.port, self.sshd.user))
        os.chmod(path, 0o622)
        self.write_kh("mailbox", self.sshd)
        self.configure_alias()
        self.put("1700000000.f")
        r = self.fetch()
        self.assertEqual(r.returncode, 78, r.stderr)
        self.assertIn(b"%s is writable by other users" % path.encode(), r.stderr)
        self.assertEqual(self.remote_names(), ["1700000000.f"])


class TestTunnelSshConfig(SshConfigMixin, TunnelCase):
    def test_tunnel_through_alias_and_jump(self):
        srv = self.start()
        j = self.jump()
        self.ssh_config(host_block("gateway", self.sshd.port, self.sshd.user,
                                   "  ProxyJump gw\n") +
                        host_block("gw", j.port, j.user))
        self.write_kh("gateway", self.sshd)
        self.write_kh("gw", j)
        self.identity_extra = "  ssh gateway\n"
        self.configure()
        self.enqueue(["bob@example.com"])
        r = self.deliver("-v")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(self.msg_ids(), [])
        self.assertEqual(len(srv.messages), 1)
        # gw carried the SSH session to the gateway, the gateway the SMTP
        self.assertTrue(self.forwarded(j, self.sshd.port), j.log_text()[-3000:])
        self.assertTrue(self.forwarded(self.sshd, srv.port), self.sshd.log_text()[-3000:])

    def test_tunnel_proxycommand_only_keeps_the_mail(self):
        srv = self.start()
        path = self.ssh_config("Host gateway\n  ProxyCommand ssh -W %h:%p gw\n")
        self.identity_extra = "  ssh gateway\n"
        self.configure()
        qid = self.enqueue(["bob@example.com"])
        r = self.deliver()
        # as a refused host key: deferred with the reason, kept, nothing sent
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(self.msg_ids(), [qid])
        self.assertEqual(srv.connections, 0)
        self.assertIn("%s:2: ProxyCommand is how ssh reaches gateway" % path,
                      self.deferred_reason(qid))
        self.assertNotIn("Accepted publickey", self.sshd.log_text())

    def test_tunnel_through_alias(self):
        srv = self.start()
        self.ssh_config(host_block("gateway", self.sshd.port, self.sshd.user))
        self.write_kh("gateway", self.sshd)
        self.identity_extra = "  ssh gateway\n"
        self.configure()
        self.enqueue(["bob@example.com"])
        r = self.deliver()
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(len(srv.messages), 1)
        self.assertTrue(self.forwarded(self.sshd, srv.port))


if __name__ == "__main__":
    unittest.main()
