"""deliver through an SSH tunnel: a real OpenSSH sshd on loopback, started
by the test, carries the SMTP connection in a direct-tcpip channel to a
scripted SMTP server. Host keys, user keys, the agent, one session per
run, TLS through the tunnel, and every refusal."""
import os
import resource
import shutil
import signal
import socket
import subprocess
import time
import unittest

import certs
import sshd
from smtpserver import Server
from test_deliver import DeliverCase


@unittest.skipUnless(sshd.available(), "OpenSSH sshd and ssh-keygen are needed (openssh-server)")
class TunnelCase(DeliverCase):
    def setUp(self):
        super().setUp()
        self.ssh_dir = os.path.join(self.dir, ".ssh")       # HOME is self.dir
        os.mkdir(self.ssh_dir, 0o700)
        self.key = sshd.keygen(os.path.join(self.dir, "user_key"))
        self.sshd = sshd.Sshd(authorized=[self.key + ".pub"])
        self.addCleanup(self.sshd.stop)
        self.known = os.path.join(self.ssh_dir, "known_hosts")

    def write_known(self, *lines):
        with open(self.known, "w") as f:
            f.writelines(lines)

    def tunnel(self, extra="", key=True, target_port=None, timeout=15):
        ssh = "  ssh %s@127.0.0.1:%d\n" % (self.sshd.user, self.sshd.port)
        if key:
            ssh += "  ssh-key %s\n" % self.key
        self.identity_extra = ssh + extra
        self.configure(port=target_port, timeout=timeout)

    def unreachable_reason(self, qid):
        # not reaching the upstream is no attempt: the message waits, and
        # mailq says why
        m = [m for m in self.mailq()["messages"] if m["id"] == qid][0]
        self.assertEqual(m["recipients"][0]["state"], "waiting")
        self.assertEqual(m["attempts"], 0)
        return m["unreachable"]["reason"]

    def deferred_reason(self, qid):
        st = self.states(qid)["bob@example.com"]
        self.assertEqual(st[0], "deferred")
        return st[1]


