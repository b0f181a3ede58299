"""fetch with an mda (maildrop and procmail from Debian, and a small
script for exits, signals and the timeout), its journal under crash
injection, and copy mode's retention (keep), against a real sshd."""
import os
import shutil
import signal
import subprocess
import tempfile
import time
import unittest

from test_fetch import FetchCase, ScriptedCase

LIST_MSG = (b"From: Ann <ann@example.org>\nTo: dev@lists.example.org\n"
            b"List-Id: Developers <dev.lists.example.org>\nSubject: patch\n\nthe patch\n")
NAGIOS_MSG = (b"From: Nagios <nagios@monitor.example.com>\nTo: me@example.org\n"
              b"Subject: PROBLEM: disk\n\ndisk is full\n")
PLAIN_MSG = b"From: Bob <bob@example.org>\nTo: me@example.org\nSubject: hi\n\nhello\x00\xff\n"

# stores each message it gets as a file of its own in STORE (the folder
# and name it was given on the first line), exits as EXIT says
SCRIPT_MDA = """#!/bin/sh
store=%(store)s
code=$(cat %(exit)s 2>/dev/null || echo 0)
[ -e "%(exit)s.hang-$2" ] && sleep 30
[ "$code" = slow ] && sleep 1.5 && code=0
[ "$code" = slow-exit ] && { f=$(mktemp -p "$store" m.XXXXXX); { printf '%%s %%s\\n' "$1" "$2"; cat; } > "$f"; sleep 1.5; exit 0; }
case "$code" in
0) f=$(mktemp -p "$store" m.XXXXXX) && { printf '%%s %%s\\n' "$1" "$2"; cat; } > "$f" && exit 0; exit 1 ;;
sleep) sleep 30 ;;
kill) kill -9 $$ ;;
*) echo "no such mailbox: $2" >&2; echo "a second line never shown" >&2; exit "$code" ;;
esac
"""


def maildir_files(root):
    """{path under root: bytes} of every message in a Maildir tree."""
    got = {}
    for dirpath, _, files in os.walk(root):
        if os.path.basename(dirpath) in ("new", "cur"):
            for f in files:
                p = os.path.join(dirpath, f)
                got[os.path.relpath(p, root)] = open(p, "rb").read()
    return got


def state_file(case, name):
    return os.path.join(os.path.dirname(case.queue), "fetch", name)


class MdaCase(FetchCase):
    def script_mda(self):
        """A script MDA; self.set_exit() says how it ends."""
        self.store = os.path.join(self.dir, "store")
        os.mkdir(self.store, 0o700)
        self.exit_file = os.path.join(self.dir, "mda-exit")
        path = os.path.join(self.dir, "mda.sh")
        with open(path, "w") as f:
            f.write(SCRIPT_MDA % {"store": self.store, "exit": self.exit_file})
        os.chmod(path, 0o700)
        return path

    def set_exit(self, code):
        with open(self.exit_file, "w") as f:
            f.write(str(code))

    def stored(self):
        """[(folder, name, message)] the script MDA got."""
        out = []
        for f in sorted(os.listdir(self.store)):
            data = open(os.path.join(self.store, f), "rb").read()
            head, _, msg = data.partition(b"\n")
            folder, name = head.decode().split(" ", 1)
            out.append((folder, name, msg))
        return sorted(out)

    def assert_local_untouched(self):
        """With an mda nothing is linked into local; tmp/ is left empty."""
        self.assertEqual(self.local_names(), [])
        self.assertEqual(self.local_names(sub="cur"), [])
        self.assertEqual(self.local_names(sub="tmp"), [])


