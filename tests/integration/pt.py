"""Helpers for the integration tests: a private config, queue and
command links per test, and readers for the on-disk queue format."""
import os
import shutil
import signal
import subprocess
import tempfile
import time
import unittest

POSTIE = os.environ.get("POSTIE_BIN", "build/postie")


class QueueCase(unittest.TestCase):
    """Each test gets a temp dir with a config, a queue and a bin/ dir of
    links (sendmail, mailq, deliver, fetch) to the binary under test."""

    config_extra = ""

    def setUp(self):
        self.dir = tempfile.mkdtemp(prefix="postie-it.")
        self.addCleanup(shutil.rmtree, self.dir, ignore_errors=True)
        self.queue = os.path.join(self.dir, "queue")
        self.conf = os.path.join(self.dir, "postie.conf")
        self.write_config(self.config_extra)
        self.bin = os.path.join(self.dir, "bin")
        os.mkdir(self.bin)
        for name in ("sendmail", "mailq", "deliver", "fetch"):
            os.symlink(POSTIE, os.path.join(self.bin, name))
        self.env = dict(os.environ)
        self.env.update(HOME=self.dir, USER="tester", LC_ALL="C",
                        POSTIE_CONFIG=self.conf)
        for k in ("XDG_CONFIG_HOME", "XDG_STATE_HOME", "POSTIE_CRASH_AT",
                  "POSTIE_CRASH_TRACE"):
            self.env.pop(k, None)

    def write_config(self, extra, log="stderr-less"):
        text = "queue %s\n" % self.queue
        text += "log %s\n" % os.path.join(self.dir, "postie.log")
        text += extra
        with open(self.conf, "w") as f:
            f.write(text)
        os.chmod(self.conf, 0o600)

    def run_cmd(self, name, args, data=b"", env=None, timeout=60):
        """Run bin/NAME ARGS with DATA on stdin."""
        e = dict(self.env)
        if env:
            e.update(env)
        return subprocess.run([os.path.join(self.bin, name)] + list(args),
                              input=data, capture_output=True, env=e,
                              timeout=timeout)

    def stderr_gap(self, name, args, after, until=None, timeout=60):
        """Run bin/NAME ARGS (exit 0 expected); seconds from the stderr
        line holding `after' (bytes) to the next line holding `until', or
        to the end when until is None."""
        p = subprocess.Popen([os.path.join(self.bin, name)] + list(args), env=self.env,
                             stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        t_after = t_until = None
        lines = []
        for line in p.stderr:
            lines.append(line)
            if t_after is None and after in line:
                t_after = time.monotonic()
            elif t_after is not None and t_until is None and until is not None and until in line:
                t_until = time.monotonic()
        rc = p.wait(timeout=timeout)
        end = time.monotonic()
        self.assertEqual(rc, 0, b"".join(lines)[-2000:])
        self.assertIsNotNone(t_after, b"".join(lines)[-2000:])
        if until is not None:
            self.assertIsNotNone(t_until, b"".join(lines)[-2000:])
        return (t_until if until is not None else end) - t_after

    def run_cmd_tty(self, name, args, env=None, timeout=60):
        """Run bin/NAME ARGS with stderr on a terminal (a pty); returns
        (exit code, what the terminal showed)."""
        import pty
        import select
        e = dict(self.env)
        if env:
            e.update(env)
        master, slave = pty.openpty()
        p = subprocess.Popen([os.path.join(self.bin, name)] + list(args), env=e,
                             stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                             stderr=slave)
        os.close(slave)
        out = b""
        try:
            while select.select([master], [], [], timeout)[0]:
                try:
                    chunk = os.read(master, 65536)
                except OSError:         # EIO: the last writer is gone
                    break
                if not chunk:
                    break
                out += chunk
        finally:
            os.close(master)
        return p.wait(timeout=timeout), out.decode(errors="replace")

    def sendmail(self, args, data, **kw):
        return self.run_cmd("sendmail", args, data, **kw)

    def msg_ids(self):
        d = os.path.join(self.queue, "msg")
        return sorted(os.listdir(d)) if os.path.isdir(d) else []

    def tmp_files(self):
        d = os.path.join(self.queue, "tmp")
        return sorted(os.listdir(d)) if os.path.isdir(d) else []

    def read_msg(self, qid):
        return read_queue_file(os.path.join(self.queue, "msg", qid))

    def only_msg(self):
        ids = self.msg_ids()
        self.assertEqual(len(ids), 1, "expected one queued message: %r" % ids)
        return self.read_msg(ids[0])

    def assertQueued(self, r):
        self.assertEqual(r.returncode, 0, "stderr: %r" % r.stderr)

    def assertNothingQueued(self):
        self.assertEqual(self.msg_ids(), [])
        self.assertEqual(self.tmp_files(), [])


def read_queue_file(path):
    """(envelope dict, message bytes). rcpt is a list."""
    with open(path, "rb") as f:
        data = f.read()
    end = data.index(b"\nend\n") + 5
    head = data[:end].decode("ascii").splitlines()
    assert head[0] == "postie-queue 1", head[0]
    env = {"rcpt": []}
    for line in head[1:-1]:
        k, _, v = line.partition(" ")
        if k == "rcpt":
            env["rcpt"].append(v)
        else:
            env[k] = v
    return env, data[end:]


def kill_group(p):
    try:
        os.killpg(p.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def default_stop_signals():
    """preexec_fn for a command the test will stop with SIGINT, SIGTERM or
    SIGHUP: a shell that started the suite in the background (CI, a
    script) hands SIGINT down ignored, and postie rightly keeps what it
    was given ignored, as a terminal's foreground job would not."""
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, signal.SIG_DFL)