class TestTunnel(TunnelCase):
    def test_all_messages_through_one_session(self):
        srv = self.start()
        self.write_known(self.sshd.known_hosts_line())
        self.tunnel()
        ids = [self.enqueue(["bob@example.com"]) for _ in range(3)]
        r = self.deliver("-v")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(self.msg_ids(), [])
        self.assertEqual(len(srv.messages), 3)
        self.assertEqual(srv.connections, 1)
        log = self.sshd.log_text()
        # one SSH login and one channel carried all three messages, and
        # the channel went where the identity said
        self.assertEqual(log.count("Accepted publickey for %s" % self.sshd.user), 1, log[-3000:])
        self.assertEqual(log.count("target 127.0.0.1 port %d" % srv.port), 1, log[-3000:])
        self.assertIn(b"ssh: host key ssh-ed25519 " + self.sshd.host_fingerprint().encode(),
                      r.stderr)
        text = open(os.path.join(self.dir, "postie.log")).read()
        for qid in ids:
            self.assertIn("%s: to=<bob@example.com> via=test status=sent" % qid, text)

    def test_the_channel_opens_without_a_delayed_ack(self):
        # the channel's opening waited for our ACK of what sshd had sent
        # before its confirmation, which Linux delays 40 ms: 44-46 ms from
        # the login to the open channel, against about 4 ms
        srv = self.start()
        self.write_known(self.sshd.known_hosts_line())
        self.tunnel()
        slow = 0
        for i in range(5):
            self.enqueue(["bob@example.com"])
            if self.stderr_gap("deliver", ["-v"], b"ssh: authenticated as",
                               b"ssh: channel to") > 0.03:
                slow += 1
        self.assertLessEqual(slow, 1)
        self.assertEqual(len(srv.messages), 5)

    def test_large_messages_plain_and_tls(self):
        # many SSH windows' worth each way of the pump, byte for byte
        body = b"".join(b"line %07d of a large message through the tunnel\n" % i
                        for i in range(400000))            # ~20 MB
        data = (b"From: a@example.org\nTo: b@example.com\nSubject: big\n\n" + body)
        for tls in ("none", "starttls"):
            with self.subTest(tls=tls):
                for q in self.msg_ids():
                    os.unlink(os.path.join(self.queue, "msg", q))
                if tls == "none":
                    srv = self.start()
                    self.tls = "none"
                    self.write_known(self.sshd.known_hosts_line())
                    self.tunnel(timeout=60)
                else:
                    srv = self.start(tls="starttls", cert=certs.path("localhost.crt"),
                                     key=certs.path("localhost.key"))
                    self.tls = "starttls"
                    self.identity_extra = (
                        "  ssh %s@127.0.0.1:%d\n  ssh-key %s\n  tls-ca %s\n" %
                        (self.sshd.user, self.sshd.port, self.key, certs.path("ca.crt")))
                    self.configure(host="localhost", timeout=60)
                self.enqueue(["bob@example.com"], data)
                r = self.deliver(timeout=300)
                self.assertEqual(r.returncode, 0, r.stderr)
                self.assertEqual(len(srv.messages), 1, (r.stderr, srv.errors))
                got = srv.messages[0].data        # (sendmail added Date:, Message-ID:)
                self.assertEqual(len(got) - got.index(b"\r\n\r\nline 0000000"),
                                 len(body) + 400000 + 4)
                self.assertTrue(got.endswith(b"\r\n\r\n" + body.replace(b"\n", b"\r\n")))

    def test_default_key_and_hashed_known_hosts(self):
        srv = self.start()
        for suffix in ("", ".pub"):
            shutil.copy(self.key + suffix, os.path.join(self.ssh_dir, "id_ed25519" + suffix))
        os.chmod(os.path.join(self.ssh_dir, "id_ed25519"), 0o600)
        self.write_known(self.sshd.known_hosts_line())
        subprocess.run(["ssh-keygen", "-q", "-H", "-f", self.known], check=True,
                       capture_output=True)
        self.assertNotIn("127.0.0.1", open(self.known).read())    # really hashed
        self.tunnel(key=False)
        self.enqueue(["bob@example.com"])
        r = self.deliver("-v")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(len(srv.messages), 1, r.stderr)
        self.assertIn(b"with " + os.path.join(self.ssh_dir, "id_ed25519").encode(), r.stderr)

    def start_agent(self):
        """A private ssh-agent (stopped at the end); its socket."""
        sock = os.path.join(self.dir, "agent.sock")
        agent = subprocess.Popen(["ssh-agent", "-D", "-a", sock], stdout=subprocess.DEVNULL,
                                 stderr=subprocess.DEVNULL)
        self.addCleanup(lambda: (agent.terminate(), agent.wait()))
        for _ in range(100):
            if os.path.exists(sock):
                break
            time.sleep(0.05)
        return sock

    def test_agent(self):
        srv = self.start()
        self.write_known(self.sshd.known_hosts_line())
        sock = self.start_agent()
        env = dict(self.env, SSH_AUTH_SOCK=sock)
        subprocess.run(["ssh-add", "-q", self.key], env=env, check=True, capture_output=True)
        self.tunnel(key=False)      # no ssh-key and no ~/.ssh/id_*: the agent's key
        self.enqueue(["bob@example.com"])
        r = self.run_cmd("deliver", ["-v"], env={"SSH_AUTH_SOCK": sock})
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(len(srv.messages), 1, r.stderr)
        self.assertIn(b"with the agent's key", r.stderr)

    def agent_with_an_encrypted_key(self, path):
        """An sshd that allows 3 tries and knows only an encrypted key at
        path, whose copy is in an agent after five other keys."""
        self.sshd.stop()
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "secret words",
                        "-C", "the-right-key", "-f", path], check=True, capture_output=True)
        self.sshd = sshd.Sshd(authorized=[path + ".pub"], max_auth_tries=3)
        self.addCleanup(self.sshd.stop)
        self.write_known(self.sshd.known_hosts_line())
        sock = self.start_agent()
        env = dict(self.env, SSH_AUTH_SOCK=sock)
        for i in range(5):
            other = sshd.keygen(os.path.join(self.dir, "other%d" % i))
            subprocess.run(["ssh-add", "-q", other], env=env, check=True, capture_output=True)
        askpass = os.path.join(self.dir, "askpass")
        with open(askpass, "w") as f:
            f.write("#!/bin/sh\necho 'secret words'\n")
        os.chmod(askpass, 0o700)
        subprocess.run(["ssh-add", "-q", path], env=dict(env, SSH_ASKPASS=askpass,
                                                         SSH_ASKPASS_REQUIRE="force"),
                       check=True, capture_output=True, stdin=subprocess.DEVNULL)
        return sock

    def test_an_encrypted_ssh_key_through_the_agent_holding_it(self):
        # ssh-key names an encrypted key: libssh2 cannot read it, the
        # agent has it (after five others, past the server's 3 tries)
        path = os.path.join(self.dir, "enc_key")
        sock = self.agent_with_an_encrypted_key(path)
        srv = self.start()
        self.tunnel(key=False, extra="  ssh-key %s\n" % path)
        self.enqueue(["bob@example.com"])
        r = self.run_cmd("deliver", ["-v"], env={"SSH_AUTH_SOCK": sock})
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(len(srv.messages), 1, r.stderr)
        self.assertIn(b"with the agent's key the-right-key", r.stderr)

    def test_an_encrypted_ssh_key_without_its_pub_says_so(self):
        # the agent holds it, but postie finds the agent's copy by the
        # .pub beside the key: without one, say that, not a refusal
        path = os.path.join(self.dir, "enc_key")
        sock = self.agent_with_an_encrypted_key(path)
        os.unlink(path + ".pub")
        self.start()
        self.tunnel(key=False, extra="  ssh-key %s\n" % path)
        qid = self.enqueue(["bob@example.com"])
        r = self.run_cmd("deliver", [], env={"SSH_AUTH_SOCK": sock})
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("(an encrypted key is used through ssh-agent, which postie finds by "
                      "%s.pub beside it, and there is none: make it with ssh-keygen -y -f %s > "
                      "%s.pub)" % (path, path, path), self.deferred_reason(qid))

    def test_the_agents_copy_of_a_default_key_goes_first(self):
        # no ssh-key: ~/.ssh/id_ed25519 (encrypted) is in the agent after
        # five others; the server allows 3 tries
        path = os.path.join(self.ssh_dir, "id_ed25519")
        sock = self.agent_with_an_encrypted_key(path)
        srv = self.start()
        self.tunnel(key=False)
        self.enqueue(["bob@example.com"])
        r = self.run_cmd("deliver", ["-v"], env={"SSH_AUTH_SOCK": sock})
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(len(srv.messages), 1, r.stderr)
        self.assertIn(b"with the agent's key the-right-key", r.stderr)

    def test_known_hosts_with_the_ecdsa_key_only(self):
        # the server has Ed25519 and ECDSA keys; the one recorded is asked for
        srv = self.start()
        self.write_known(self.sshd.known_hosts_line("ecdsa"))
        self.tunnel()
        self.enqueue(["bob@example.com"])
        r = self.deliver("-v")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(len(srv.messages), 1, r.stderr)
        self.assertIn(b"ecdsa-sha2-nistp256 " + self.sshd.host_fingerprint("ecdsa").encode(),
                      r.stderr)

    def test_pinned_fingerprint(self):
        srv = self.start()      # no known_hosts at all: the pin decides
        self.tunnel("  ssh-fingerprint %s\n" % self.sshd.host_fingerprint())
        self.enqueue(["bob@example.com"])
        r = self.deliver()
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(len(srv.messages), 1, r.stderr)

    def test_starttls_through_the_tunnel(self):
        srv = self.start(tls="starttls", cert=certs.path("localhost.crt"),
                         key=certs.path("localhost.key"))
        self.write_known(self.sshd.known_hosts_line())
        self.tls = "starttls"
        self.identity_extra = ("  ssh %s@127.0.0.1:%d\n  ssh-key %s\n  tls-ca %s\n" %
                               (self.sshd.user, self.sshd.port, self.key, certs.path("ca.crt")))
        self.configure(host="localhost")
        self.enqueue(["bob@example.com"])
        r = self.deliver("-v")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(len(srv.messages), 1, (r.stderr, srv.errors))
        self.assertTrue(srv.messages[0].tls)
        self.assertIn("target localhost port %d" % srv.port, self.sshd.log_text())


