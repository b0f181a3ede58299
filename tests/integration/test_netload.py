"""The network module where the kernel limits code in memory:
vm.memfd_noexec (Linux 6.3+), set in a private PID namespace so that the
machine's own value is never touched. Linux 6.3 to 6.6 at 2 refuse any
memfd that is not MFD_NOEXEC_SEAL (later kernels seal it silently); a
seccomp filter in the child reproduces that refusal, and a refusal of
every memfd (a stricter policy), here."""
import ctypes
import os
import platform
import shutil
import struct
import subprocess
import unittest

from pt import POSTIE
from test_deliver import DeliverCase

KNOB = "/proc/sys/vm/memfd_noexec"
MFD_NOEXEC_SEAL = 0x8

# (audit arch, memfd_create's number) per machine
ARCH = {"x86_64": (0xC000003E, 319), "aarch64": (0xC00000B7, 279)}

CHILD = r"""
import ctypes, os, struct, sys
value, refuse, audit, nr = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
open(%r, "w").write(value)
if refuse != "none":
    def ins(code, jt, jf, k):
        return struct.pack("=HBBI", code, jt, jf, k)
    LD, JEQ, JSET, RET = 0x20, 0x15, 0x45, 0x06
    ALLOW, EACCES = 0x7FFF0000, 0x00050000 | 13
    if refuse == "unsealed":    # Linux 6.3 to 6.6 at vm.memfd_noexec=2
        prog = (ins(LD, 0, 0, 4) + ins(JEQ, 0, 5, audit) + ins(LD, 0, 0, 0) +
                ins(JEQ, 0, 3, nr) + ins(LD, 0, 0, 24) + ins(JSET, 1, 0, %d))
    else:
        prog = (ins(LD, 0, 0, 4) + ins(JEQ, 0, 3, audit) + ins(LD, 0, 0, 0) +
                ins(JEQ, 0, 1, nr))
    prog += ins(RET, 0, 0, EACCES) + ins(RET, 0, 0, ALLOW)
    buf = ctypes.create_string_buffer(prog)
    fprog = struct.pack("=HxxxxxxQ", len(prog) // 8, ctypes.addressof(buf))
    libc = ctypes.CDLL(None, use_errno=True)
    fp = ctypes.create_string_buffer(fprog)
    if libc.prctl(38, 1, 0, 0, 0) != 0 or libc.prctl(22, 2, fp, 0, 0) != 0:
        sys.exit("seccomp: %%s" %% os.strerror(ctypes.get_errno()))
os.execv(sys.argv[5], sys.argv[5:])
""" % (KNOB, MFD_NOEXEC_SEAL)


def knob():
    with open(KNOB) as f:
        return f.read().strip()


@unittest.skipUnless(os.path.exists(KNOB), "this kernel has no vm.memfd_noexec")
@unittest.skipUnless(platform.machine() in ARCH, "no seccomp numbers for this machine")
class TestMemfdNoexec(DeliverCase):
    def setUp(self):
        super().setUp()
        self.outside = knob()
        self.addCleanup(lambda: self.assertEqual(knob(), self.outside,
                                                 "the machine's vm.memfd_noexec changed"))

    def deliver_under(self, value, binary, refuse="none"):
        """deliver run by binary with vm.memfd_noexec=value in its own PID
        namespace; refuse: "unsealed" memfds (as Linux 6.3 to 6.6 at 2),
        "all" of them, or "none"."""
        link = os.path.join(self.dir, "nsbin", "deliver")
        os.makedirs(os.path.dirname(link), exist_ok=True)
        if os.path.lexists(link):
            os.unlink(link)
        os.symlink(binary, link)
        audit, nr = ARCH[platform.machine()]
        return subprocess.run(["unshare", "--pid", "--fork", "--mount-proc", "python3", "-c",
                               CHILD, value, refuse, str(audit), str(nr), link],
                              env=self.env, capture_output=True, timeout=60)

    def lone_binary(self, beside=None):
        """A copy of postie in a directory of its own, with beside (bytes)
        as its postie-net.so if given."""
        d = os.path.join(self.dir, "lone")
        os.mkdir(d)
        shutil.copy(POSTIE, os.path.join(d, "postie"))
        if beside is not None:
            with open(os.path.join(d, "postie-net.so"), "wb") as f:
                f.write(beside)
        return os.path.join(d, "postie")

    def module(self):
        with open(os.path.join(os.path.dirname(os.path.realpath(POSTIE)), "postie-net.so"),
                  "rb") as f:
            return f.read()

    def assertDelivered(self, r, srv):
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual([m.rcpts for m in srv.messages], [["bob@example.com"]])
        self.assertEqual(self.msg_ids(), [])

    def test_noexec_2_delivers_from_memory(self):
        # a sealed memfd: no copy of the module anywhere, still delivered
        srv = self.start()
        self.enqueue(["bob@example.com"])
        self.assertDelivered(self.deliver_under("2", self.lone_binary(), "unsealed"), srv)

    def test_noexec_1_delivers_from_memory(self):
        srv = self.start()
        self.enqueue(["bob@example.com"])
        self.assertDelivered(self.deliver_under("1", self.lone_binary()), srv)

    def test_no_memfd_at_all_delivers_with_the_copy_beside_the_binary(self):
        srv = self.start()
        self.enqueue(["bob@example.com"])
        self.assertDelivered(self.deliver_under("2", os.path.realpath(POSTIE), "all"), srv)

    def test_no_memfd_and_no_copy_is_a_clear_error(self):
        self.start()
        qid = self.enqueue(["bob@example.com"])
        r = self.deliver_under("2", self.lone_binary(), "all")
        self.assertEqual(r.returncode, 69, r.stderr)
        err = r.stderr.decode()
        self.assertTrue(err.startswith("deliver: cannot load the network module: not from "
                                       "memory (Permission denied)"), err)
        self.assertIn("make install", err)
        self.assertEqual(self.msg_ids(), [qid])

    def test_a_copy_that_is_not_this_build_is_not_loaded(self):
        self.start()
        mod = bytearray(self.module())
        mod[len(mod) // 2] ^= 1
        r = self.deliver_under("2", self.lone_binary(bytes(mod)), "all")
        self.assertEqual(r.returncode, 69, r.stderr)
        self.assertIn("no copy of this build's module", r.stderr.decode())

    def test_a_copy_others_can_write_is_not_loaded(self):
        self.start()
        binary = self.lone_binary(self.module())
        os.chmod(os.path.join(os.path.dirname(binary), "postie-net.so"), 0o666)
        r = self.deliver_under("2", binary, "all")
        self.assertEqual(r.returncode, 69, r.stderr)


if __name__ == "__main__":
    unittest.main()


class TestExports(unittest.TestCase):
    """The executable exports what the module needs from the core (and
    the calls it interposes), not every symbol."""

    def symbols(self, *args):
        out = subprocess.run(["nm"] + list(args), capture_output=True).stdout
        return {line.split()[-1] for line in out.decode().splitlines()
                if len(line.split()) >= 2 and not line.endswith(":")}

    def test_only_what_the_module_needs(self):
        build = os.path.dirname(os.path.realpath(POSTIE))
        core = self.symbols("--defined-only", "--extern-only",
                            os.path.join(build, "libpostie.a"))
        needed = self.symbols("-D", "--undefined-only", os.path.join(build, "postie-net.so"))
        exported = self.symbols("-D", "--defined-only", os.path.realpath(POSTIE))
        self.assertIn("queue_open", exported)
        self.assertNotIn("cli_command", exported)
        self.assertEqual((exported & core) - needed - {"connect", "dlopen"}, set())