class TestMaildrop(MdaCase):
    folders = "INBOX .lists.*"

    def test_sorts_by_list_id_and_drops_nagios(self):
        mail = os.path.join(self.dir, "Mail")
        for d in ("", ".lists.dev", ".lists.other"):
            for sub in ("tmp", "new", "cur"):
                os.makedirs(os.path.join(mail, d, sub))
        flt = os.path.join(self.dir, "mailfilter")
        with open(flt, "w") as f:
            f.write('DEFAULT="%(m)s/"\n'
                    'if (/^List-Id:.*<dev\\.lists\\.example\\.org>/)\n{\n\tto "%(m)s/.lists.dev/"\n}\n'
                    'if (/^From:.*nagios@monitor\\.example\\.com/)\n{\n\tEXITCODE=0\n\texit\n}\n'
                    # the server's folder, as fetch passes it (%%F)
                    'if ("$1" eq ".lists.other")\n{\n\tto "%(m)s/.lists.other/"\n}\n'
                    'to "$DEFAULT"\n' % {"m": mail})
        os.chmod(flt, 0o600)
        self.configure(job_extra="  mda /usr/bin/maildrop %s %%F\n" % flt)
        self.put("1700000000.M1P1.server", LIST_MSG)
        self.put("1700000001.M2P2.server", NAGIOS_MSG)
        self.put("1700000002.M3P3.server,S=%d" % len(PLAIN_MSG), PLAIN_MSG)
        other = self.put("1700000003.M4P4.server", folder=".lists.other")
        r = self.fetch()
        self.assertEqual(r.returncode, 0, r.stderr)
        got = maildir_files(mail)
        by_dir = {}
        for path, data in got.items():
            by_dir.setdefault(os.path.dirname(path), []).append(data)
        # byte for byte what maildrop stored, each where its rule says
        self.assertEqual(by_dir, {".lists.dev/new": [LIST_MSG], "new": [PLAIN_MSG],
                                  ".lists.other/new": [other]})
        # taken from the server (Nagios too: maildrop took it, exit 0)
        self.assertEqual(self.remote_names(), [])
        self.assertEqual(self.remote_names(".lists.other"), [])
        self.assertEqual(self.claimed_names(), [])
        self.assert_local_untouched()
        log = self.log()
        self.assertIn("inbox: INBOX: 1700000001.M2P2.server fetched (%d bytes), handed to the mda"
                      % len(NAGIOS_MSG), log)
        self.assertIn("inbox: .lists.other: 1700000003.M4P4.server fetched (%d bytes), handed to "
                      "the mda" % len(other), log)
        # nothing handed twice: the next run has nothing to do
        r = self.fetch()
        self.assertEqual((r.returncode, r.stderr), (0, b""))
        self.assertEqual(maildir_files(mail), got)
        self.assertEqual(open(state_file(self, "inbox.mda")).read(), "")


class TestProcmail(MdaCase):
    mode = "copy"

    def test_copy_mode_through_procmail_hands_each_once(self):
        mail = os.path.join(self.dir, "pm")
        os.mkdir(mail)
        rc = os.path.join(self.dir, "procmailrc")
        with open(rc, "w") as f:
            f.write("MAILDIR=%s/\n:0\n* ^List-Id:.*<dev\\.lists\\.example\\.org>\n.lists.dev/\n\n"
                    ":0\n./\n" % mail)
        os.chmod(rc, 0o600)
        self.configure(job_extra="  mda /usr/bin/procmail -m %s\n" % rc)
        self.put("1700000000.M1P1.server", LIST_MSG)
        self.put("1700000001.M2P2.server:2,S", PLAIN_MSG, sub="cur")
        r = self.fetch()
        self.assertEqual(r.returncode, 0, r.stderr)
        got = maildir_files(mail)
        self.assertEqual(sorted((os.path.dirname(p), d) for p, d in got.items()),
                         [(".lists.dev/new", LIST_MSG), ("new", PLAIN_MSG)])
        # copy mode: the server keeps them; JOB.seen says they were taken
        self.assertEqual(self.remote_names(), ["1700000000.M1P1.server"])
        self.assertEqual(self.remote_names(sub="cur"), ["1700000001.M2P2.server:2,S"])
        self.assertEqual(sorted(open(state_file(self, "inbox.seen")).read().split()),
                         ["INBOX/1700000000.M1P1.server", "INBOX/1700000001.M2P2.server"])
        self.assert_local_untouched()
        r = self.fetch()
        self.assertEqual((r.returncode, r.stderr), (0, b""))
        self.assertEqual(maildir_files(mail), got)