class TestTunnelRefusals(TunnelCase):
    def refused(self, extra=""):
        """Deliver one message through a tunnel that must refuse: exit 0,
        the message deferred and still queued, nothing reached the SMTP
        server nor opened a channel. Returns the deferral reason."""
        srv = self.start()
        self.tunnel(extra)
        qid = self.enqueue(["bob@example.com"])
        r = self.deliver()
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(self.msg_ids(), [qid])
        self.assertEqual(srv.connections, 0)
        self.assertEqual(srv.messages, [])
        self.assertNotIn("direct-tcpip", self.sshd.log_text())
        return self.deferred_reason(qid)

    def test_unknown_host_key(self):
        self.write_known(self.sshd.known_hosts_line(name="[127.0.0.1]:1"))   # another host
        why = self.refused()
        self.assertIn("is not in %s" % self.known, why)
        self.assertIn(self.sshd.host_fingerprint(), why)        # named, to check

    def test_no_known_hosts_file(self):
        self.assertIn("there is no %s" % self.known, self.refused())

    def test_changed_host_key(self):
        other = sshd.keygen(os.path.join(self.dir, "other_host"))
        k = open(other + ".pub").read().split()
        self.write_known("[127.0.0.1]:%d %s %s\n" % (self.sshd.port, k[0], k[1]))
        why = self.refused()
        self.assertIn("has CHANGED", why)
        self.assertIn(self.sshd.host_fingerprint(), why)

    def revoked_line(self, sep=" ", hosts="*", tail="\n"):
        k = self.sshd.known_hosts_line().split()
        return "@revoked%s%s%s%s%s%s%s" % (sep, hosts, sep, k[1], sep, k[2], tail)

    def test_revoked_host_key(self):
        # listed for the host and revoked: libssh2 1.10 skips @revoked
        # lines, so it alone would take the key
        self.write_known(self.sshd.known_hosts_line(), "# a comment\n", self.revoked_line())
        why = self.refused()
        self.assertIn("is marked @revoked in %s line 3: refusing it" % self.known, why)
        self.assertIn(self.sshd.host_fingerprint(), why)

    def test_revoked_whatever_its_hosts_and_blanks(self):
        self.write_known(self.revoked_line("\t", "|1|c2FsdA==|aGFzaA==", " comment\r\n"),
                         self.sshd.known_hosts_line())
        self.assertIn("is marked @revoked in %s line 1" % self.known, self.refused())

    def test_revoked_in_the_machines_file(self):
        # an administrator's revocation in the global file (here named by
        # GlobalKnownHostsFile) holds against the user's own known_hosts
        glob = os.path.join(self.dir, "global_known_hosts")
        with open(glob, "w") as f:
            f.write(self.revoked_line())
        cfg = os.path.join(self.ssh_dir, "config")
        with open(cfg, "w") as f:
            f.write("Host 127.0.0.1\n  GlobalKnownHostsFile %s\n" % glob)
        os.chmod(cfg, 0o600)
        self.write_known(self.sshd.known_hosts_line())
        self.assertIn("is marked @revoked in %s line 1" % glob, self.refused())

    def test_revoked_over_a_pin(self):
        self.write_known(self.revoked_line())
        why = self.refused("  ssh-fingerprint %s\n" % self.sshd.host_fingerprint())
        self.assertIn("is marked @revoked", why)

    def test_another_key_revoked(self):
        other = open(sshd.keygen(os.path.join(self.dir, "other_host")) + ".pub").read().split()
        self.write_known(self.sshd.known_hosts_line(), "@revoked * %s %s\n" % (other[0], other[1]))
        srv = self.start()
        self.tunnel()
        self.enqueue(["bob@example.com"])
        r = self.deliver()
        self.assertEqual((r.returncode, len(srv.messages)), (0, 1), r.stderr)

    def test_cert_authority_alone_is_named(self):
        k = self.sshd.known_hosts_line().split()
        self.write_known("@cert-authority * %s %s\n" % (k[1], k[2]))
        why = self.refused()
        self.assertIn("is not in %s (its @cert-authority line trusts host certificates, which "
                      "postie does not check: list the host's own key)" % self.known, why)

    def test_wrong_pin(self):
        self.write_known(self.sshd.known_hosts_line())   # a pin overrides known_hosts
        why = self.refused("  ssh-fingerprint SHA256:%s\n" % ("A" * 43))
        self.assertIn("does not match ssh-fingerprint", why)
        self.assertIn(self.sshd.host_fingerprint(), why)

    def test_user_key_refused(self):
        self.write_known(self.sshd.known_hosts_line())
        self.key = sshd.keygen(os.path.join(self.dir, "stranger"))     # not authorized
        why = self.refused()
        self.assertIn("refused %s with ssh-key %s" % (self.sshd.user, self.key), why)
        self.assertIn("is %s.pub in %s's ~/.ssh/authorized_keys on the server?"
                      % (self.key, self.sshd.user), why)

    def test_ssh_server_unreachable(self):
        srv = self.start()
        self.write_known(self.sshd.known_hosts_line())
        self.tunnel()
        self.sshd.stop()
        qid = self.enqueue(["bob@example.com"])
        r = self.deliver()
        self.assertEqual(r.returncode, 75, r.stderr)
        self.assertIn("cannot connect to 127.0.0.1 port %d" % self.sshd.port,
                      self.unreachable_reason(qid))
        self.assertEqual(srv.connections, 0)

    def test_target_refused_by_the_far_side(self):
        self.write_known(self.sshd.known_hosts_line())
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        dead = s.getsockname()[1]       # bound, never listening: refused
        self.addCleanup(s.close)
        self.server = None
        self.tunnel(target_port=dead)
        qid = self.enqueue(["bob@example.com"])
        r = self.deliver()
        self.assertEqual(r.returncode, 75, r.stderr)
        self.assertIn("could not open a channel to 127.0.0.1 port %d" % dead,
                      self.unreachable_reason(qid))

    def test_channel_that_never_opens_times_out(self):
        # sshd confirms a direct-tcpip channel only once its own connect
        # to the target is through; a listener whose accept queue is full
        # drops the SYN, so the confirmation never comes
        self.write_known(self.sshd.known_hosts_line())
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        s.listen(0)
        self.addCleanup(s.close)
        full = s.getsockname()[1]
        for _ in range(4):
            c = socket.socket()
            self.addCleanup(c.close)
            c.setblocking(False)
            try:
                c.connect(("127.0.0.1", full))
            except BlockingIOError:
                pass
        self.server = None
        self.tunnel(target_port=full, timeout=2)
        qid = self.enqueue(["bob@example.com"])
        t = time.monotonic()
        r = self.deliver()
        took = time.monotonic() - t
        self.assertEqual(r.returncode, 75, r.stderr)
        self.assertLess(took, 10, r.stderr)       # the 2 s bound, not TCP's minutes
        self.assertGreater(took, 1.5, r.stderr)
        # not reached, as a connect that timed out: the message waits,
        # no attempt counted, and mailq says why
        self.assertIn("no channel to 127.0.0.1 port %d within 2 s (timeout)" % full,
                      self.unreachable_reason(qid))
        self.assertEqual(self.msg_ids(), [qid])

    def test_stalled_server_times_out_through_the_tunnel(self):
        srv = self.start(script={"MAIL": ("STALL", 40)})
        self.write_known(self.sshd.known_hosts_line())
        self.tunnel(timeout=3)
        qid = self.enqueue(["bob@example.com"])
        t = time.time()
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        r = self.deliver()
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        took = time.time() - t
        self.assertLess(took, 15, r.stderr)       # not the server's 40 s
        cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
        self.assertLess(cpu, 1.5, "deliver spun while it waited")
        self.deferred_reason(qid)                 # deferred, not lost
        self.assertEqual(srv.messages, [])

    def test_auth_failure_through_the_tunnel_sends_nothing(self):
        srv = self.start(users={"me": "right"})
        self.write_known(self.sshd.known_hosts_line())
        self.tunnel("  user me\n  password wrong\n  auth-without-tls yes\n")
        qid = self.enqueue(["bob@example.com"])
        self.deliver()
        self.assertIn("authentication failed", self.deferred_reason(qid))
        self.assertFalse(any(c.startswith("MAIL") for c in srv.commands), srv.commands)
        self.assertEqual(srv.messages, [])
