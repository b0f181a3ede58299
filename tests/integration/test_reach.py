"""How deliver and fetch reach a server: through a SOCKS5 proxy (a real
one, OpenSSH's ssh -D to the test's own sshd; a scripted one for the
faults) and from a chosen source address (127.0.0.2: loopback takes
it)."""
import os
import socket
import subprocess
import time
import unittest

import sshd
from smtpserver import Server
from socksserver import SocksServer
from test_deliver import DeliverCase
from test_fetch import FetchCase, BODY
from netutil import free_port


class PeerServer(Server):
    """The scripted SMTP server, noting each client's address."""

    def __init__(self, **kw):
        self.peers = []
        super().__init__(**kw)

    def _serve(self, conn):
        self.peers.append(conn.getpeername()[0])
        super()._serve(conn)


def ssh_socks(sshd_, key, known):
    """ssh -D on a free port to sshd_: a real SOCKS5 proxy. Returns the
    process and the port."""
    for _ in range(5):
        port = free_port()
        p = subprocess.Popen(
            ["ssh", "-N", "-D", "127.0.0.1:%d" % port, "-p", str(sshd_.port), "-i", key,
             "-F", "/dev/null", "-o", "BatchMode=yes", "-o", "UserKnownHostsFile=%s" % known,
             "-o", "StrictHostKeyChecking=yes", "-o", "ExitOnForwardFailure=yes",
             "-o", "IdentitiesOnly=yes", "%s@127.0.0.1" % sshd_.user],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        end = time.time() + 10
        while time.time() < end and p.poll() is None:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                return p, port
            except OSError:
                time.sleep(0.05)
        p.kill()
        p.wait()
    raise RuntimeError("ssh -D did not start: %s" % p.stderr.read().decode(errors="replace"))


def stop(p):
    p.terminate()
    try:
        p.wait(timeout=10)
    except subprocess.TimeoutExpired:
        p.kill()
        p.wait()


class ReachCase(DeliverCase):
    def unreachable_reason(self, qid):
        m = [m for m in self.mailq()["messages"] if m["id"] == qid][0]
        self.assertEqual(m["recipients"][0]["state"], "waiting")
        return m["unreachable"]["reason"]

    def through(self, route, host="127.0.0.1", timeout=15, **kw):
        srv = PeerServer(**kw)
        self.server = srv
        self.addCleanup(srv.stop)
        self.identity_extra = route
        self.configure(host=host, timeout=timeout)
        return srv


@unittest.skipUnless(sshd.available(), "OpenSSH sshd and ssh-keygen are needed (openssh-server)")
class TestRealProxy(ReachCase):
    def setUp(self):
        super().setUp()
        self.key = sshd.keygen(os.path.join(self.dir, "user_key"))
        self.sshd = sshd.Sshd(authorized=[self.key + ".pub"])
        self.addCleanup(self.sshd.stop)
        known = os.path.join(self.dir, "proxy_known_hosts")
        with open(known, "w") as f:
            f.write(self.sshd.known_hosts_line())
        self.proxy, self.pport = ssh_socks(self.sshd, self.key, known)
        self.addCleanup(stop, self.proxy)

    def test_deliver_through_the_proxy_which_resolves_the_name(self):
        srv = self.through("  proxy socks5://127.0.0.1:%d\n" % self.pport, host="localhost")
        self.enqueue(["bob@example.com"])
        self.enqueue(["carol@example.com"])
        r = self.deliver()
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual([m.rcpts for m in srv.messages], [["bob@example.com"],
                                                          ["carol@example.com"]])
        self.assertEqual(srv.connections, 1)
        self.assertEqual(self.msg_ids(), [])
        # the name went to the proxy as a name: its sshd opened the channel
        log = self.sshd.log_text()
        self.assertIn("target localhost port %d" % srv.port, log)

    def test_refused_by_the_proxy(self):
        # nothing listens on the target port: the proxy's reply says so
        self.through("  proxy socks5://127.0.0.1:%d\n" % self.pport, timeout=5)
        self.server.stop()
        qid = self.enqueue(["bob@example.com"])
        r = self.deliver()
        self.assertEqual(r.returncode, 75, r.stderr)
        reason = self.unreachable_reason(qid)
        # OpenSSH answers a failed CONNECT by closing the connection
        self.assertEqual(reason, "cannot connect to 127.0.0.1 port %d through the proxy "
                         "127.0.0.1:%d: it closed the connection instead of answering CONNECT "
                         "(it could not reach the host, or may not)"
                         % (self.server.port, self.pport))


@unittest.skipUnless(sshd.available(), "OpenSSH sshd and ssh-keygen are needed (openssh-server)")
class TestFetchReach(FetchCase):
    def test_fetch_through_a_real_proxy(self):
        known = os.path.join(self.dir, ".ssh", "known_hosts")
        proxy, pport = ssh_socks(self.sshd, self.key, known)
        self.addCleanup(stop, proxy)
        self.configure(job_extra="  proxy socks5://127.0.0.1:%d\n" % pport)
        self.put("1700000000.M1P1.server")
        r = self.fetch()
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(self.local_names(), ["1700000000.M1P1.server"])
        self.assertIn("target 127.0.0.1 port %d" % self.sshd.port, self.sshd.log_text())

    def test_fetch_from_a_source_address(self):
        self.configure(job_extra="  source-address 127.0.0.2\n")
        self.put("1700000000.M1P1.server")
        r = self.fetch()
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(self.local_names(), ["1700000000.M1P1.server"])
        self.assertIn("Connection from 127.0.0.2 port", self.sshd.log_text())

    def test_fetch_with_the_proxy_down(self):
        port = free_port()
        self.configure(job_extra="  proxy socks5://127.0.0.1:%d\n  connect-timeout 3s\n" % port)
        self.put("1700000000.M1P1.server")
        r = self.fetch()
        self.assertEqual(r.returncode, 75, r.stderr)
        self.assertIn("cannot connect to the proxy 127.0.0.1 port %d: Connection refused" % port,
                      r.stderr.decode())
        self.assertEqual(self.remote_names(), ["1700000000.M1P1.server"])

    def test_fetch_through_a_scripted_proxy_with_a_login(self):
        proxy = SocksServer(users={"me": "s3cret"})
        self.addCleanup(proxy.stop)
        self.configure(job_extra="  proxy socks5://me:s3cret@127.0.0.1:%d\n" % proxy.port)
        self.put("1700000000.M1P1.server")
        r = self.fetch("-v")
        self.assertEqual(r.returncode, 0, r.stderr)
        # -v names the proxy the connection went through
        self.assertIn("ssh: connected to 127.0.0.1 port %d through the proxy 127.0.0.1 port %d\n"
                      % (self.sshd.port, proxy.port), r.stderr.decode())
        self.assertEqual(proxy.logins, [("me", "s3cret")])
        self.assertEqual(proxy.targets, [(1, "127.0.0.1", self.sshd.port)])


@unittest.skipUnless(sshd.available(), "OpenSSH sshd and ssh-keygen are needed (openssh-server)")
class TestTunnelReach(ReachCase):
    def test_the_ssh_tunnel_through_the_proxy_from_a_source_address(self):
        key = sshd.keygen(os.path.join(self.dir, "user_key"))
        server = sshd.Sshd(authorized=[key + ".pub"])
        self.addCleanup(server.stop)
        os.mkdir(os.path.join(self.dir, ".ssh"), 0o700)
        with open(os.path.join(self.dir, ".ssh", "known_hosts"), "w") as f:
            f.write(server.known_hosts_line())
        proxy = SocksServer()
        self.addCleanup(proxy.stop)
        srv = self.through("  ssh %s@127.0.0.1:%d\n  ssh-key %s\n"
                           "  proxy socks5://127.0.0.1:%d\n  source-address 127.0.0.2\n"
                           % (server.user, server.port, key, proxy.port))
        self.enqueue(["bob@example.com"])
        r = self.deliver()
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(len(srv.messages), 1)
        # the SSH connection went through the proxy, from 127.0.0.2
        self.assertEqual(proxy.targets, [(1, "127.0.0.1", server.port)])
        self.assertEqual(proxy.peers, ["127.0.0.2"])


class TestScriptedProxy(ReachCase):
    def proxy(self, **kw):
        p = SocksServer(**kw)
        self.addCleanup(p.stop)
        return p

    def test_login_and_relay(self):
        p = self.proxy(users={"me": "p@ss:word"})
        srv = self.through("  proxy socks5://me:p@ss:word@127.0.0.1:%d\n" % p.port,
                           host="mx.invalid.example")
        self.enqueue(["bob@example.com"])
        r = self.deliver()
        # a name only the proxy could resolve: it was asked by name, with
        # the login (this one cannot resolve it either, so the mail waits)
        self.assertEqual(p.logins, [("me", "p@ss:word")])
        self.assertEqual(p.methods, [[2]])
        self.assertEqual(p.targets, [(3, "mx.invalid.example", srv.port)])
        self.assertEqual(r.returncode, 75, r.stderr)
        # the password is nowhere to be seen
        out = self.run_cmd("mailq", []).stdout + self.run_cmd("mailq", ["--json"]).stdout
        log = open(os.path.join(self.dir, "postie.log"), "rb").read()
        for text in (out, r.stderr, log):
            self.assertNotIn(b"p@ss:word", text)

    def test_a_login_in_a_file_others_can_read_is_refused(self):
        self.through("  proxy socks5://me:s3cret@127.0.0.1:1080\n")
        os.chmod(self.conf, 0o644)
        r = self.deliver()
        self.assertEqual(r.returncode, 78, r.stderr)
        self.assertIn("holds a password but other users may read it", r.stderr.decode())
        self.assertNotIn(b"s3cret", r.stderr)

    def test_login_relays_the_mail(self):
        p = self.proxy(users={"me": "s3cret"})
        srv = self.through("  proxy socks5://me:s3cret@127.0.0.1:%d\n" % p.port)
        self.enqueue(["bob@example.com"])
        r = self.deliver()
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(len(srv.messages), 1)
        self.assertEqual(p.targets, [(1, "127.0.0.1", srv.port)])
        # the reply and the greeting came in one write: the greeting was
        # left for the SMTP client
        self.assertEqual(srv.messages[0].rcpts, ["bob@example.com"])

    def test_wrong_password(self):
        p = self.proxy(users={"me": "s3cret"})
        self.through("  proxy socks5://me:wrong@127.0.0.1:%d\n" % p.port)
        qid = self.enqueue(["bob@example.com"])
        r = self.deliver()
        self.assertEqual(r.returncode, 75, r.stderr)
        self.assertIn("it refused the user and password (status 1); check them",
                      self.unreachable_reason(qid))

    def test_proxy_wants_a_login_we_lack(self):
        p = self.proxy(users={"me": "s3cret"})
        self.through("  proxy socks5://127.0.0.1:%d\n" % p.port)
        qid = self.enqueue(["bob@example.com"])
        self.assertEqual(self.deliver().returncode, 75)
        self.assertIn("accepts none of the login methods offered (none); add "
                      "USER:PASSWORD@ to proxy", self.unreachable_reason(qid))

    def test_refusal_code_named(self):
        p = self.proxy(mode="refuse", code=4)
        srv = self.through("  proxy socks5://127.0.0.1:%d\n" % p.port)
        qid = self.enqueue(["bob@example.com"])
        self.assertEqual(self.deliver().returncode, 75)
        self.assertEqual(self.unreachable_reason(qid),
                         "cannot connect to 127.0.0.1 port %d through the proxy 127.0.0.1:%d: "
                         "the proxy refused: host unreachable (4)" % (srv.port, p.port))

    def test_garbage(self):
        p = self.proxy(mode="garbage")
        self.through("  proxy socks5://127.0.0.1:%d\n" % p.port)
        qid = self.enqueue(["bob@example.com"])
        self.assertEqual(self.deliver().returncode, 75)
        self.assertIn("it does not speak SOCKS5", self.unreachable_reason(qid))

    def test_stall_is_bounded_by_the_connect_timeout(self):
        p = self.proxy(mode="stall")
        self.through("  proxy socks5://127.0.0.1:%d\n" % p.port)   # connect-timeout 3s
        qid = self.enqueue(["bob@example.com"])
        t0 = time.time()
        r = self.deliver()
        self.assertEqual(r.returncode, 75, r.stderr)
        self.assertLess(time.time() - t0, 10)
        self.assertIn("no answer to the greeting within 3 s (connect-timeout)",
                      self.unreachable_reason(qid))

    def test_hangup(self):
        p = self.proxy(mode="hangup")
        self.through("  proxy socks5://127.0.0.1:%d\n" % p.port)
        qid = self.enqueue(["bob@example.com"])
        self.assertEqual(self.deliver().returncode, 75)
        self.assertIn("it closed the connection instead of answering the greeting", self.unreachable_reason(qid))

    def test_proxy_down(self):
        port = free_port()
        self.through("  proxy socks5://127.0.0.1:%d\n" % port)
        qid = self.enqueue(["bob@example.com"])
        self.assertEqual(self.deliver().returncode, 75)
        self.assertIn("cannot connect to the proxy 127.0.0.1 port %d: Connection refused" % port,
                      self.unreachable_reason(qid))

    def test_source_address_through_the_proxy(self):
        p = self.proxy()
        srv = self.through("  proxy socks5://127.0.0.1:%d\n  source-address 127.0.0.2\n" % p.port)
        self.enqueue(["bob@example.com"])
        self.assertEqual(self.deliver().returncode, 0)
        self.assertEqual(p.peers, ["127.0.0.2"])
        self.assertEqual(len(srv.messages), 1)


class TestSourceAddress(ReachCase):
    def test_bound_to_the_source_address(self):
        srv = self.through("  source-address 127.0.0.2\n")
        self.enqueue(["bob@example.com"])
        r = self.deliver()
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(srv.peers, ["127.0.0.2"])
        self.assertEqual(len(srv.messages), 1)

    def test_without_it_the_kernel_chooses(self):
        srv = self.through("")
        self.enqueue(["bob@example.com"])
        self.assertEqual(self.deliver().returncode, 0)
        self.assertEqual(srv.peers, ["127.0.0.1"])

    def test_not_an_address_of_this_machine(self):
        self.through("  source-address 192.0.2.7\n")
        qid = self.enqueue(["bob@example.com"])
        r = self.deliver()
        self.assertEqual(r.returncode, 75, r.stderr)
        self.assertEqual(self.unreachable_reason(qid),
                         "cannot bind to source-address 192.0.2.7: Cannot assign requested "
                         "address (it is not an address of this machine now: check "
                         "source-address, or the interface that has it)")
        self.assertEqual(self.msg_ids(), [qid])

    def test_ipv6_source_for_an_ipv4_only_host(self):
        self.through("  source-address ::1\n")
        qid = self.enqueue(["bob@example.com"])
        self.assertEqual(self.deliver().returncode, 75)
        self.assertIn("cannot connect to 127.0.0.1 from source-address ::1: 127.0.0.1 has no "
                      "IPv6 address, and an IPv6 source reaches only those (give a "
                      "source-address of the other family, or none)",
                      self.unreachable_reason(qid))

    def test_a_host_name_is_a_config_error(self):
        self.through("  source-address localhost\n")
        r = self.deliver()
        self.assertEqual(r.returncode, 78, r.stderr)
        self.assertIn("'source-address' must be an IPv4 or IPv6 address", r.stderr.decode())


if __name__ == "__main__":
    unittest.main()