class TestMdaExits(MdaCase):
    def setUp(self):
        super().setUp()
        self.mda = self.script_mda()
        self.configure(job_extra="  mda %s %%F %%N\n" % self.mda)

    def test_a_full_state_disk_hands_nothing_it_cannot_record(self):
        # the state on a disk that fills up: the room for a message's
        # record (fetch/inbox.mda) is made before the mda takes it, so
        # the mda never gets a message whose hand-over could not be
        # recorded (the next run handed it again: twice at the mda). One
        # page is left free: the claims journal, written first, takes it
        mnt = tempfile.mkdtemp(prefix="postie-state.")
        r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k,mode=0700", "postie-test",
                            mnt], capture_output=True)
        if r.returncode != 0:
            os.rmdir(mnt)
            self.skipTest("cannot mount a tmpfs here: %s" % r.stderr.decode().strip())
        self.addCleanup(os.rmdir, mnt)
        self.addCleanup(subprocess.run, ["umount", "-l", mnt])
        self.queue = os.path.join(mnt, "queue")
        self.configure(job_extra="  mda %s %%F %%N\n" % self.mda)
        self.put("1700000000.a")
        r = self.fetch()
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertTrue(os.path.exists(os.path.join(mnt, "fetch", "inbox.mda")))
        spare = os.path.join(mnt, "spare")
        with open(spare, "wb") as f:
            f.write(b"s" * 4096)
        fill = os.path.join(mnt, "fill")
        fd = os.open(fill, os.O_WRONLY | os.O_CREAT, 0o600)
        try:
            while True:
                os.write(fd, b"x" * 512)
        except OSError:
            pass
        os.close(fd)
        os.unlink(spare)
        names = ["1700000001.b", "1700000002.c", "1700000003.d"]
        for n in names:
            self.put(n)
        r = self.fetch()
        self.assertEqual(r.returncode, 75, r.stderr)
        self.assertIn(b"no room to record what the mda takes in %s: No space left on device"
                      % os.path.join(mnt, "fetch", "inbox.mda").encode(), r.stderr)
        self.assertEqual(len(self.stored()), 1)             # none handed
        self.assertEqual(sorted(self.remote_names() + self.claimed_names()), names)
        os.unlink(fill)
        r = self.fetch()
        self.assertEqual(r.returncode, 0, r.stderr)
        got = [name for _, name, _ in self.stored()]
        self.assertEqual(sorted(got), ["1700000000.a"] + names)      # each once
        self.assertEqual(self.remote_names() + self.claimed_names(), [])

    def test_exit_75_keeps_it_for_the_next_run(self):
        a = self.put("1700000000.a")
        self.set_exit(75)
        r = self.fetch()
        self.assertEqual((r.returncode, r.stderr), (0, b""))
        self.assertEqual(self.stored(), [])
        self.assertEqual(self.remote_names(), ["1700000000.a"])   # given back to new/
        self.assertEqual(self.claimed_names(), [])
        self.assertIn("1700000000.a (%d bytes) deferred by the mda (exit 75: no such mailbox: "
                      "1700000000.a); left on the server for the next run" % len(a), self.log())
        self.set_exit(0)
        r = self.fetch()
        self.assertEqual((r.returncode, r.stderr), (0, b""))
        self.assertEqual(self.stored(), [("INBOX", "1700000000.a", a)])
        self.assertEqual(self.remote_names(), [])
        self.assert_local_untouched()

    def test_exit_1_is_reported_and_kept(self):
        a = self.put("1700000000.a")
        self.set_exit(1)
        r = self.fetch()
        err = r.stderr.decode()
        self.assertEqual(r.returncode, 69, err)
        self.assertIn("fetch: inbox: INBOX: 1700000000.a (%d bytes): the mda %s failed: exit 1: "
                      "no such mailbox: 1700000000.a; left on the server" % (len(a), self.mda), err)
        self.assertNotIn("a second line", err)
        self.assertIn("the mda %s failed on 1 message (said above); it stays on the server"
                      % self.mda, err)
        self.assertEqual(self.remote_names(), ["1700000000.a"])
        self.assertEqual(self.claimed_names(), [])
        self.assert_local_untouched()

    def test_a_signal_and_the_timeout(self):
        self.put("1700000000.a")
        self.configure(job_extra="  mda %s %%F %%N\n  timeout 3s\n" % self.mda)
        self.set_exit("kill")
        r = self.fetch()
        self.assertEqual(r.returncode, 69, r.stderr)
        self.assertIn(b"failed: killed by signal 9", r.stderr)
        # a hung MDA: the first message waits the timeout, the next is
        # tried, and when it hangs too the others are not handed to it
        # this run (each would wait it too: hours for a big folder, the
        # job locked all the while)
        for n in ("1700000001.b", "1700000002.c", "1700000003.d"):
            self.put(n)
        self.configure(job_extra="  mda %s %%F %%N\n  timeout 2s\n" % self.mda)
        self.set_exit("sleep")
        t0 = time.time()
        r = self.fetch()
        self.assertEqual(r.returncode, 69, r.stderr)
        self.assertEqual(r.stderr.count(b"failed: no exit within 2 s (killed)"), 2, r.stderr)
        self.assertIn(b"; the next one is tried (if it hangs too, no more go to it this run)",
                      r.stderr)
        self.assertIn(b"; it hung on the one before too: no more messages go to it this run",
                      r.stderr)
        self.assertIn(b"the mda %s failed on 2 messages (said above), and 2 more were not handed "
                      b"to it after it hung; they stay on the server" % self.mda.encode(),
                      r.stderr)
        self.assertLess(time.time() - t0, 9)
        self.assertEqual(self.remote_names(), ["1700000000.a", "1700000001.b", "1700000002.c",
                                               "1700000003.d"])
        self.assertEqual(self.stored(), [])

    def test_one_message_that_hangs_the_mda_holds_up_no_other(self):
        # a filter stuck on one message (the oldest, so first every run):
        # after its hang the next one is tried, goes, and so do the rest
        self.configure(job_extra="  mda %s %%F %%N\n  timeout 2s\n" % self.mda)
        names = ["1700000000.poison", "1700000001.b", "1700000002.c"]
        for n in names:
            self.put(n)
        open(self.exit_file + ".hang-1700000000.poison", "w").close()
        for _ in range(2):
            r = self.fetch()
            self.assertEqual(r.returncode, 69, r.stderr)
            self.assertIn(b"1700000000.poison", r.stderr)
            self.assertEqual(self.remote_names(), ["1700000000.poison"])
        self.assertEqual([n for _, n, _ in self.stored()], names[1:])   # each once

    def test_stopped_while_the_mda_delivers(self):
        # ^C (SIGINT to the whole foreground group: fetch, its job, the
        # command runner) while the mda has stored a message and not yet
        # exited: killed then, the message was handed again by the next
        # run. Now the mda is waited for and recorded, nothing more is
        # handed, and the next run hands each of the rest once.
        names = ["1700000000.M%dP%d.server" % (i, i) for i in range(3)]
        data = {n: self.put(n) for n in names}
        self.configure(job_extra="  mda %s %%F %%N\n  timeout 10s\n" % self.mda)
        self.set_exit("slow-exit")
        p = subprocess.Popen([os.path.join(self.bin, "fetch")], env=self.env,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                             start_new_session=True,
                             preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
        end = time.time() + 30
        while not os.listdir(self.store) and time.time() < end:
            time.sleep(0.02)
        os.killpg(p.pid, signal.SIGINT)
        out, err = p.communicate(timeout=30)
        self.assertEqual(p.returncode, 75, err)
        self.assertIn(b"stopped (Interrupt): what was fetched is kept; the next run goes on",
                      err)
        self.assertNotIn(b"broke", err)      # a stop is no broken connection
        self.assertEqual(len(self.stored()), 1, err)
        self.set_exit(0)
        r = self.fetch()
        self.assertEqual((r.returncode, r.stderr), (0, b""))
        self.assertEqual(self.stored(), sorted(("INBOX", n, data[n]) for n in names))
        self.assertEqual(self.remote_names(), [])
        self.assertEqual(self.claimed_names(), [])

    def test_a_slow_mda_does_not_count_against_the_deadline(self):
        # the run's deadline is 3 x timeout (3 s) plus the bytes at 8 KiB/s:
        # seven messages through an MDA taking 1.5 s each outlast it
        names = ["1700000000.M%dP%d.server" % (i, i) for i in range(7)]
        data = {n: self.put(n) for n in names}
        self.configure(job_extra="  mda %s %%F %%N\n  timeout 3s\n" % self.mda)
        self.set_exit("slow")
        r = self.fetch()
        self.assertEqual((r.returncode, r.stderr), (0, b""))
        self.assertEqual(self.stored(), sorted(("INBOX", n, data[n]) for n in names))
        self.assertEqual(self.remote_names(), [])
        self.assertEqual(self.claimed_names(), [])

    def test_an_mda_others_may_change_is_refused(self):
        self.put("1700000000.a")
        os.chmod(self.mda, 0o722)
        r = self.fetch()
        self.assertEqual(r.returncode, 78, r.stderr)
        self.assertIn(b"writable by other users", r.stderr)
        self.assertEqual(self.remote_names(), ["1700000000.a"])


class MdaCrashCase(MdaCase):
    def fresh(self, names):
        for root in (self.remote, self.local):
            for sub in ("tmp", "new", "cur", "postie-claims/" + self.client):
                d = os.path.join(root, sub)
                if os.path.isdir(d):
                    for f in os.listdir(d):
                        os.unlink(os.path.join(d, f))
        for f in os.listdir(self.store):
            os.unlink(os.path.join(self.store, f))
        shutil.rmtree(os.path.dirname(state_file(self, "x")), ignore_errors=True)
        return {n: self.put(n) for n in names}

    def check_every_step(self):
        names = ["1700000000.M%dP%d.server" % (i, i) for i in range(3)]
        step, trace = 1, b""
        while True:
            data = self.fresh(names)
            r = self.fetch(env={"POSTIE_CRASH_AT": str(step), "POSTIE_CRASH_TRACE": "1"})
            crashed = r.returncode == -9
            r2 = self.fetch()
            self.assertEqual(r2.returncode, 0, r2.stderr)
            # each message reached the mda exactly once, whole
            self.assertEqual(self.stored(), sorted(("INBOX", n, data[n]) for n in names),
                             "crash point %d" % step)
            if self.mode == "move":
                self.assertEqual(self.remote_names(), [], "crash point %d" % step)
                self.assertEqual(self.claimed_names(), [], "crash point %d" % step)
            self.assert_local_untouched()
            if not crashed:
                return step, trace
            trace = r.stderr
            step += 1


class TestMdaCrash(MdaCrashCase):
    def test_kill_at_every_step_hands_each_once(self):
        self.script_mda()
        self.configure(job_extra="  mda %s %%F %%N\n" % os.path.join(self.dir, "mda.sh"))
        step, trace = self.check_every_step()
        self.assertGreaterEqual(step, 1 + 3 * 4 + 1)
        for kind in (b"claimed on the server", b"downloaded into tmp/",
                     b"handed to the mda, recorded", b"removed on the server",
                     b"mda journal rewritten"):
            self.assertIn(kind, trace)

    def test_killed_after_the_mda_took_it(self):
        self.script_mda()
        self.configure(job_extra="  mda %s %%F %%N\n" % os.path.join(self.dir, "mda.sh"))
        a = self.put("1700000000.a")
        r = self.fetch(env={"POSTIE_CRASH_TRACE": "1", "POSTIE_CRASH_AT": "1000"})
        steps = [l.split(b" ", 2) for l in r.stderr.splitlines() if l.startswith(b"crashpoint ")]
        at = [int(n) for _, n, kind in steps if kind == b"handed to the mda, recorded"][0]
        self.fresh([])
        a = self.put("1700000000.a")
        r = self.fetch(env={"POSTIE_CRASH_AT": str(at)})
        self.assertEqual(r.returncode, -9)
        # the mda has it, the journal says so, the server still has it
        self.assertEqual(self.stored(), [("INBOX", "1700000000.a", a)])
        self.assertEqual(open(state_file(self, "inbox.mda")).read(), "INBOX/1700000000.a\n")
        self.assertEqual(self.claimed_names(), ["1700000000.a"])
        r = self.fetch("-n")
        self.assertEqual(r.stdout, b"inbox INBOX 1700000000.a %d handed to the mda before, "
                         b"removed\n" % len(a))
        self.assertEqual(self.claimed_names(), ["1700000000.a"])
        r = self.fetch()
        self.assertEqual((r.returncode, r.stderr), (0, b""))
        # not handed again, removed on the server, forgotten
        self.assertEqual(self.stored(), [("INBOX", "1700000000.a", a)])
        self.assertEqual(self.claimed_names(), [])
        self.assertEqual(self.remote_names(), [])
        self.assertEqual(open(state_file(self, "inbox.mda")).read(), "")
        self.assertIn("1700000000.a (%d bytes) was handed to the mda by a run cut off; not "
                      "again, removed from the server" % len(a), self.log())


    def test_the_journal_is_honoured_after_the_mda_is_gone(self):
        # killed after the MDA's exit 0; then the user drops `mda`: the
        # message is not fetched into local (the MDA had it), only removed
        self.script_mda()
        self.configure(job_extra="  mda %s %%F %%N\n" % os.path.join(self.dir, "mda.sh"))
        self.put("1700000000.a")
        r = self.fetch(env={"POSTIE_CRASH_TRACE": "1", "POSTIE_CRASH_AT": "1000"})
        steps = [l.split(b" ", 2) for l in r.stderr.splitlines() if l.startswith(b"crashpoint ")]
        at = [int(n) for _, n, kind in steps if kind == b"handed to the mda, recorded"][0]
        self.fresh([])
        a = self.put("1700000000.a")
        r = self.fetch(env={"POSTIE_CRASH_AT": str(at)})
        self.assertEqual(r.returncode, -9)
        self.configure()
        b = self.put("1700000001.b")
        r = self.fetch()
        self.assertEqual((r.returncode, r.stderr), (0, b""))
        self.assertEqual(self.stored(), [("INBOX", "1700000000.a", a)])
        self.assertEqual(self.local_names(), ["1700000001.b"])
        self.assertEqual(self.local_data("1700000001.b"), b)
        self.assertEqual(self.claimed_names() + self.remote_names(), [])


class TestMdaCrashCopy(MdaCrashCase):
    mode = "copy"

    def test_kill_at_every_step_hands_each_once(self):
        self.script_mda()
        self.configure(job_extra="  mda %s %%F %%N\n" % os.path.join(self.dir, "mda.sh"))
        step, trace = self.check_every_step()
        self.assertIn(b"handed to the mda, recorded", trace)


if __name__ == "__main__":
    unittest.main()


class TestKeep(FetchCase):
    mode = "copy"
    folders = "INBOX .lists.*"

    def aged(self, name, days, folder="", sub="new", data=None):
        """A message whose file time is `days' ago."""
        data = self.put(name, data, folder, sub)
        t = time.time() - days * 86400
        os.utime(os.path.join(self.remote, folder, sub, name), (t, t))
        return data

    def test_old_ones_go_once_fetched_young_ones_stay(self):
        now = int(time.time())
        young = "%d.M2P2.server" % (now - 86400)
        self.put("1700000000.M1P1.server")                       # 2023, by its name
        self.put(young)
        self.aged("1700000005.M5P5.server:2,S", 0, sub="cur")     # the name wins over mtime
        self.aged("no-time-in-name", 60)                          # by the file's time
        self.aged("young-no-time", 1)
        self.aged("1700000009.M9P9.big", 0, data=b"x" * 4096)    # over max-size: never local
        self.configure("max-size 1k\n", job_extra="  keep 30d\n")
        r = self.fetch()
        err = r.stderr.decode()
        self.assertEqual(r.returncode, 0, err)
        self.assertIn("1700000009.M9P9.big: refused: 4096 bytes is over max-size", err)
        self.assertEqual(self.local_names(), sorted(["1700000000.M1P1.server", young,
                                                     "no-time-in-name", "young-no-time"]))
        self.assertEqual(self.local_names(sub="cur"), ["1700000005.M5P5.server:2,S"])
        # removed once fetched: the old ones; never one not local
        self.assertEqual(self.remote_names(), sorted([young, "young-no-time", "1700000009.M9P9.big"]))
        self.assertEqual(self.remote_names(sub="cur"), [])
        log = self.log()
        self.assertIn("inbox: INBOX: 1700000000.M1P1.server (%d bytes) removed from the server "
                      "(older than its keep age)" % len(BODY("1700000000.M1P1.server")), log)
        self.assertIn("3 removed (keep)", log)
        r = self.fetch()
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(len(self.local_names()), 4)
        self.assertEqual(len(self.remote_names()), 3)

    def test_per_folder_globs_and_forever(self):
        self.put("1700000000.M1P1.inbox")
        self.aged("1700000001.M1P1.dev", 0, folder=".lists.dev")
        self.put("%d.M1P1.devyoung" % (int(time.time()) - 3600), folder=".lists.dev")
        self.put("1700000002.M1P1.arch", folder=".Archive")
        self.folders = "*"
        self.configure(job_extra="  keep forever\n  keep lists.* 1d\n  keep .Arch* 0\n")
        r = self.fetch()
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(self.remote_names(), ["1700000000.M1P1.inbox"])          # forever
        self.assertEqual(len(self.remote_names(".lists.dev")), 1)                 # the young one
        self.assertTrue(self.remote_names(".lists.dev")[0].endswith(".devyoung"))
        self.assertEqual(self.remote_names(".Archive"), [])
        self.assertEqual(len(self.local_names(".lists.dev")), 2)
        self.assertEqual(self.local_names(".Archive"), ["1700000002.M1P1.arch"])

    def test_fetched_before_goes_later_and_dry_run_lists_it(self):
        self.put("1700000000.M1P1.server")
        self.put("1700000001.M1P1.server")
        r = self.fetch()
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(len(self.remote_names()), 2)
        # the user deletes one local copy; keep is added later
        os.unlink(os.path.join(self.local, "new", "1700000000.M1P1.server"))
        self.put("1700000002.M1P1.server")
        self.configure(job_extra="  keep 30d\n")
        r = self.fetch("-n")
        self.assertEqual(r.returncode, 0, r.stderr)
        out = r.stdout.decode()
        self.assertRegex(out, r"inbox INBOX 1700000000.M1P1.server \d+ fetched before, removed "
                              r"\(\d+ days old, keep 30d\)\n")
        self.assertRegex(out, r"inbox INBOX 1700000002.M1P1.server \d+, then removed "
                              r"\(\d+ days old, keep 30d\)\n")
        self.assertEqual(len(self.remote_names()), 3)                              # -n: nothing
        r = self.fetch()
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(self.remote_names(), [])
        self.assertEqual(self.local_names(), ["1700000001.M1P1.server", "1700000002.M1P1.server"])

    def test_keep_in_move_mode_is_a_config_error(self):
        self.mode = "move"
        self.configure(job_extra="  keep 30d\n")
        r = self.fetch()
        self.assertEqual(r.returncode, 78, r.stderr)
        self.assertIn(b"'keep' is for 'mode copy'", r.stderr)

    def test_kill_at_every_step_never_removes_what_is_not_local(self):
        names = ["1700000000.M%dP%d.server" % (i, i) for i in range(3)]
        self.configure(job_extra="  keep 30d\n")
        step, trace = 1, b""
        while True:
            for root in (self.remote, self.local):
                for sub in ("tmp", "new", "cur"):
                    d = os.path.join(root, sub)
                    for f in (os.listdir(d) if os.path.isdir(d) else []):
                        os.unlink(os.path.join(d, f))
            shutil.rmtree(os.path.dirname(state_file(self, "x")), ignore_errors=True)
            data = {n: self.put(n) for n in names}
            r = self.fetch(env={"POSTIE_CRASH_AT": str(step), "POSTIE_CRASH_TRACE": "1"})
            crashed = r.returncode == -9
            for n in names:     # after the kill: on the server, or here (whole)
                here = n in self.local_names()
                self.assertTrue(n in self.remote_names() or here, "crash point %d: %s" % (step, n))
                if here:
                    self.assertEqual(self.local_data(n), data[n])
            r2 = self.fetch()
            self.assertEqual(r2.returncode, 0, r2.stderr)
            self.assertEqual(self.local_names(), names, "crash point %d" % step)
            self.assertEqual(self.remote_names(), [], "crash point %d" % step)
            if not crashed:
                break
            trace = r.stderr
            step += 1
        self.assertIn(b"removed on the server (keep)", trace)


class TestKeepRefusedDownload(ScriptedCase):
    mode = "copy"

    def test_an_old_message_that_fails_its_download_stays(self):
        self.put("1700000000.grows")
        ok = self.put("1700000001.ok")
        self.set_rules({"grow": {"1700000000.grows": "more bytes"}})
        self.configure(job_extra="  keep 30d\n")
        r = self.fetch()
        self.assertIn(b"1700000000.grows: refused: it grew while being fetched", r.stderr)
        self.assertEqual(self.local_names(), ["1700000001.ok"])
        self.assertEqual(self.local_data("1700000001.ok"), ok)
        # not local, so never removed; the one fetched is
        self.assertEqual(self.remote_names(), ["1700000000.grows"])


class TestLocalNeverRewritten(FetchCase):
    """A server that changes a message after it was fetched cannot
    change the local copy: local files are only ever linked, never
    written again under their name."""

    def snapshot(self):
        out = {}
        for sub in ("new", "cur"):
            for n in self.local_names(sub=sub):
                p = os.path.join(self.local, sub, n)
                out[(sub, n)] = (os.stat(p).st_ino, open(p, "rb").read())
        return out

    def edit(self, name, data, sub="new"):
        """The server rewrites a file in place, keeping its name."""
        with open(os.path.join(self.remote, sub, name), "r+b") as f:
            f.truncate(0)
            f.write(data)

    def test_copy_mode(self):
        self.mode = "copy"
        self.configure()
        a = self.put("1700000000.a")
        self.put("1700000001.b:2,S", sub="cur")
        r = self.fetch()
        self.assertEqual(r.returncode, 0, r.stderr)
        before = self.snapshot()
        self.assertEqual(before[("new", "1700000000.a")][1], a)
        seen = state_file(self, "inbox.seen")
        for forget in (False, True):
            # the same size, other bytes; then another size
            for data in (bytes(len(a)), b"changed by the server\n"):
                self.edit("1700000000.a", data)
                self.edit("1700000001.b:2,S", data, sub="cur")
                if forget:      # even with the record of what was fetched gone
                    os.unlink(seen)
                r = self.fetch()
                self.assertEqual(r.returncode, 0, r.stderr)
                self.assertEqual(self.snapshot(), before, (forget, data))
                self.assertEqual(self.local_names(sub="tmp"), [])

    def test_move_mode(self):
        a = self.put("1700000000.a")
        r = self.fetch()
        self.assertEqual(r.returncode, 0, r.stderr)
        before = self.snapshot()
        # the server delivers other bytes again under the same name
        self.put("1700000000.a", bytes(len(a)))
        r = self.fetch()
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(self.snapshot(), before)
        self.put("1700000000.a", b"changed by the server\n")
        r = self.fetch()
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn(b"a different message of that name is here already; left on the server",
                      r.stderr)
        self.assertEqual(self.snapshot(), before)
        self.assertEqual(self.remote_names(), ["1700000000.a"])


def BODY(name):
    return b"From: a@example.org\nTo: b@example.org\nSubject: %s\n\nbody %s\n" % (
        name.encode(), name.encode())


class TestMessageLog(FetchCase):
    """Each message moved or refused is in the log by name, with its
    size and its folder."""
    folders = "INBOX .lists.*"

    def test_moved_and_refused_lines(self):
        a = self.put("1700000000.M1P1.server")
        b = self.put("1700000001.M1P1.server", folder=".lists.dev")
        os.symlink("/etc/passwd", os.path.join(self.remote, ".lists.dev", "new", "1700000002.link"))
        self.put("1700000003.big", b"x" * 3000, folder=".lists.dev")
        self.put("1700000004.bad\x01name")
        self.configure("max-size 2k\n")
        r = self.fetch()
        self.assertEqual(r.returncode, 0, r.stderr)
        log = self.log()
        self.assertIn("inbox: INBOX: 1700000000.M1P1.server fetched (%d bytes)" % len(a), log)
        self.assertIn("inbox: .lists.dev: 1700000001.M1P1.server fetched (%d bytes)" % len(b), log)
        self.assertIn("inbox: %s/.lists.dev/new/1700000002.link: refused: not a regular file (a "
                      "symbolic link, never followed)" % self.remote, log)
        self.assertIn("inbox: %s/.lists.dev/new/1700000003.big: refused: 3000 bytes is over "
                      "max-size" % self.remote, log)
        self.assertRegex(log, r"inbox: %s/new/1700000004.bad\?name: refused: a control character "
                              r"in the name \(\d+ bytes\)" % self.remote)
        # the same message again on the server: already here, by size
        self.put("1700000000.M1P1.server", a)
        r = self.fetch()
        self.assertIn("inbox: INBOX: 1700000000.M1P1.server already here, removed from the server "
                      "(%d bytes)" % len(a), self.log())
