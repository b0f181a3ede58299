"""fetch confined by Landlock, and its hooks run outside: a write or a
read outside what fetch needs is refused (EACCES) while mail still
arrives; `after` runs once after a run that brought mail (and may write
anywhere the user can); `mailboxes` is written for mutt, and only when
it changed."""
import ctypes
import errno
import os
import signal
import stat
import struct
import subprocess
import time
import unittest

from test_fetch import FetchCase


def landlock_abi():
    """The kernel's Landlock ABI (0: none), asked as fetch asks."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        # landlock_create_ruleset(NULL, 0, LANDLOCK_CREATE_RULESET_VERSION)
        return max(0, libc.syscall(444, None, 0, 1))
    except OSError:
        return 0


def no_landlock():
    """A preexec_fn: from here on landlock_create_ruleset fails with
    ENOSYS (a seccomp filter), as on a kernel without Landlock."""
    libc = ctypes.CDLL(None, use_errno=True)
    ld_w_abs, jeq_k, ret_k = 0x20, 0x15, 0x06
    prog = [
        (ld_w_abs, 0, 0, 4),                # seccomp_data.arch
        (jeq_k, 0, 3, 0xC000003E),          # x86_64, else allow
        (ld_w_abs, 0, 0, 0),                # seccomp_data.nr
        (jeq_k, 0, 1, 444),                 # landlock_create_ruleset
        (ret_k, 0, 0, 0x00050000 | errno.ENOSYS),
        (ret_k, 0, 0, 0x7FFF0000),          # allow
    ]
    buf = ctypes.create_string_buffer(b"".join(struct.pack("HBBI", *i) for i in prog))
    fprog = struct.pack("HxxxxxxP", len(prog), ctypes.addressof(buf))
    fbuf = ctypes.create_string_buffer(fprog)
    if libc.prctl(38, 1, 0, 0, 0) != 0:     # PR_SET_NO_NEW_PRIVS
        raise OSError(ctypes.get_errno(), "no_new_privs")
    if libc.prctl(22, 2, fbuf, 0, 0) != 0:  # PR_SET_SECCOMP, FILTER
        raise OSError(ctypes.get_errno(), "seccomp")


HOOK = """#!/bin/sh
# the after command of the tests: counts its runs, writes outside fetch's
# confinement, fails when told to
echo ran >> "$1"
if [ -n "$2" ]; then echo "$2" >&2; exit 3; fi
exit 0
"""


@unittest.skipUnless(landlock_abi() >= 2, "the kernel has no Landlock (ABI 2 or later)")
class TestConfined(FetchCase):
    def test_a_write_or_read_outside_is_refused_and_mail_arrives(self):
        self.put("1.M1P1.srv")
        outside = os.path.join(self.dir, "escape")
        secret = os.path.join(self.dir, "secret")
        with open(secret, "w") as f:
            f.write("not for fetch\n")
        r = self.fetch("-v", env={"POSTIE_CONFINE_PROBE": outside,
                                  "POSTIE_CONFINE_PROBE_READ": secret})
        err = r.stderr.decode()
        self.assertEqual(r.returncode, 0, err)
        self.assertIn("confined (Landlock ABI %d)" % landlock_abi(), err)
        self.assertIn("confine probe: write %s: errno %d" % (outside, errno.EACCES), err)
        self.assertIn("confine probe: read %s: errno %d" % (secret, errno.EACCES), err)
        self.assertFalse(os.path.exists(outside))
        self.assertEqual(self.local_names(), ["1.M1P1.srv"])
        self.assertIn("confined (Landlock ABI", self.log())

    def test_the_probe_is_allowed_where_fetch_may_write(self):
        # the probe itself works: inside the local Maildir it may create
        inside = os.path.join(self.local, "probe")
        os.makedirs(self.local, exist_ok=True)
        r = self.fetch(env={"POSTIE_CONFINE_PROBE": inside,
                            "POSTIE_CONFINE_PROBE_READ": self.conf})
        err = r.stderr.decode()
        self.assertEqual(r.returncode, 0, err)
        self.assertIn("confine probe: write %s: allowed" % inside, err)
        self.assertIn("confine probe: read %s: allowed" % self.conf, err)
        self.assertTrue(os.path.exists(inside))

    def test_a_kernel_without_landlock_is_said_once_and_fetch_goes_on(self):
        if os.uname().machine != "x86_64":
            self.skipTest("the seccomp filter is written for x86_64")
        self.put("1.M1P1.srv")
        outside = os.path.join(self.dir, "escape")
        env = dict(self.env, POSTIE_CONFINE_PROBE=outside)
        r = subprocess.run([os.path.join(self.bin, "fetch"), "-v"], env=env,
                           capture_output=True, timeout=120, preexec_fn=no_landlock)
        err = r.stderr.decode()
        self.assertEqual(r.returncode, 0, err)
        self.assertEqual(err.count("not confined: the kernel has no Landlock"), 1, err)
        self.assertNotIn("confined (Landlock", err)
        self.assertIn("confine probe: write %s: allowed" % outside, err)
        self.assertEqual(self.local_names(), ["1.M1P1.srv"])

    def test_several_jobs_at_once_confined(self):
        self.put("1.M1P1.srv")
        other = os.path.join(self.dir, "Other")
        other_remote = os.path.join(self.dir, "server", "Other")
        os.makedirs(os.path.join(other_remote, "new"))
        with open(os.path.join(other_remote, "new", "2.M1P1.srv"), "w") as f:
            f.write("Subject: two\n\n2\n")
        self.configure(job_extra="fetch second\n  ssh %s@127.0.0.1:%d\n  ssh-key %s\n"
                       "  remote %s\n  local %s\n" % (
                           self.sshd.user, self.sshd.port, self.key, other_remote, other))
        outside = os.path.join(self.dir, "escape")
        r = self.fetch("-v", env={"POSTIE_CONFINE_PROBE": outside})
        err = r.stderr.decode()
        self.assertEqual(r.returncode, 0, err)
        self.assertIn("errno %d" % errno.EACCES, err)
        self.assertFalse(os.path.exists(outside))
        self.assertEqual(self.local_names(), ["1.M1P1.srv"])
        self.assertEqual(os.listdir(os.path.join(other, "new")), ["2.M1P1.srv"])


class TestAfter(FetchCase):
    def hook(self, fail=""):
        path = os.path.join(self.dir, "hook.sh")
        with open(path, "w") as f:
            f.write(HOOK)
        os.chmod(path, 0o755)
        self.runs = os.path.join(self.dir, "outside", "after-runs")
        os.makedirs(os.path.dirname(self.runs), exist_ok=True)
        self.configure(job_extra='  after "%s %s%s"\n' % (
            path, self.runs, (" " + fail) if fail else ""))

    def count(self):
        return len(open(self.runs).readlines()) if os.path.exists(self.runs) else 0

    def test_once_after_a_run_with_mail_not_after_an_empty_one(self):
        self.hook()
        r = self.fetch()
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(self.count(), 0)       # no mail: not run
        self.put("1.M1P1.srv")
        self.put("2.M1P1.srv")
        r = self.fetch()
        self.assertEqual(r.returncode, 0, r.stderr)
        # it ran once, and wrote outside fetch's confinement
        self.assertEqual(self.count(), 1)
        self.assertIn("after: %s ran" % os.path.join(self.dir, "hook.sh"), self.log())
        r = self.fetch()
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(self.count(), 1)

    def test_a_failure_is_said_and_the_mail_is_kept(self):
        self.hook(fail="index-broken")
        self.put("1.M1P1.srv")
        r = self.fetch()
        err = r.stderr.decode()
        # the mail is safe: fetch's exit is that of the fetch
        self.assertEqual(r.returncode, 0, err)
        self.assertIn("after: %s exited with 3: index-broken" %
                      os.path.join(self.dir, "hook.sh"), err)
        self.assertIn("exited with 3: index-broken", self.log())
        self.assertEqual(self.local_names(), ["1.M1P1.srv"])
        self.assertEqual(self.count(), 1)

    def test_a_fetch_interrupted_takes_its_after_command_along(self):
        pidfile = os.path.join(self.dir, "after.pid")
        path = os.path.join(self.dir, "slow.sh")
        with open(path, "w") as f:
            f.write('#!/bin/sh\necho $$ > "$1.tmp" && mv "$1.tmp" "$1"\nexec sleep 60\n')
        os.chmod(path, 0o755)
        self.configure(job_extra='  after "%s %s"\n' % (path, pidfile))
        self.put("1.M1P1.srv")
        # as a terminal's foreground job: ^C not ignored (a shell that
        # started the suite in the background, or CI, may hand it down
        # ignored, and fetch then rightly keeps running)
        p = subprocess.Popen([os.path.join(self.bin, "fetch")], env=self.env,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                             start_new_session=True,
                             preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
        end = time.time() + 30
        while not os.path.exists(pidfile) and time.time() < end:
            time.sleep(0.02)
        self.assertTrue(os.path.exists(pidfile), "the after command never started")
        pid = int(open(pidfile).read())
        os.killpg(p.pid, signal.SIGINT)     # ^C on its terminal
        # fetch ends, and nothing holds its output open
        out, err = p.communicate(timeout=20)
        end = time.time() + 10
        while time.time() < end:
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                break
            time.sleep(0.05)
        else:
            os.kill(pid, signal.SIGKILL)
            self.fail("the after command outlived the fetch")
        self.assertEqual(self.local_names(), ["1.M1P1.srv"])

    def test_not_run_by_a_dry_run(self):
        self.hook()
        self.put("1.M1P1.srv")
        r = self.fetch("-n")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(self.count(), 0)

    def test_a_relative_command_is_a_config_error(self):
        self.configure(job_extra='  after "notmuch new"\n')
        r = self.fetch()
        self.assertEqual(r.returncode, 78, r.stderr)
        self.assertIn("absolute path", r.stderr.decode())


class TestMailboxes(FetchCase):
    folders = "INBOX .lists.*"

    def setUp(self):
        super().setUp()
        self.file = os.path.join(self.dir, "mutt", "mailboxes")
        os.makedirs(os.path.dirname(self.file))
        self.configure(job_extra="  mailboxes %s\n" % self.file)

    def test_written_for_the_folders_and_left_alone_when_unchanged(self):
        self.put("1.M1P1.srv")
        self.put("2.M1P1.srv", folder=".lists.dev")
        r = self.fetch()
        self.assertEqual(r.returncode, 0, r.stderr)
        want = 'mailboxes "%s" "%s/.lists.dev"\n' % (self.local, self.local)
        self.assertEqual(open(self.file).read(), want)
        st = os.stat(self.file)
        self.assertEqual(stat.S_IMODE(st.st_mode), 0o600)
        time.sleep(0.05)
        r = self.fetch()
        self.assertEqual(r.returncode, 0, r.stderr)
        st2 = os.stat(self.file)
        # unchanged: not rewritten (same file, same mtime)
        self.assertEqual((st2.st_ino, st2.st_mtime_ns), (st.st_ino, st.st_mtime_ns))
        # a new folder (and a name mutt would expand) changes it
        self.put("3.M1P1.srv", folder=".lists.$HOME`x`")
        r = self.fetch()
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(open(self.file).read(),
                         'mailboxes "%s" "%s/.lists.\\$HOME\\`x\\`" "%s/.lists.dev"\n' % (
                             self.local, self.local, self.local))
        self.assertNotEqual(os.stat(self.file).st_ino, st.st_ino)
        self.assertEqual(sorted(n for n in os.listdir(os.path.dirname(self.file))),
                         ["mailboxes"])

    def test_jobs_naming_one_file_share_its_line(self):
        other = os.path.join(self.dir, "Other")
        self.configure(job_extra="  mailboxes %s\nfetch second\n  ssh %s@127.0.0.1:%d\n"
                       "  ssh-key %s\n  remote %s\n  local %s\n  mode copy\n"
                       "  mailboxes %s\n" % (self.file, self.sshd.user, self.sshd.port,
                                              self.key, self.remote, other, self.file))
        self.put("1.M1P1.srv")
        r = self.fetch()
        self.assertEqual(r.returncode, 0, r.stderr)
        want = 'mailboxes "%s" "%s"\n' % (self.local, other)
        self.assertEqual(open(self.file).read(), want)
        # one job run alone still writes the whole line
        os.unlink(self.file)
        r = self.fetch("second")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(open(self.file).read(), want)

    def test_a_failure_is_said_and_the_mail_is_kept(self):
        os.rmdir(os.path.dirname(self.file))
        self.put("1.M1P1.srv")
        r = self.fetch()
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("mailboxes: cannot write", r.stderr.decode())
        self.assertEqual(self.local_names(), ["1.M1P1.srv"])


if __name__ == "__main__":
    unittest.main()
