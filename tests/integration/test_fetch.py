"""fetch against a real OpenSSH sshd (SFTP) on loopback, started by the
test: a server Maildir under a temp dir, a local one; move and copy mode,
folders, hostile names and files, already-here, crash injection at every
durable step, a dropped link, the lock and the exit codes."""
import fcntl
import json
import os
import shutil
import random
import signal
import socket
import subprocess
import tempfile
import threading
import time
import unittest

import sshd
from latency import LatencyProxy
from pt import QueueCase

BODY = b"From: a@example.org\nTo: b@example.org\nSubject: %s\n\nbody %s\n"


@unittest.skipUnless(sshd.available(), "OpenSSH sshd and ssh-keygen are needed (openssh-server)")
class FetchCase(QueueCase):
    mode = "move"
    folders = "INBOX"
    client = "laptop"

    def setUp(self):
        super().setUp()
        ssh_dir = os.path.join(self.dir, ".ssh")
        os.mkdir(ssh_dir, 0o700)
        self.key = sshd.keygen(os.path.join(self.dir, "user_key"))
        self.sshd = sshd.Sshd(authorized=[self.key + ".pub"], subsystem=self.subsystem())
        self.addCleanup(self.sshd.stop)
        with open(os.path.join(ssh_dir, "known_hosts"), "w") as f:
            f.write(self.sshd.known_hosts_line())
        self.remote = os.path.join(self.dir, "server", "Maildir")
        self.local = os.path.join(self.dir, "Maildir")
        for sub in ("tmp", "new", "cur"):
            os.makedirs(os.path.join(self.remote, sub))
        self.configure()

    def configure(self, extra="", job_extra=""):
        self.write_config(
            extra +
            "fetch inbox\n  ssh %s@127.0.0.1:%d\n  ssh-key %s\n  remote %s\n  local %s\n"
            "  folders %s\n  mode %s\n  client %s\n" % (
                self.sshd.user, getattr(self, "port", self.sshd.port), self.key, self.remote,
                self.local, self.folders, self.mode, self.client)
            + job_extra)

    def subsystem(self):
        return "internal-sftp"

    def put(self, name, data=None, folder="", sub="new"):
        d = os.path.join(self.remote, folder, sub)
        os.makedirs(d, exist_ok=True)
        data = data if data is not None else BODY % (name.encode(), name.encode())
        with open(os.path.join(d, name), "wb") as f:
            f.write(data)
        return data

    def small_disk(self):
        """The local Maildir on a 256 KiB tmpfs (needs root)."""
        mnt = tempfile.mkdtemp(prefix="postie-full.")
        r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=256k,mode=0700",
                            "postie-test", mnt], capture_output=True)
        if r.returncode != 0:
            os.rmdir(mnt)
            self.skipTest("cannot mount a tmpfs here: %s" % r.stderr.decode().strip())
        self.addCleanup(os.rmdir, mnt)
        self.addCleanup(subprocess.run, ["umount", "-l", mnt])
        self.local = os.path.join(mnt, "Maildir")

    def remote_names(self, folder="", sub="new"):
        d = os.path.join(self.remote, folder, sub)
        return sorted(os.listdir(d)) if os.path.isdir(d) else []

    def local_names(self, folder="", sub="new"):
        d = os.path.join(self.local, folder, sub)
        return sorted(os.listdir(d)) if os.path.isdir(d) else []

    def quiet_claims(self, client, folder=""):
        """Age a client's claim directory past --release's quiet time (a
        client that stopped running a while ago)."""
        d = os.path.join(self.remote, folder, "postie-claims", client)
        old = time.time() - 3600
        os.utime(d, (old, old))

    def claimed_names(self, folder="", client=None):
        """What a client has claimed on the server (postie-claims/CLIENT)."""
        return self.remote_names(folder, "postie-claims/" + (client or self.client))

    def wait_download(self, root=None, timeout=4.0):
        """Until a download has bytes in the local tmp/ (its own name)."""
        tmp = os.path.join(root or self.local, "tmp")
        end = time.time() + timeout

        def size(name):
            try:
                return os.path.getsize(os.path.join(tmp, name))
            except FileNotFoundError:       # linked into new/ meanwhile
                return 0
        while time.time() < end:
            if os.path.isdir(tmp) and any(size(n) > 0 for n in os.listdir(tmp)):
                return True
            time.sleep(0.01)
        return False

    def local_data(self, name, folder="", sub="new"):
        return open(os.path.join(self.local, folder, sub, name), "rb").read()

    def fetch(self, *args, env=None, timeout=120):
        return self.run_cmd("fetch", list(args), env=env, timeout=timeout)

    def log(self):
        p = os.path.join(self.dir, "postie.log")
        return open(p).read() if os.path.exists(p) else ""


class TestMove(FetchCase):
    folders = "INBOX .lists.*"

    def test_moves_new_mail_and_nothing_else(self):
        a = self.put("1700000000.M1P1.server")
        b = self.put("1700000001.M2P2.server,S=%d" % len(BODY % (b"x", b"x")), BODY % (b"x", b"x"))
        self.put("1700000002.M3P3.server:2,S", sub="cur")          # read: stays
        c = self.put("1700000003.M4P4.server", folder=".lists.dev")
        self.put("1700000004.M5P5.server", folder=".other")          # not wanted
        old = self.put("1600000000.M9P9.server", sub="tmp")
        t = time.time() - 40 * 3600
        os.utime(os.path.join(self.remote, "tmp", "1600000000.M9P9.server"), (t, t))
        r = self.fetch("-v")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(self.local_names(), ["1700000000.M1P1.server",
                                              "1700000001.M2P2.server,S=%d" % len(b)])
        self.assertEqual(self.local_data("1700000000.M1P1.server"), a)
        self.assertEqual(self.local_names(".lists.dev"), ["1700000003.M4P4.server"])
        self.assertEqual(self.local_data("1700000003.M4P4.server", ".lists.dev"), c)
        self.assertEqual(self.remote_names(), [])
        self.assertEqual(self.remote_names(".lists.dev"), [])
        self.assertEqual(self.remote_names(sub="cur"), ["1700000002.M3P3.server:2,S"])
        self.assertEqual(self.remote_names(".other"), ["1700000004.M5P5.server"])
        self.assertFalse(os.path.exists(os.path.join(self.local, ".other")))
        self.assertEqual(self.local_names(sub="tmp"), [])
        # private files and folders; each message logged by name
        st = os.stat(os.path.join(self.local, "new", "1700000000.M1P1.server"))
        self.assertEqual(st.st_mode & 0o777, 0o600)
        self.assertEqual(os.stat(os.path.join(self.local, "new")).st_mode & 0o777, 0o700)
        log = self.log()
        for n in ("1700000000.M1P1.server", "1700000003.M4P4.server"):
            self.assertIn("%s fetched" % n, log)
        # oldest first (Maildir names start with the time)
        self.assertLess(log.index("1700000000.M1P1.server fetched"),
                        log.index("1700000001.M2P2.server"))
        self.assertIn("tmp/1600000000.M9P9.server has been on the server for 40 hours", log)
        self.assertEqual(old, open(os.path.join(self.remote, "tmp", "1600000000.M9P9.server"),
                                   "rb").read())
        # a second run: nothing to do, nothing doubled
        r = self.fetch()
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(len(self.local_names()), 2)

    def test_cur_is_reported_and_taken_when_asked(self):
        # a mail reader on the server (Dovecot after an IMAP login) moved
        # new/ to cur/: move mode says so, per folder, and `take new cur`
        # brings those with their flags into the local cur/
        self.put("1700000000.M1P1.server")
        self.put("1700000001.M2P2.server:2,S", sub="cur")
        self.put("1700000002.M3P3.server:2,RS", sub="cur")
        self.put("1700000003.M4P4.server:2,", sub="cur", folder=".lists.dev")
        os.makedirs(os.path.join(self.remote, ".lists.dev", "new"))
        r = self.fetch()
        self.assertEqual(r.returncode, 0, r.stderr)
        err = r.stderr.decode()
        self.assertIn("%s/cur holds 2 messages (seen by a mail reader on the server) that move "
                      "mode leaves there; \"take new cur\" fetches them too" % self.remote, err)
        self.assertIn(".lists.dev/cur holds 1 message ", err)
        self.assertEqual(len(self.remote_names(sub="cur")), 2)
        self.configure(job_extra="  take new cur\n")
        r = self.fetch()
        self.assertEqual((r.returncode, r.stderr), (0, b""))
        self.assertEqual(self.local_names(sub="cur"), ["1700000001.M2P2.server:2,S",
                                                       "1700000002.M3P3.server:2,RS"])
        self.assertEqual(self.local_names(".lists.dev", sub="cur"), ["1700000003.M4P4.server:2,"])
        self.assertEqual(self.local_names(), ["1700000000.M1P1.server"])
        self.assertEqual(self.remote_names(sub="cur"), [])
        self.assertEqual(self.remote_names(".lists.dev", sub="cur"), [])
        self.configure(job_extra="  take cur\n")
        r = self.fetch()
        self.assertEqual(r.returncode, 78, r.stderr)

    def test_the_server_delivery_time_is_kept(self):
        self.put("1600000000.M1P1.server")
        self.put("1600000100.M2P2.server,S=3", b"abc")
        for n, t in (("1600000000.M1P1.server", 1600000000), ("1600000100.M2P2.server,S=3", 1600000100)):
            os.utime(os.path.join(self.remote, "new", n), (t, t))
        r = self.fetch()
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(os.stat(os.path.join(self.local, "new", "1600000000.M1P1.server")).st_mtime,
                         1600000000)
        self.assertEqual(os.stat(os.path.join(self.local, "new", "1600000100.M2P2.server,S=3")).st_mtime,
                         1600000100)

    def test_folder_globs_as_imap_names_and_reported(self):
        self.put("1700000000.M1P1.server")
        self.put("1700000001.M1P1.server", folder=".lists.dev")
        self.put("1700000002.M1P1.server", folder=".Archive")
        self.put("1700000003.M1P1.server", folder=".bad\x1bname")
        os.symlink(os.path.join(self.remote, ".Archive"), os.path.join(self.remote, ".link"))
        self.folders = "lists.* Archive nomatch.*"
        self.configure()
        r = self.fetch()
        err = r.stderr.decode()
        self.assertEqual(r.returncode, 0, err)
        self.assertEqual(self.local_names(".lists.dev"), ["1700000001.M1P1.server"])
        self.assertEqual(self.local_names(".Archive"), ["1700000002.M1P1.server"])
        self.assertEqual(self.remote_names(), ["1700000000.M1P1.server"])     # INBOX not asked
        self.assertIn("folders: 'nomatch.*' matches no folder in %s" % self.remote, err)
        self.assertNotIn("'lists.*' matches no", err)
        self.assertIn("%s/.bad?name: folder skipped: a control character in the name" % self.remote, err)
        self.assertIn("%s/.link: folder skipped: a symbolic link, never followed" % self.remote, err)
        self.assertNotIn("\x1b", err)
        # "*" is every folder, INBOX too
        self.folders = "*"
        self.configure()
        r = self.fetch()
        self.assertEqual(self.remote_names(), [])
        self.assertEqual(self.local_names(), ["1700000000.M1P1.server"])

    def test_dry_run_changes_nothing(self):
        self.put("1700000000.M1P1.server")
        self.put("1700000003.M4P4.server", folder=".lists.dev")
        r = self.fetch("-n")
        self.assertEqual(r.returncode, 0, r.stderr)
        out = r.stdout.decode()
        self.assertIn("inbox INBOX 1700000000.M1P1.server", out)
        self.assertIn("inbox .lists.dev 1700000003.M4P4.server", out)
        self.assertEqual(self.remote_names(), ["1700000000.M1P1.server"])
        self.assertFalse(os.path.exists(self.local))

    def test_progress_on_a_terminal(self):
        for i in range(25):
            self.put("17000000%02d.M%dP%d.server" % (i, i, i))
        rc, screen = self.run_cmd_tty("fetch", [])
        self.assertEqual(rc, 0, screen)
        # the job's counts (a folder's name in it left the end of a longer
        # one on the screen), redrawn at most every 100 ms, not for each
        # message, and the last counts always shown
        self.assertIn("\rfetch: inbox: 25 fetched, 0 already here\r\n", screen)
        self.assertLess(screen.count("\rfetch: inbox: "), 13, screen)
        self.assertEqual(len(self.local_names()), 25)
        # not a terminal: quiet (with a folder for ".lists.*" to match)
        os.makedirs(os.path.join(self.remote, ".lists.dev", "new"))
        self.put("1800000000.M1P1.server")
        r = self.fetch()
        self.assertEqual((r.returncode, r.stderr), (0, b""))

    def test_an_empty_message(self):
        # no byte ever comes for it: the end of file alone makes the file
        self.put("1700000000.M1P1.empty", b"")
        self.put("1700000001.M2P2.server")
        r = self.fetch()
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(self.local_names(), ["1700000000.M1P1.empty", "1700000001.M2P2.server"])
        self.assertEqual(self.local_data("1700000000.M1P1.empty"), b"")
        self.assertEqual(self.remote_names(), [])

    def test_no_delayed_ack_is_waited_for_after_the_login(self):
        # sshd writes a session's packets with Nagle on; each of its replies
        # in two writes (the channel's confirmation, then its window) waited
        # for our ACK, which Linux delays 40 ms: the channel's opening alone
        # took 47-79 ms from the login to the end of an empty run, against
        # 5-18 ms with the ACKs sent at once (min of 5 kept: load only adds)
        took = [self.stderr_gap("fetch", ["-v"], b"authenticated as") for _ in range(5)]
        self.assertLess(min(took), 0.035, took)

    def test_large_message_and_binary_bytes(self):
        data = os.urandom(3 * 1024 * 1024 + 17)
        self.put("1700000000.M1P1.big", data)
        r = self.fetch()
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(self.local_data("1700000000.M1P1.big"), data)


class TestHostileServer(FetchCase):
    def test_names_links_types_and_sizes_are_refused(self):
        secret = os.path.join(self.dir, "secret")
        with open(secret, "w") as f:
            f.write("not mail\n")
        new = os.path.join(self.remote, "new")
        os.symlink(secret, os.path.join(new, "1700000000.link"))
        os.mkdir(os.path.join(new, "1700000001.dir"))
        self.put("1700000002.esc\x1b[31m")
        self.put("1700000003.nl\nname")
        self.put("1700000007.c1\u009b31m")
        self.put("1700000004.big", b"x" * 3000)
        self.put("1700000005.liar,S=10", b"x" * 20)
        self.put(".hidden")
        good = self.put("1700000006.ok")
        self.configure("max-size 2k\n")
        r = self.fetch()
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(self.local_names(), ["1700000006.ok"])
        self.assertEqual(self.local_data("1700000006.ok"), good)
        err = r.stderr.decode()
        self.assertIn("1700000000.link: refused: not a regular file (a symbolic link, never followed)", err)
        self.assertIn("1700000001.dir: refused: not a regular file", err)
        self.assertIn("refused: a control character in the name", err)
        self.assertIn("refused: a byte that is not ASCII in the name", err)
        self.assertNotIn("\x9b", err)
        self.assertIn("1700000004.big: refused: 3000 bytes is over max-size (2048)", err)
        self.assertIn("1700000005.liar,S=10: refused: 20 bytes, but its name says S=10", err)
        self.assertNotIn("hidden", err)
        self.assertNotIn("directory reference", err)     # . and .. are no news
        self.assertEqual(err.count("refused"), 7, err)
        self.assertNotIn("\x1b", err)                      # never echoed raw
        # everything refused stays on the server; nothing else was written
        self.assertEqual(len(self.remote_names()), 8)
        self.assertEqual(open(secret).read(), "not mail\n")
        written = []
        for root, dirs, files in os.walk(self.local):
            written += files
        self.assertEqual(written, ["1700000006.ok"])

    def test_a_leftover_tmp_link_is_never_truncated(self):
        # a run cut off after its link left tmp/NAME; the user since moved
        # the message to another folder: fetching NAME again must not
        # write through that link into the user's copy
        data = self.put("1700000000.M1P1.server")
        for sub in ("tmp", "new", "cur"):
            os.makedirs(os.path.join(self.local, sub), exist_ok=True)
        archive = os.path.join(self.local, ".Archive", "cur")
        os.makedirs(archive)
        kept = os.path.join(archive, "1700000000.M1P1.server:2,S")
        with open(kept, "wb") as f:
            f.write(data)
        os.link(kept, os.path.join(self.local, "tmp", "1700000000.M1P1.server"))
        self.put("1700000000.M1P1.server", b"x")     # the server's copy differs
        self.configure()
        r = self.fetch()
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(open(kept, "rb").read(), data)
        self.assertEqual(self.local_data("1700000000.M1P1.server"), b"x")

    def test_local_a_dangling_symlink_is_named_as_such(self):
        self.put("1700000000.a")
        os.symlink(os.path.join(self.dir, "Mail-not-mounted"), self.local)
        r = self.fetch()
        self.assertEqual(r.returncode, 73, r.stderr)
        self.assertIn(b"%s is a symbolic link to %s/Mail-not-mounted, which does not exist "
                      b"(create it, or fix the link)" % (self.local.encode(), self.dir.encode()),
                      r.stderr)
        self.assertEqual(self.remote_names(), ["1700000000.a"])

    def test_a_revocation_in_a_global_file_holds_for_a_confined_fetch(self):
        # GlobalKnownHostsFile outside ~/.ssh and /etc/ssh: the confined
        # fetch could not read it (EACCES, taken for "no file") and took
        # the revoked key
        self.put("1700000000.a")
        gkh = os.path.join(self.dir, "global_known_hosts")
        k = self.sshd.known_hosts_line().split()
        with open(gkh, "w") as f:
            f.write("@revoked * %s %s\n" % (k[1], k[2]))
        cfg = os.path.join(self.dir, ".ssh", "config")
        with open(cfg, "w") as f:
            f.write("Host *\n  GlobalKnownHostsFile %s\n" % gkh)
        os.chmod(cfg, 0o600)
        r = self.fetch()
        self.assertEqual(r.returncode, 76, r.stderr)
        self.assertIn(b"is marked @revoked in %s line 1" % gkh.encode(), r.stderr)
        self.assertEqual(self.remote_names(), ["1700000000.a"])

    def test_a_symlinked_new_is_never_followed(self):
        # a folder whose new/ is a symbolic link (to the user's documents,
        # say): nothing there is claimed, fetched or removed
        self.folders = "INBOX .*"
        self.configure()
        self.put("1700000000.inbox")
        docs = os.path.join(self.dir, "server", "Documents")
        os.makedirs(docs)
        with open(os.path.join(docs, "thesis.tex"), "w") as f:
            f.write("precious\n")
        for sub in ("cur", "tmp"):
            os.makedirs(os.path.join(self.remote, ".lnk", sub))
        os.symlink(docs, os.path.join(self.remote, ".lnk", "new"))
        r = self.fetch()
        err = r.stderr.decode()
        self.assertEqual(os.listdir(docs), ["thesis.tex"])
        self.assertEqual(r.returncode, 76, err)
        self.assertIn("%s/.lnk/new on 127.0.0.1 is a symbolic link (or not a directory): never "
                      "followed, nothing in it claimed or removed; folder .lnk is left for a "
                      "later run" % self.remote, err)
        self.assertEqual(os.listdir(docs), ["thesis.tex"])
        self.assertEqual(self.local_names(), ["1700000000.inbox"])
        self.assertEqual(self.local_names(".lnk"), [])

    def test_already_here_and_conflicts(self):
        same = self.put("1700000000.same")
        self.put("1700000001.differs", b"server's version\n")
        for sub in ("tmp", "new", "cur"):
            os.makedirs(os.path.join(self.local, sub), exist_ok=True)
        with open(os.path.join(self.local, "cur", "1700000000.same:2,S"), "wb") as f:
            f.write(same)                                  # read already
        with open(os.path.join(self.local, "new", "1700000001.differs"), "wb") as f:
            f.write(b"local\n")
        r = self.fetch()
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(self.remote_names(), ["1700000001.differs"])   # conflict: kept
        self.assertEqual(self.local_names(), ["1700000001.differs"])    # not fetched again
        self.assertEqual(self.local_data("1700000001.differs"), b"local\n")
        self.assertIn("a different message of that name is here already", r.stderr.decode())
        self.assertIn("1700000000.same already here, removed from the server", self.log())


class ScriptedCase(FetchCase):
    """Against tests/integration/sftpserver.py: a server that misbehaves
    as self.rules says (rewritten by set_rules between runs)."""

    def subsystem(self):
        self.rules_path = os.path.join(self.dir, "sftp-rules.json")
        self.set_rules({})
        here = os.path.dirname(os.path.abspath(__file__))
        return "/usr/bin/python3 %s %s" % (os.path.join(here, "sftpserver.py"), self.rules_path)

    def set_rules(self, rules):
        with open(self.rules_path, "w") as f:
            json.dump(rules, f)


class TestClaimRefused(ScriptedCase):
    def test_a_server_refusing_every_claim_is_a_deferral_said_once(self):
        # a full disk or a quota on the server: every claim fails alike.
        # The run exited 0 with a line for each message; now the first
        # few are said, the rest logged, and one summary ends it (75)
        names = ["17000000%02d.m" % i for i in range(8)]
        for n in names:
            self.put(n)
        self.set_rules({"refuse_claims": "No space left on device"})
        r = self.fetch()
        err = r.stderr.decode()
        self.assertEqual(r.returncode, 75, err)
        self.assertEqual(err.count("cannot claim it on the server: "), 3, err)
        self.assertIn("8 messages could not be claimed on the server: failure (No space left "
                      "on device) (a full disk or a quota there?); the first said above, every "
                      "one in the log; they stay where they are for the next run", err)
        self.assertEqual(self.log().count("cannot claim it on the server"), 8)
        self.assertEqual(self.remote_names(), names)
        self.assertEqual(self.local_names(), [])
        self.set_rules({})
        r = self.fetch()
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(self.local_names(), names)


class TestRemoveRefused(ScriptedCase):
    def test_said_once_remembered_and_not_fetched_again(self):
        self.put("1700000000.a")
        self.put("1700000001.b")
        self.set_rules({"refuse_remove": "held by policy"})
        r = self.fetch()
        err = r.stderr.decode()
        self.assertEqual(r.returncode, 77, err)
        self.assertEqual(self.local_names(), ["1700000000.a", "1700000001.b"])
        self.assertEqual(err.count("held by policy"), 2, err)
        self.assertNotIn("the next run removes it", err)
        # said once: the next run is quiet and fetches nothing again,
        # even what the user deleted locally
        os.unlink(os.path.join(self.local, "new", "1700000000.a"))
        r = self.fetch()
        self.assertEqual((r.returncode, r.stderr), (0, b""))
        self.assertEqual(self.local_names(), ["1700000001.b"])
        # claimed (the rename was allowed), kept there, not in new/
        self.assertEqual(self.remote_names(), [])
        self.assertEqual(self.claimed_names(), ["1700000000.a", "1700000001.b"])
        # the server allows it again: removed, and forgotten
        self.set_rules({})
        r = self.fetch()
        self.assertEqual((r.returncode, r.stderr), (0, b""))
        self.assertEqual(self.remote_names(), [])
        self.assertEqual(self.claimed_names(), [])
        self.assertEqual(self.local_names(), ["1700000001.b"])
        state = os.path.join(os.path.dirname(self.queue), "fetch", "inbox.unremoved")
        self.assertEqual(open(state).read(), "")


class TestKeepRemoveRefused(ScriptedCase):
    mode = "copy"

    def test_said_once_then_tried_quietly(self):
        # copy mode with keep 0 on a server that refuses removes (a
        # read-only sftp-server): said once, exit 77; later runs try
        # again without a word (a line a message a run before, mailed
        # by cron); once the server allows it, removed and forgotten
        self.put("1700000000.a")
        self.put("1700000001.b")
        self.configure(job_extra="  keep 0\n")
        self.set_rules({"refuse_remove": "read-only"})
        r = self.fetch()
        err = r.stderr.decode()
        self.assertEqual(r.returncode, 77, err)
        self.assertEqual(err.count("older than its keep age, but the server refused to remove "
                                   "it: permission denied (read-only); it stays there"), 2, err)
        self.assertEqual(self.local_names(), ["1700000000.a", "1700000001.b"])
        r = self.fetch()
        self.assertEqual((r.returncode, r.stderr), (0, b""))
        self.assertEqual(self.remote_names(), ["1700000000.a", "1700000001.b"])
        self.set_rules({})
        r = self.fetch()
        self.assertEqual((r.returncode, r.stderr), (0, b""))
        self.assertEqual(self.remote_names(), [])
        self.assertEqual(self.local_names(), ["1700000000.a", "1700000001.b"])
        state = os.path.join(os.path.dirname(self.queue), "fetch", "inbox.unremoved")
        self.assertEqual(open(state).read(), "")


class TestAlreadyHereRemoved(ScriptedCase):
    def test_removed_is_said_once_it_is_done(self):
        # a message here already is removed on the server; the log said
        # "removed from the server" when it was planned, also when the
        # remove then failed (a run cut off, a refusal)
        data = self.put("1700000000.same")
        for sub in ("tmp", "new", "cur"):
            os.makedirs(os.path.join(self.local, sub), exist_ok=True)
        with open(os.path.join(self.local, "new", "1700000000.same"), "wb") as f:
            f.write(data)
        self.set_rules({"refuse_remove": "not now"})
        r = self.fetch()
        self.assertEqual(r.returncode, 77, r.stderr)
        self.assertNotIn("already here, removed from the server", self.log())
        self.set_rules({})
        r = self.fetch()
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("new/1700000000.same: removed from the server at last", self.log())
        self.assertEqual(self.remote_names(), [])


class TestBadEntries(ScriptedCase):
    def test_one_bad_entry_is_refused_and_the_rest_fetched(self):
        big = self.put("1700000001.big", bytes(range(256)) * 40)
        small = self.put("1700000002.small")
        self.set_rules({"read_max": 100,            # short reads, legal
                        "extra": [{"dir": "new", "name_len": 40000},
                                  {"dir": "new", "name": ""},
                                  {"dir": "new", "name_len": 300}]})
        r = self.fetch()
        err = r.stderr.decode()
        self.assertEqual(r.returncode, 0, err)
        self.assertEqual(self.local_names(), ["1700000001.big", "1700000002.small"])
        self.assertEqual(self.local_data("1700000001.big"), big)
        self.assertEqual(self.local_data("1700000002.small"), small)
        self.assertIn("refused: an empty name", err)
        self.assertIn("(a name of 40000 bytes): refused: a name over 255 bytes", err)
        self.assertIn("(a name of 300 bytes): refused: a name over 255 bytes", err)
        self.assertLess(len(err), 2000, err)        # never a name whole

    def test_a_file_that_changed_between_listing_and_opening(self):
        # the open follows a symlink put in its place, or the file was
        # swapped: what FSTAT says of the open file must be the regular
        # file of the size listed, or nothing of it is taken
        self.put("1700000000.dir")
        self.put("1700000001.resized")
        ok = self.put("1700000002.ok")
        self.set_rules({"fstat_mode": {"1700000000.dir": 0o40755},
                        "fstat_size": {"1700000001.resized": 10}})
        r = self.fetch()
        err = r.stderr.decode()
        self.assertEqual(r.returncode, 0, err)
        self.assertEqual(self.local_names(), ["1700000002.ok"])
        self.assertEqual(self.local_data("1700000002.ok"), ok)
        for name in ("1700000000.dir", "1700000001.resized"):
            # named where it stays: given back from the claim to new/
            self.assertIn("%s/new/%s: refused: it changed between listing and opening"
                          % (self.remote, name), err)
        self.assertEqual(sorted(os.listdir(os.path.join(self.local, "tmp"))), [])
        # given back from the claim: there for the next run, and a fixed
        # server's file is then fetched
        self.assertEqual(self.remote_names(), ["1700000000.dir", "1700000001.resized"])
        self.assertEqual(self.claimed_names(), [])

    def test_a_file_listed_without_a_size(self):
        # its size comes from FSTAT after the open; max-size and the name's
        # S= still hold for it
        good = self.put("1700000001.ok")
        nosize = self.put("1700000000.nosize", b"x" * 3000)
        self.put("1700000002.big", b"y" * 5000)
        self.put("1700000003.liar,S=10", b"z" * 20)
        self.put("1700000004.never", b"w" * 30)
        self.set_rules({"no_size": {"1700000000.nosize": "list", "1700000002.big": "list",
                                    "1700000003.liar,S=10": "list", "1700000004.never": "both"}})
        self.configure("max-size 4000\n")
        r = self.fetch()
        err = r.stderr.decode()
        self.assertEqual(r.returncode, 0, err)
        self.assertEqual(self.local_names(), ["1700000000.nosize", "1700000001.ok"])
        self.assertEqual(self.local_data("1700000000.nosize"), nosize)
        self.assertEqual(self.local_data("1700000001.ok"), good)
        self.assertIn("1700000002.big: refused: 5000 bytes (said when opened) is over max-size "
                      "(4000); left on the server", err)
        self.assertIn("1700000003.liar,S=10: refused: 20 bytes (said when opened), but its name "
                      "says S=10; left on the server", err)
        self.assertIn("1700000004.never: refused: the server gave no size for it, not even for "
                      "the open file; left on the server", err)
        # what was refused is still there, for the user to look at
        self.assertEqual(sorted(self.remote_names() + self.claimed_names()),
                         ["1700000002.big", "1700000003.liar,S=10", "1700000004.never"])


class TestMovedMeanwhile(ScriptedCase):
    """A mail reader on the server renames new/X to cur/X:2,S between
    postie's listings of new/ and cur/: new/ lists a name that is gone,
    cur/ the message. The cur/ listing is not "already here" because the
    new/ one is planned: it waits for the next run, which fetches it."""

    NAME = "1700000000.M1P1.srv,S=10"

    def moved(self):
        data = self.put(self.NAME + ":2,S", b"0123456789", sub="cur")
        self.set_rules({"extra": [{"dir": "new", "name": self.NAME, "size": 10,
                                   "mtime": 1700000000}]})
        return data

    def everywhere(self):
        return (self.local_names() + self.local_names(sub="cur") +
                self.remote_names() + self.remote_names(sub="cur") + self.claimed_names())

    def test_move_mode_neither_loses_nor_doubles_it(self):
        data = self.moved()
        self.configure(job_extra="  take new cur\n")
        r = self.fetch()
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertNotIn("already here, removed", self.log())
        self.assertIn("listed again in cur/ while its first listing is fetched; left for "
                      "the next run", self.log())
        self.assertIn("%s gone before it could be claimed (another client took it, or a mail "
                      "reader on the server moved or removed it); not fetched" % self.NAME,
                      self.log())
        # not removed: still on the server (the second listing waits)
        self.assertEqual(self.everywhere(), [self.NAME + ":2,S"])
        self.assertEqual(self.remote_names(sub="cur"), [self.NAME + ":2,S"])
        self.set_rules({})
        r = self.fetch()
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(self.local_names(sub="cur"), [self.NAME + ":2,S"])
        self.assertEqual(self.local_data(self.NAME + ":2,S", sub="cur"), data)
        self.assertEqual(self.everywhere(), [self.NAME + ":2,S"])

    def test_copy_mode_says_a_vanished_file_in_the_log_only(self):
        # a file listed, then moved by a mail reader on the server before
        # its OPEN: copy mode has no claim, so the OPEN finds nothing; it
        # was a line on stderr for each (thousands mailed by cron)
        self.mode = "copy"
        self.moved()
        self.configure()
        r = self.fetch()
        self.assertEqual((r.returncode, r.stderr), (0, b""))
        self.assertIn("%s: gone from the server before it could be opened (moved or removed "
                      "there); not fetched" % os.path.join(self.remote, "new", self.NAME),
                      self.log())

    def test_copy_mode_does_not_record_it_unfetched(self):
        self.mode = "copy"
        data = self.moved()
        self.configure(job_extra="  take new cur\n")
        r = self.fetch()
        self.assertEqual(r.returncode, 0, r.stderr)
        seen = os.path.join(os.path.dirname(self.queue), "fetch", "inbox.seen")
        self.assertNotIn(self.NAME, open(seen).read() if os.path.exists(seen) else "")
        self.set_rules({})
        r = self.fetch()
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(self.local_names(sub="cur"), [self.NAME + ":2,S"])
        self.assertEqual(self.local_data(self.NAME + ":2,S", sub="cur"), data)


class TestFolderRenamed(ScriptedCase):
    """The user renames a folder on the server while fetch removes what it
    fetched from it: the claims go along with the folder, so the removes
    find nothing. The next run finds them in the renamed folder's claims:
    removed there, never fetched a second time."""

    folders = "INBOX .Lists.*"

    def test_claims_carried_away_are_not_fetched_again(self):
        data = {n: self.put(n, folder=".Lists.foo") for n in
                ("1700000000.a", "1700000001.b", "1700000002.c")}
        self.set_rules({"rename_dir_on_remove": {".Lists.foo": ".Lists.bar"}})
        r = self.fetch()
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(self.local_names(".Lists.foo"), sorted(data))
        # the claims went with the folder
        self.assertEqual(self.claimed_names(".Lists.bar"), sorted(data))
        self.assertIn("its claim was gone when removed", self.log())
        self.set_rules({})
        r = self.fetch()
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(self.local_names(".Lists.bar"), [])
        self.assertEqual(self.claimed_names(".Lists.bar"), [])
        self.assertEqual(self.local_names(".Lists.foo"), sorted(data))
        for n, d in data.items():
            self.assertEqual(self.local_data(n, ".Lists.foo"), d)
        self.assertIn("fetched before in a folder renamed on the server since: removed, not "
                      "fetched again", self.log())
        # acted on, so forgotten; and a run after that is quiet
        r = self.fetch()
        self.assertEqual((r.returncode, r.stderr), (0, b""))
        state = os.path.join(os.path.dirname(self.queue), "fetch", "inbox.unremoved")
        self.assertEqual(open(state).read(), "")


class TestFolderUnlisted(ScriptedCase):
    """A folder whose directory cannot be opened (its permissions, or the
    user removed it meanwhile) is said and left; the other folders are
    fetched; the run exits non-zero."""

    folders = "INBOX .*"

    def test_the_other_folders_go_on(self):
        self.put("1700000000.inbox")
        self.put("1700000001.b", folder=".b")
        self.put("1700000002.c", folder=".c")
        for code, rc, why in ((3, 77, "permission denied"), (2, 75, "no such file")):
            self.set_rules({"opendir_status": {".b/new": code}})
            r = self.fetch()
            err = r.stderr.decode()
            self.assertEqual(r.returncode, rc, err)
            self.assertIn("cannot list %s/.b/new on 127.0.0.1: %s (refused by the test's rule); "
                          "folder .b is left for a later run, the others go on"
                          % (self.remote, why), err)
            self.assertIn("1 folder could not be worked on (said above) and is left for a later "
                          "run; the others were fetched", err)
        self.assertEqual(self.local_names(), ["1700000000.inbox"])
        self.assertEqual(self.local_names(".c"), ["1700000002.c"])
        self.assertEqual(self.local_names(".b"), [])
        self.assertEqual(self.remote_names(".b"), ["1700000001.b"])
        self.set_rules({})
        r = self.fetch()
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(self.local_names(".b"), ["1700000001.b"])

    def test_a_claim_directory_that_cannot_be_made_leaves_its_folder(self):
        # a folder read-only to this user (the claim directory refused),
        # then a server whose disk is full (FAILURE, which OpenSSH also
        # says for "there already": the MKDIR in it then finds nothing)
        self.put("1700000000.inbox")
        self.put("1700000001.x", folder=".x")
        self.put("1700000002.z", folder=".z")
        self.set_rules({"mkdir_status": {".x/postie-claims": 3}})
        r = self.fetch()
        err = r.stderr.decode()
        self.assertEqual(r.returncode, 77, err)
        self.assertIn("cannot make the claim directory %s/.x/postie-claims/laptop on 127.0.0.1: "
                      "the server could not make postie-claims/ there; move mode renames and "
                      "removes on the server: a folder, or a server, read-only to this user can "
                      "only be fetched with mode copy; folder .x is left for a later run, the "
                      "others go on" % self.remote, err)
        self.assertEqual(self.local_names(), ["1700000000.inbox"])
        self.assertEqual(self.local_names(".z"), ["1700000002.z"])
        self.assertEqual(self.remote_names(".x"), ["1700000001.x"])
        self.put("1700000003.inbox")
        self.set_rules({"mkdir_status": {"Maildir/postie-claims": 4}})
        shutil.rmtree(os.path.join(self.remote, "postie-claims"))
        r = self.fetch()
        err = r.stderr.decode()
        self.assertEqual(r.returncode, 75, err)
        self.assertIn("the server could not make postie-claims/ there (its disk full? a quota?); "
                      "folder INBOX is left for a later run", err)
        self.assertEqual(self.local_names(".x"), ["1700000001.x"])
        self.assertEqual(self.remote_names(), ["1700000003.inbox"])
        # FAILURE for this client's directory itself, postie-claims/ made:
        # FAILURE is also OpenSSH's "there already", so whether it is
        # there says which (it was skipped quietly, exit 0)
        self.put("1700000004.z", folder=".z")
        shutil.rmtree(os.path.join(self.remote, ".z", "postie-claims"))
        self.set_rules({"mkdir_status": {".z/postie-claims/laptop": 4}})
        r = self.fetch()
        err = r.stderr.decode()
        self.assertEqual(r.returncode, 75, err)
        self.assertIn("cannot make the claim directory %s/.z/postie-claims/laptop on 127.0.0.1: "
                      "the server could not make it (its disk full? a quota?); folder .z is left"
                      % self.remote, err)
        self.assertNotIn("gone before", err + self.log())
        self.assertEqual(self.remote_names(".z"), ["1700000004.z"])
        self.assertEqual(self.local_names(), ["1700000000.inbox", "1700000003.inbox"])

    def test_the_maildir_itself_fails_the_job(self):
        self.put("1700000000.inbox")
        self.set_rules({"opendir_status": {"Maildir": 3}})
        r = self.fetch()
        self.assertEqual(r.returncode, 76, r.stderr)
        self.assertIn(b"cannot list %s on 127.0.0.1: permission denied" % self.remote.encode(),
                      r.stderr)


class TestPipelining(ScriptedCase):
    """What goes out without waiting for an answer, as a scripted server
    sees it: it reads ahead before answering a MKDIR or a RENAME (up to
    2 s) and notes which request came meanwhile."""

    def held(self):
        hold_log = os.path.join(self.dir, "hold.log")
        if os.path.exists(hold_log):
            os.unlink(hold_log)
        self.set_rules({"hold": {"types": [14, 18], "seconds": 2, "log": hold_log}})
        r = self.fetch()
        self.assertEqual(r.returncode, 0, r.stderr.decode())
        with open(hold_log) as f:
            return [line.split(" -> ") for line in f.read().splitlines()]

    def test_claim_directory_claim_and_open_go_out_together(self):
        self.put("1700000001.a")
        claims = os.path.join(self.remote, "postie-claims")
        mine = os.path.join(claims, self.client)
        claimed = os.path.join(mine, "1700000001.a")
        self.assertEqual(self.held(), [
            ["14 " + claims, "14 " + mine],
            # the LSTAT that tells "there already" from "could not" (both
            # FAILURE at OpenSSH), then the claim, behind the MKDIRs, not
            # after their answer
            ["14 " + mine, "7 " + mine],
            # the OPEN of the claimed path right behind its RENAME
            ["18 " + os.path.join(self.remote, "new", "1700000001.a"), "3 " + claimed]])
        self.assertEqual(self.local_names(), ["1700000001.a"])
        # the claim directory is there now: no MKDIR on the next run
        self.put("1700000002.b")
        self.assertEqual(self.held(), [
            ["18 " + os.path.join(self.remote, "new", "1700000002.b"),
             "3 " + os.path.join(mine, "1700000002.b")]])
        self.assertEqual(self.local_names(), ["1700000001.a", "1700000002.b"])
        self.assertEqual(self.remote_names(), [])
        self.assertEqual(self.claimed_names(), [])

    def test_a_server_that_reorders_claim_and_open(self):
        # the OPEN done before the RENAME fails and is sent again; an
        # OPEN answered before its RENAME keeps its handle for the claim
        for i, how in enumerate(("open_first", "open_first_answered_first",
                                 "replies_swapped")):
            names = ["17000000%d%d.m" % (i, k) for k in range(3)]
            for n in names:
                self.put(n)
            opens = os.path.join(self.dir, "opens-%s.log" % how)
            self.set_rules({"reorder": how,
                            "hold": {"types": [3], "seconds": 0, "log": opens}})
            r = self.fetch()
            self.assertEqual(r.returncode, 0, r.stderr.decode())
            self.assertNotIn(b"gone before it could be claimed", r.stderr)
            for n in names:
                self.assertIn(n, self.local_names(), how)
                self.assertEqual(self.local_data(n), BODY % (n.encode(), n.encode()), how)
            self.assertEqual(self.remote_names(), [], how)
            self.assertEqual(self.claimed_names(), [], how)
            with open(opens) as f:
                opened = [line.split(" -> ")[0].rsplit("/", 1)[1] for line in f.read().splitlines()]
            # an OPEN that failed is sent once more; a handle that came
            # early is used, not opened again
            once = 1 if how == "replies_swapped" else 2
            self.assertEqual(sorted(opened), sorted(names * once), how)

    def test_a_claim_directory_refused_fails_the_run_and_takes_nothing(self):
        # the claims went out behind the refused MKDIRs and failed: not
        # another client's wins, and nothing is taken
        self.put("1700000001.a")
        self.set_rules({"refuse_mkdir": "quota"})
        r = self.fetch()
        err = r.stderr.decode()
        self.assertNotEqual(r.returncode, 0, err)
        self.assertIn("cannot make the claim directory", err)
        self.assertIn("quota", err)
        self.assertNotIn("gone before it could be claimed", err + self.log())
        self.assertEqual(self.remote_names(), ["1700000001.a"])
        self.assertEqual(self.local_names(), [])

    def test_removes_go_out_while_later_downloads_run(self):
        # a batch's claims are removed once it is committed, beside the
        # next downloads: the server unlinks while the client works, not
        # all at the end with the client waiting. The last message's
        # READ is answered only once 64 REMOVEs came (or after 20 s): the
        # first batch (64) is committed meanwhile, and its REMOVEs reach
        # the server before that answer
        names = ["1700000000.M%03dP1.server" % i for i in range(65)]
        for n in names:
            self.put(n)
        log = os.path.join(self.dir, "late.log")
        self.set_rules({"late": {"name": names[-1], "seconds": 20, "log": log,
                                 "removes": 64}})
        r = self.fetch(env={"POSTIE_CRASH_TRACE": "1"})
        self.assertEqual(r.returncode, 0, r.stderr.decode())
        with open(log) as f:
            self.assertEqual(f.read(), "64\n")
        # each claim removed once: the batch-by-batch calls and the run's
        # last one do not send a REMOVE twice
        self.assertEqual(r.stderr.count(b" removed on the server\n"), len(names))
        self.assertEqual(self.local_names(), names)
        for n in names:
            self.assertEqual(self.local_data(n), BODY % (n.encode(), n.encode()))
        self.assertEqual(self.remote_names(), [])
        self.assertEqual(self.claimed_names(), [])

    def test_ssh_key_is_offered_without_asking_the_methods(self):
        # the "none" request (the methods) would cost a round trip
        self.put("1700000001.a")
        r = self.fetch()
        self.assertEqual(r.returncode, 0, r.stderr.decode())
        self.assertEqual(self.local_names(), ["1700000001.a"])
        deadline = time.time() + 5
        while "Accepted publickey" not in self.sshd.log_text() and time.time() < deadline:
            time.sleep(0.1)
        log = self.sshd.log_text()
        self.assertIn("Accepted publickey", log)
        self.assertFalse("method none" in log, log[-1500:])


class TestBigListings(ScriptedCase):
    mode = "copy"

    def test_the_cap_counts_only_what_is_taken(self):
        # 100,000 entries fetched before come first in the listing; the
        # two new ones after them must still come
        seen = os.path.join(os.path.dirname(self.queue), "fetch", "inbox.seen")
        os.makedirs(os.path.dirname(seen))
        with open(seen, "w") as f:
            for i in range(100000):
                f.write("INBOX/1600000000.%08d\n" % i)
        self.set_rules({"many": [{"dir": "new", "count": 100000, "prefix": "1600000000."}]})
        self.put("1700000000.a")
        self.put("1700000001.b")
        r = self.fetch()
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(self.local_names(), ["1700000000.a", "1700000001.b"])
        self.assertNotIn(b"more than", r.stderr)

    def fetch_peak(self):
        """Run fetch; (exit code, stderr, its peak RSS in KiB)."""
        with tempfile.TemporaryFile() as err:
            p = subprocess.Popen([os.path.join(self.bin, "fetch")], env=self.env,
                                 stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                 stderr=err)
            _, status, usage = os.wait4(p.pid, 0)
            p.returncode = os.waitstatus_to_exitcode(status)
            err.seek(0)
            return p.returncode, err.read(), usage.ru_maxrss

    def test_refused_entries_are_not_kept(self):
        # 3,000 names of 30 KB (90 MB, all refused): memory follows what
        # is kept, not what the server sends
        self.put("1700000000.a")
        rc, err, base = self.fetch_peak()
        self.assertEqual(rc, 0, err)
        self.set_rules({"many": [{"dir": "new", "count": 3000, "prefix": "1600000000.", "pad": 30000}]})
        self.put("1700000001.b")
        rc, err, peak = self.fetch_peak()
        self.assertEqual(rc, 0, err[-500:])
        if os.environ.get("POSTIE_SANITIZED") != "1":   # ASan's quarantine
            self.assertLess(peak - base, 30 * 1024, (base, peak))     # KiB
        self.assertEqual(self.local_names(), ["1700000000.a", "1700000001.b"])
        self.assertEqual(err.count(b"refused: a name over 255 bytes"), 3000)
        self.assertLess(len(err), 3000 * 300)       # no name whole


class TestDeadline(ScriptedCase):
    """A server that drips makes progress, so the timeout (a step) never
    ends it: the run's deadline (3 x timeout + bytes at 8 KiB/s) does."""

    def run_bounded(self, rules):
        self.configure(job_extra="  timeout 2s\n")
        self.set_rules(rules)
        t = time.time()
        r = self.fetch()
        took = time.time() - t
        self.assertLess(took, 12, r.stderr)
        self.assertEqual(r.returncode, 75, r.stderr)
        self.assertIn(b"the run passed its deadline: 6 s (3 x timeout 2 s + ", r.stderr)
        return r

    def test_a_message_dripped_a_byte_at_a_time(self):
        self.put("1700000000.a", b"x" * 300)
        r = self.run_bounded({"drip": 0.05})
        # claimed first (move mode), then read from the claim
        self.assertIn(b"reading %s/postie-claims/laptop/1700000000.a" % self.remote.encode(),
                      r.stderr)
        # still this client's claim: its next run finishes it
        self.assertEqual(self.remote_names() + self.claimed_names(), ["1700000000.a"])
        self.assertEqual(self.local_names(), [])
        self.assertEqual(self.local_names(sub="tmp"), [])

    def test_a_large_message_too_slow_for_the_deadline_holds_up_no_other(self):
        # a link too slow for one large message (it left this client's
        # claim behind, so it is first in line): the small ones come in
        # every run all the same; only the large one waits (it was first,
        # so every message behind it was downloaded and dropped)
        big = "1600000000.big"
        self.put(big, b"x" * 7000, sub="postie-claims/laptop")
        small = ["1700000%03d.s" % i for i in range(6)]
        for n in small:
            self.put(n, b"small %s\n" % n.encode())
        r = self.run_bounded({"drip_files": {big: 0.01}})
        self.assertEqual(self.local_names(), small, r.stderr)
        self.assertEqual(self.remote_names(), [])
        # their REMOVEs waited behind the large one's READ on the server
        # (one request at a time): still claims, the next run removes them
        self.assertIn(big, self.claimed_names())
        for n in small:
            self.assertEqual(self.local_data(n), b"small %s\n" % n.encode())
        self.assertEqual(self.local_names(sub="tmp"), [])
        # and once the link is fast enough, it comes too
        self.set_rules({})
        r = self.fetch()
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(self.local_names(), sorted(small + [big]))
        self.assertEqual(self.local_data(big), b"x" * 7000)
        self.assertEqual(self.claimed_names(), [])
        self.assertEqual(self.remote_names(), [])

    def test_what_ended_before_the_deadline_is_kept_whatever_its_place(self):
        # the oldest message's READ is answered late (the server falls
        # silent for longer than the timeout), the others at once: they
        # ended, after it in line, and are kept, not downloaded and
        # dropped
        first = "1600000000.late"
        self.put(first, b"late\n")
        small = ["1700000%03d.s" % i for i in range(5)]
        for n in small:
            self.put(n, b"small %s\n" % n.encode())
        log = os.path.join(self.dir, "late.log")
        self.configure(job_extra="  timeout 2s\n")
        self.set_rules({"late": {"name": first, "seconds": 30, "log": log,
                                 "removes": 10 ** 6}})
        r = self.fetch()
        self.assertEqual(r.returncode, 75, r.stderr)
        self.assertIn(b"the SFTP server answered nothing for 2 s", r.stderr)
        self.assertEqual(self.local_names(), small, r.stderr)
        # a silent server gets no more requests: their claims wait for
        # the next run, which removes them (here already)
        self.assertEqual(self.remote_names(), [])
        self.assertIn(first, self.claimed_names())
        self.assertEqual(self.local_names(sub="tmp"), [])
        self.set_rules({})
        r = self.fetch()
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(self.local_names(), sorted(small + [first]))
        self.assertEqual(self.remote_names() + self.claimed_names(), [])

    def test_a_listing_dripped_an_entry_at_a_time(self):
        self.put("1700000000.a")
        self.run_bounded({"list_drip": 0.5,
                          "many": [{"dir": "new", "count": 40, "prefix": "1600000000."}]})
        self.assertEqual(self.remote_names(), ["1700000000.a"])


class TestReadPastTheEnd(ScriptedCase):
    """The last READ of a file asks one byte past its listed size: a read
    that stops short at that size is the end, so a small message costs
    one READ, not a READ and a second one that finds the end."""

    def reads_logged(self):
        log = os.path.join(self.dir, "reads.log")
        return log, {"hold": {"types": [5], "seconds": 0, "log": log}}

    def test_one_read_a_message(self):
        names = ["1700000001.a", "1700000002.b", "1700000003.c"]
        data = [self.put(n) for n in names]
        log, rules = self.reads_logged()
        self.set_rules(rules)
        r = self.fetch()
        self.assertEqual(r.returncode, 0, r.stderr.decode())
        self.assertEqual(self.local_names(), names)
        for n, d in zip(names, data):
            self.assertEqual(self.local_data(n), d)
        with open(log) as f:
            self.assertEqual(len(f.read().splitlines()), 3)

    def test_sizes_at_the_edges(self):
        # 64 KiB, one READ's worth: a READ of it, then one at its end;
        # 300 bytes with reads of 100 at most: the short read that stops
        # at the size ends it; nothing at all: one READ finds the end
        exact = self.put("1700000001.chunk", bytes(range(256)) * 256)
        limited = self.put("1700000002.limited", b"y" * 300)
        empty = self.put("1700000003.empty", b"")
        self.set_rules({"read_max": 1000})
        r = self.fetch()
        self.assertEqual(r.returncode, 0, r.stderr.decode())
        self.assertEqual(self.local_data("1700000001.chunk"), exact)
        self.assertEqual(self.local_data("1700000002.limited"), limited)
        self.assertEqual(self.local_data("1700000003.empty"), empty)
        limited = self.put("1700000004.limited", b"z" * 300)
        self.set_rules({"read_max": 100})
        r = self.fetch()
        self.assertEqual(r.returncode, 0, r.stderr.decode())
        self.assertEqual(self.local_data("1700000004.limited"), limited)
        self.assertEqual(self.remote_names(), [])

    def test_a_file_longer_than_listed_in_one_read_is_refused(self):
        # the file has grown before the READ: the byte past the size
        # comes with the data and the message stays on the server
        self.put("1700000000.grows", b"x" * 10)
        self.set_rules({"grow": {"1700000000.grows": "y"}})
        r = self.fetch()
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn(b"1700000000.grows: refused: it grew while being fetched", r.stderr)
        self.assertEqual(self.local_names(), [])
        self.assertEqual(self.remote_names(), ["1700000000.grows"])


class TestHugeAnnounced(ScriptedCase):
    def test_2_63_bytes_announced_is_said_before_a_byte(self):
        self.small_disk()
        self.configure("max-size 0\n")
        self.put("1700000000.huge", b"x" * 10)
        small = self.put("1700000001.small")
        self.set_rules({"fake_size": {"1700000000.huge": 2 ** 63}, "endless": ["1700000000.huge"]})
        r = self.fetch()
        err = r.stderr.decode()
        self.assertEqual(r.returncode, 75, err)
        self.assertIn("1700000000.huge: 9223372036854775808 bytes is more than the free space in %s/tmp"
                      % self.local, err)
        self.assertEqual(self.local_names(), ["1700000001.small"])
        self.assertEqual(self.local_data("1700000001.small"), small)
        self.assertEqual(self.remote_names(), ["1700000000.huge"])
        self.assertEqual(self.local_names(sub="tmp"), [])

    def test_a_file_that_outgrows_its_size_is_stopped(self):
        self.configure("max-size 0\n")
        self.put("1700000000.grows", b"x" * 10)
        self.set_rules({"endless": ["1700000000.grows"]})
        r = self.fetch()
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn(b"1700000000.grows: refused: it grew while being fetched", r.stderr)
        self.assertEqual(self.local_names(), [])
        self.assertEqual(self.local_names(sub="tmp"), [])
        self.assertEqual(self.remote_names(), ["1700000000.grows"])


class TestCopy(FetchCase):
    mode = "copy"

    def test_a_switch_to_move_mode_does_not_bring_deleted_mail_back(self):
        # copy mode fetched three; the user deleted one here; the job is
        # changed to move mode: the deleted one is taken off the server,
        # not fetched again (move mode knew nothing of JOB.seen)
        for n in ("1700000000.a", "1700000001.b", "1700000002.c"):
            self.put(n)
        self.assertEqual(self.fetch().returncode, 0)
        os.unlink(os.path.join(self.local, "new", "1700000001.b"))
        self.put("1700000003.d")
        self.mode = "move"
        self.configure()
        r = self.fetch()
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(self.local_names(), ["1700000000.a", "1700000002.c", "1700000003.d"])
        self.assertEqual(self.remote_names(), [])
        self.assertEqual(self.claimed_names(), [])
        self.assertIn("1700000001.b fetched before (copy mode), removed from the server",
                      self.log())

    def test_copy_keeps_the_server_and_fetches_once(self):
        self.put("1700000000.new")
        self.put("1700000001.read:2,S", sub="cur")
        r = self.fetch()
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(self.local_names(), ["1700000000.new"])
        self.assertEqual(self.local_names(sub="cur"), ["1700000001.read:2,S"])
        self.assertEqual(self.remote_names(), ["1700000000.new"])
        # the user deletes the local copy; it is not fetched again
        os.unlink(os.path.join(self.local, "new", "1700000000.new"))
        # and another client reads the server's copy (new/ -> cur/)
        os.rename(os.path.join(self.remote, "new", "1700000000.new"),
                  os.path.join(self.remote, "cur", "1700000000.new:2,S"))
        self.put("1700000002.later")
        r = self.fetch()
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(self.local_names(), ["1700000002.later"])
        self.assertEqual(self.local_names(sub="cur"), ["1700000001.read:2,S"])

    def test_one_message_listed_in_new_and_cur_arrives_once(self):
        # the server's MUA is moving it from new/ to cur/ (a link, then an
        # unlink) while we list; later names locally make the index order
        # matter
        for sub in ("tmp", "new", "cur"):
            os.makedirs(os.path.join(self.local, sub), exist_ok=True)
        for i in range(9):
            with open(os.path.join(self.local, "cur", "18000000%02d.x:2,S" % i), "w") as f:
                f.write("old\n")
        data = self.put("1700000005.dup")
        self.put("1700000005.dup:2,S", data, sub="cur")
        r = self.fetch()
        self.assertEqual(r.returncode, 0, r.stderr)
        got = [n for n in self.local_names() + self.local_names(sub="cur")
               if n.startswith("1700000005.dup")]
        self.assertEqual(len(got), 1, got)
        # the very same name in both, in one batch: the second listing
        # must not take the first one's download away
        same = self.put("1700000006.same")
        self.put("1700000006.same", same, sub="cur")
        r = self.fetch()
        self.assertEqual(r.returncode, 0, r.stderr)
        got = [n for n in self.local_names() + self.local_names(sub="cur")
               if n.startswith("1700000006.same")]
        self.assertEqual(len(got), 1, got)
        self.assertEqual(self.local_names(sub="tmp"), [])

    def test_torn_seen_line_is_cut_not_glued(self):
        self.put("1700000000.a")
        self.put("1700000001.b")
        seen = os.path.join(os.path.dirname(self.queue), "fetch", "inbox.seen")
        os.makedirs(os.path.dirname(seen))
        with open(seen, "w") as f:
            f.write("INBOX/1700000000.a\nINBOX/17000")     # a crash mid-append
        r = self.fetch()
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(self.local_names(), ["1700000001.b"])   # a was seen
        self.assertEqual(open(seen).read(), "INBOX/1700000000.a\nINBOX/1700000001.b\n")


class TestCrash(FetchCase):
    def test_kill_at_every_step_loses_and_doubles_nothing(self):
        names = ["1700000000.M%dP%d.server" % (i, i) for i in range(3)]
        trace = None
        step = 1
        while True:
            # a fresh server and local Maildir for each crash point
            for root in (self.remote, self.local):
                for sub in ("tmp", "new", "cur", "postie-claims/" + self.client):
                    d = os.path.join(root, sub)
                    if os.path.isdir(d):
                        for f in os.listdir(d):
                            os.unlink(os.path.join(d, f))
            data = {n: self.put(n) for n in names}
            r = self.fetch(env={"POSTIE_CRASH_AT": str(step), "POSTIE_CRASH_TRACE": "1"})
            crashed = r.returncode == -9
            r2 = self.fetch()
            self.assertEqual(r2.returncode, 0, r2.stderr)
            # nothing lost, nothing doubled, nothing left behind
            self.assertEqual(self.local_names(), names, "crash point %d" % step)
            for n in names:
                self.assertEqual(self.local_data(n), data[n])
            self.assertEqual(self.remote_names(), [], "crash point %d" % step)
            self.assertEqual(self.claimed_names(), [], "crash point %d" % step)
            self.assertEqual(self.local_names(sub="tmp"), [], "crash point %d" % step)
            if not crashed:
                break
            trace = r.stderr
            step += 1
        # every kind of step was hit: per message claimed, downloaded,
        # linked, removed; once the directories synced
        self.assertGreaterEqual(step, 1 + 3 * 4 + 1)
        for kind in (b"claimed on the server", b"downloaded into tmp/", b"linked into new/",
                     b"local directories synced", b"removed on the server"):
            self.assertIn(kind, trace or b"")

    def test_dropped_link_midway(self):
        big = os.urandom(64 * 1024 * 1024)
        self.put("1700000000.big", big)
        small = self.put("1700000001.small")
        self.configure("max-size 100M\n")
        p = subprocess.Popen([os.path.join(self.bin, "fetch")], env=self.env,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        # cut the SSH connection (this server's session processes, never
        # others') mid-transfer
        self.assertTrue(self.wait_download())
        self.assertGreater(self.sshd.kill_sessions(), 0)
        out, err = p.communicate(timeout=120)
        # the link really broke mid-transfer: a deferral; the large one
        # not taken, the small one kept if it ended before the break
        self.assertEqual(p.returncode, 75, err)
        self.assertIn(b"1700000000.big from 127.0.0.1 failed", err)
        self.assertIn(self.local_names(), ([], ["1700000001.small"]))
        # claimed by this client (no other takes them), or not yet claimed
        self.assertEqual(sorted(self.remote_names() + self.claimed_names()),
                         ["1700000000.big", "1700000001.small"])
        self.assertIn("1700000000.big", self.claimed_names())
        r = self.fetch()
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(self.local_names(), ["1700000000.big", "1700000001.small"])
        self.assertEqual(self.local_data("1700000000.big"), big)
        self.assertEqual(self.local_data("1700000001.small"), small)
        self.assertEqual(self.remote_names(), [])
        self.assertEqual(self.claimed_names(), [])
        self.assertEqual(self.local_names(sub="tmp"), [])


class TestSharedMaildir(FetchCase):
    """Two jobs that write into one local Maildir (`quick` for INBOX from a
    key binding, `inbox` for every folder from cron) run at once: one
    waits for the other, and neither writes through the other's files."""
    folders = "INBOX .lists.*"

    def setUp(self):
        super().setUp()
        self.configure("max-size 100M\n",
                       "fetch quick\n  ssh %s@127.0.0.1:%d\n  ssh-key %s\n  remote %s\n"
                       "  local %s\n  client %s\n" % (self.sshd.user, self.sshd.port,
                                                       self.key, self.remote, self.local,
                                                       self.client))
        self.sent = {("", "1700000000.M0P0.big"):
                     self.put("1700000000.M0P0.big", os.urandom(20 * 1024 * 1024))}
        for i in range(1, 200):
            folder = "" if i % 2 else ".lists.dev"
            name = "1700000%03d.M%dP%d.server" % (i, i, i)
            self.sent[(folder, name)] = self.put(name, folder=folder)

    def start(self, job):
        return subprocess.Popen([os.path.join(self.bin, "fetch"), job], env=self.env,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE)

    def assert_all_here_once(self):
        for folder in ("", ".lists.dev"):
            names = sorted(n for f, n in self.sent if f == folder)
            self.assertEqual(self.local_names(folder), names)
            for n in names:
                self.assertEqual(self.local_data(n, folder), self.sent[(folder, n)], n)
            self.assertEqual(self.remote_names(folder), [])
            self.assertEqual(self.claimed_names(folder), [])
            self.assertEqual(self.local_names(folder, sub="tmp"), [])

    def start_cron_paused(self):
        """The cron job, stopped in the middle of the big download (it
        holds what it holds), so the other job surely starts meanwhile."""
        cron = self.start("inbox")
        self.assertTrue(self.wait_download())
        cron.send_signal(signal.SIGSTOP)
        self.addCleanup(lambda: cron.poll() is None and cron.kill())
        return cron

    def test_two_jobs_at_once(self):
        cron = self.start_cron_paused()
        quick = self.start("quick")
        time.sleep(0.3)
        cron.send_signal(signal.SIGCONT)
        out, err = quick.communicate(timeout=60)
        self.assertEqual(quick.returncode, 0, err)
        out, err = cron.communicate(timeout=60)
        self.assertEqual(cron.returncode, 0, err)
        self.assert_all_here_once()

    def test_one_killed_while_the_other_runs(self):
        # quick starts while cron downloads the big message, and is
        # killed: nothing of quick's may end up in new/ under cron's name
        cron = self.start_cron_paused()
        tmp = os.path.join(self.local, "tmp")

        def files():
            return {(e.name, e.inode()) for e in os.scandir(tmp)}
        paused = files()
        quick = self.start("quick")
        # killed as soon as it writes a download of its own, else after
        # 0.3 s (waiting for the Maildir's lock)
        end = time.time() + 0.3
        while time.time() < end and not (files() - paused):
            time.sleep(0.002)
        quick.kill()
        self.assertEqual(quick.wait(), -9)     # killed mid-run
        cron.send_signal(signal.SIGCONT)
        out, err = cron.communicate(timeout=60)
        self.assertEqual(cron.returncode, 0, err)
        r = self.fetch("inbox")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assert_all_here_once()


class TestLatency(FetchCase):
    """Through a link with a round trip of 100 ms: the requests of many
    files and folders are in flight at once, so the run costs a handful
    of round trips, not a few per message."""
    folders = "INBOX .f*"

    def through_proxy(self, delay_ms):
        proxy = LatencyProxy(self.sshd.port, delay_ms).start()
        self.addCleanup(proxy.stop)
        with open(os.path.join(self.dir, ".ssh", "known_hosts"), "a") as f:
            f.write(self.sshd.known_hosts_line(name="[127.0.0.1]:%d" % proxy.port))
        self.port = proxy.port      # configure() points the job at it
        return proxy

    def test_folders_and_messages_pipelined(self):
        names = ["17000000%02d.M%dP%d.server" % (i, i, i) for i in range(20)]
        folders = ["", ".f1", ".f2", ".f3"]
        for folder in folders:
            for n in names:
                self.put(n, folder=folder)
        self.through_proxy(50)
        self.configure()
        t = time.time()
        r = self.fetch()
        took = time.time() - t
        self.assertEqual(r.returncode, 0, r.stderr)
        for folder in folders:
            self.assertEqual(self.local_names(folder), names)
            self.assertEqual(self.remote_names(folder), [])
        # SSH handshake and login ~9 round trips, SFTP ~8; one request at
        # a time would be ~5 per message: 400 round trips, 40 s
        self.assertLess(took, 4.0, "80 messages in 4 folders took %.1f s at 100 ms RTT" % took)

    def test_a_server_that_stops_answering_is_bounded(self):
        big = os.urandom(32 * 1024 * 1024)
        self.put("1700000000.big", big)
        self.put("1700000001.small")
        proxy = self.through_proxy(0)
        self.configure("max-size 100M\n", "  timeout 2s\n")
        p = subprocess.Popen([os.path.join(self.bin, "fetch")], env=self.env,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        self.assertTrue(self.wait_download())
        proxy.frozen = True     # the link goes silent, the socket stays
        t = time.time()
        out, err = p.communicate(timeout=60)
        self.assertLess(time.time() - t, 10, err)
        self.assertEqual(p.returncode, 75, err)
        self.assertIn(b"answered nothing for 2 s", err)
        self.assertIn(b"1700000000.big from 127.0.0.1 failed", err)
        self.assertEqual(sorted(self.remote_names() + self.claimed_names()),
                         ["1700000000.big", "1700000001.small"])
        self.assertEqual(self.local_names(sub="tmp"), [])


class TestFullDisk(FetchCase):
    @unittest.skipUnless(os.geteuid() == 0, "mounting a tmpfs needs root")
    def test_full_local_disk_keeps_the_server_copy(self):
        self.small_disk()
        self.configure()
        small = self.put("1700000000.small")
        self.put("1700000001.big", b"x" * (1024 * 1024))
        r = self.fetch()
        self.assertEqual(r.returncode, 75, r.stderr)
        self.assertIn(b"1048576 bytes is more than the free space in %s/tmp" % self.local.encode(),
                      r.stderr)
        self.assertIn(b"1 message is bigger than the free space", r.stderr)
        # what fitted is here once; what did not is still on the server
        self.assertEqual(self.local_names(), ["1700000000.small"])
        self.assertEqual(self.local_data("1700000000.small"), small)
        self.assertEqual(self.remote_names(), ["1700000001.big"])
        self.assertEqual(self.local_names(sub="tmp"), [])


    @unittest.skipUnless(os.geteuid() == 0, "mounting a tmpfs needs root")
    def test_two_that_fit_one_at_a_time_but_not_together(self):
        # both used to start at once, both failed for want of room, run
        # after run: neither ever came
        self.small_disk()
        self.configure()
        os.makedirs(self.local, exist_ok=True)
        with open(os.path.join(os.path.dirname(self.local), "ballast"), "wb") as f:
            f.write(b"x" * (100 * 1024))
        for i in range(3):
            self.put("1700000%03d.small" % i)
        big = {n: self.put(n, os.urandom(48 * 1024).hex().encode())      # 96 KiB each
               for n in ("1700000100.big", "1700000101.big")}
        r = self.fetch()
        self.assertEqual(r.returncode, 75, r.stderr)
        self.assertIn(b"is more than the free space", r.stderr)
        self.assertNotIn(b"No space left on device", r.stderr)
        got = [n for n in self.local_names() if n.endswith(".big")]
        self.assertEqual(len(got), 1, r.stderr)          # one came whole
        self.assertEqual(self.local_data(got[0]), big[got[0]])
        self.assertEqual([n for n in self.remote_names() if n.endswith(".big")],
                         [n for n in big if n not in got])
        self.assertEqual(len([n for n in self.local_names() if n.endswith(".small")]), 3)
        self.assertEqual(self.local_names(sub="tmp"), [])


class TestParallelJobs(FetchCase):
    """The jobs of one run go at once (up to 4), each in a process of its
    own: two jobs over slow links cost about one job's time, not the sum,
    and their exit codes combine as before."""

    def job(self, name, port, remote, local):
        for sub in ("tmp", "new", "cur"):
            os.makedirs(os.path.join(remote, sub), exist_ok=True)
        return ("fetch %s\n  ssh %s@127.0.0.1:%d\n  ssh-key %s\n  remote %s\n"
                "  local %s\n  client %s\n" % (name, self.sshd.user, port, self.key,
                                                remote, local, self.client))

    def slow_port(self, delay_ms):
        proxy = LatencyProxy(self.sshd.port, delay_ms).start()
        self.addCleanup(proxy.stop)
        with open(os.path.join(self.dir, ".ssh", "known_hosts"), "a") as f:
            f.write(self.sshd.known_hosts_line(name="[127.0.0.1]:%d" % proxy.port))
        return proxy.port

    def timed(self, *args):
        t = time.monotonic()
        r = self.fetch(*args)
        return r, time.monotonic() - t

    def test_two_slow_jobs_take_one_jobs_time(self):
        roots = {n: (os.path.join(self.dir, n, "server"), os.path.join(self.dir, n, "local"))
                 for n in ("one", "two")}
        self.write_config("".join(self.job(n, self.slow_port(100), *roots[n])
                                  for n in ("one", "two")))
        mail = {}
        for n, (remote, local) in roots.items():
            name = "1700000000.M1P1.%s" % n
            mail[n] = BODY % (name.encode(), name.encode())
            with open(os.path.join(remote, "new", name), "wb") as f:
                f.write(mail[n])
        r, alone = self.timed("one")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertGreaterEqual(alone, 2.0)     # the link is what costs
        with open(os.path.join(roots["one"][0], "new", "1700000001.M2P2.one"), "wb") as f:
            f.write(mail["one"])
        r, both = self.timed()
        self.assertEqual(r.returncode, 0, r.stderr)
        print("\n  one job alone %.2f s, two jobs together %.2f s" % (alone, both))
        self.assertLess(both, 1.6 * alone)
        self.assertEqual(os.listdir(os.path.join(roots["one"][1], "new")).__len__(), 2)
        self.assertEqual(sorted(os.listdir(os.path.join(roots["two"][1], "new"))),
                         ["1700000000.M1P1.two"])
        self.assertEqual(open(os.path.join(roots["two"][1], "new", "1700000000.M1P1.two"),
                              "rb").read(), mail["two"])

    def test_progress_of_several_jobs_on_a_terminal(self):
        # one line for the run, the children's counts added up by the
        # parent; a child's warning comes whole, on a line of its own
        roots = {n: (os.path.join(self.dir, n, "server"), os.path.join(self.dir, n, "local"))
                 for n in ("one", "two")}
        self.write_config("".join(self.job(n, self.sshd.port, *roots[n])
                                  for n in ("one", "two")))
        for n, (remote, local) in roots.items():
            for i in range(30):
                with open(os.path.join(remote, "new", "17000000%02d.M%dP%d.%s" % (i, i, i, n)),
                          "wb") as f:
                    f.write(BODY % (n.encode(), b"%d" % i))
        os.symlink("/etc/passwd", os.path.join(roots["two"][0], "new", "1700000099.link"))
        rc, screen = self.run_cmd_tty("fetch", [])
        self.assertEqual(rc, 0, screen)
        self.assertIn("\rfetch: 2 jobs: 60 fetched, 0 already here\r\n", screen)
        self.assertRegex(screen, r"\rfetch: 2 jobs: [1-5]?[0-9] fetched")   # on the way
        lines = screen.split("\r\n")
        warned = [ln for ln in lines if "1700000099.link" in ln]
        self.assertEqual(len(warned), 1, screen)
        self.assertTrue(warned[0].startswith("fetch: two: "), repr(warned[0]))
        self.assertIn("refused: not a regular file (a symbolic link, never followed)", warned[0])
        for n, (remote, local) in roots.items():
            self.assertEqual(len(os.listdir(os.path.join(local, "new"))), 30)
        # not a terminal: no progress, the warning alone
        os.symlink("/etc/passwd", os.path.join(roots["one"][0], "new", "1700000098.link"))
        r = self.fetch()
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertNotIn(b"\r", r.stderr)
        self.assertNotIn(b"fetched", r.stderr)
        self.assertIn(b"fetch: one: ", r.stderr)

    def two_jobs_with_mail(self, port):
        roots = {n: (os.path.join(self.dir, n, "server"), os.path.join(self.dir, n, "local"))
                 for n in ("one", "two")}
        self.write_config("".join(self.job(n, port(), *roots[n]) for n in ("one", "two")))
        for n, (remote, local) in roots.items():
            with open(os.path.join(remote, "new", "1700000000.%s" % n), "wb") as f:
                f.write(BODY % (n.encode(), n.encode()))
        return roots

    def test_crash_step_kills_each_job_alone(self):
        # each job counts its own steps: both die at their first; the run
        # says so (70), and the next run finishes their work
        roots = self.two_jobs_with_mail(lambda: self.sshd.port)
        r = self.fetch(env={"POSTIE_CRASH_AT": "1"})
        self.assertEqual(r.returncode, 70, r.stderr)
        for n in ("one", "two"):
            self.assertIn(b"job '%s': killed by signal 9" % n.encode(), r.stderr)
        r = self.fetch()
        self.assertEqual(r.returncode, 0, r.stderr)
        for n, (remote, local) in roots.items():
            self.assertEqual(os.listdir(os.path.join(local, "new")), ["1700000000." + n])
            self.assertEqual(os.listdir(os.path.join(remote, "new")), [])

    def test_killed_run_takes_its_jobs_along(self):
        self.two_jobs_with_mail(lambda: self.slow_port(100))
        # the jobs need about 3 s each (the slow link); they go at once
        # when the run is killed
        p = subprocess.Popen([os.path.join(self.bin, "fetch")], env=self.env,
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        kids = set()
        end = time.time() + 10
        while len(kids) < 2 and time.time() < end:
            with open("/proc/%d/task/%d/children" % (p.pid, p.pid)) as f:
                kids = set(int(k) for k in f.read().split())
            time.sleep(0.01)
        self.assertEqual(len(kids), 2)
        p.kill()
        p.wait()
        end = time.time() + 1
        while time.time() < end and any(os.path.exists("/proc/%d" % k) for k in kids):
            time.sleep(0.01)
        # gone (or a zombie waiting for its reaper)
        for k in kids:
            try:
                with open("/proc/%d/stat" % k) as f:
                    self.assertEqual(f.read().rsplit(")", 1)[1].split()[0], "Z")
            except FileNotFoundError:
                pass

    def test_at_most_four_at_once(self):
        port = self.slow_port(100)
        roots = {"job%d" % i: (os.path.join(self.dir, "job%d" % i, "server"),
                               os.path.join(self.dir, "job%d" % i, "local")) for i in range(5)}
        self.write_config("".join(self.job(n, port, *roots[n]) for n in sorted(roots)))
        for n, (remote, local) in roots.items():
            with open(os.path.join(remote, "new", "1700000000." + n), "wb") as f:
                f.write(BODY % (n.encode(), n.encode()))
        p = subprocess.Popen([os.path.join(self.bin, "fetch")], env=self.env,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        most = 0
        while p.poll() is None:
            try:
                with open("/proc/%d/task/%d/children" % (p.pid, p.pid)) as f:
                    most = max(most, len(f.read().split()))
            except (FileNotFoundError, ProcessLookupError):
                pass
            time.sleep(0.005)
        out, err = p.communicate()
        self.assertEqual(p.returncode, 0, err)
        self.assertEqual(most, 4)
        for n, (remote, local) in roots.items():
            self.assertEqual(os.listdir(os.path.join(local, "new")), ["1700000000." + n])

    def closed_port(self):
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
        s.close()
        return port

    def test_one_unreachable_is_75_and_the_other_fetches(self):
        roots = {n: (os.path.join(self.dir, n, "server"), os.path.join(self.dir, n, "local"))
                 for n in ("gone", "here")}
        self.write_config(self.job("gone", self.closed_port(), *roots["gone"]) +
                          self.job("here", self.sshd.port, *roots["here"]))
        with open(os.path.join(roots["here"][0], "new", "1700000000.x"), "wb") as f:
            f.write(BODY % (b"x", b"x"))
        r = self.fetch()
        self.assertEqual(r.returncode, 75, r.stderr)
        self.assertIn(b"fetch: job 'gone': cannot connect to 127.0.0.1", r.stderr)
        self.assertEqual(os.listdir(os.path.join(roots["here"][1], "new")), ["1700000000.x"])
        self.assertEqual(os.listdir(os.path.join(roots["here"][0], "new")), [])

    def test_a_refusal_wins_over_a_deferral(self):
        # the unreachable job comes first, the refused login second: 77,
        # and the deferral is still named
        roots = {n: (os.path.join(self.dir, n, "server"), os.path.join(self.dir, n, "local"))
                 for n in ("gone", "stranger")}
        conf = self.job("gone", self.closed_port(), *roots["gone"])
        self.key = sshd.keygen(os.path.join(self.dir, "stranger_key"))     # not authorized
        self.write_config(conf + self.job("stranger", self.sshd.port, *roots["stranger"]))
        r = self.fetch()
        self.assertEqual(r.returncode, 77, r.stderr)
        # each named in the configuration's order (the worse one last was
        # main's line), then what decided the exit status
        lines = r.stderr.decode().splitlines()
        self.assertTrue(lines[0].startswith("fetch: job 'gone': cannot connect to 127.0.0.1"),
                        lines)
        self.assertTrue(lines[1].startswith("fetch: job 'stranger':"), lines)
        self.assertEqual(lines[2], "fetch: 2 of 2 jobs failed (each is named above); the exit "
                         "status is that of job 'stranger'")

    def test_dry_run_lines_whole(self):
        roots = {}
        conf = ""
        for i in range(4):
            n = "job%d" % i
            roots[n] = (os.path.join(self.dir, n, "server"), os.path.join(self.dir, n, "local"))
            conf += self.job(n, self.sshd.port, *roots[n])
            for m in range(300):
                with open(os.path.join(roots[n][0], "new", "17000%05d.M%dP%d.%s" % (m, m, m, n)),
                          "wb") as f:
                    f.write(b"x")
        self.write_config(conf)
        r = self.fetch("-n")
        self.assertEqual(r.returncode, 0, r.stderr)
        lines = r.stdout.decode().splitlines()
        self.assertEqual(len(lines), 4 * 300)
        for line in lines:
            self.assertRegex(line, r"^job\d INBOX 17000\d{5}\.M\d+P\d+\.job\d 1$")
        for n, (remote, local) in roots.items():
            self.assertEqual(len(os.listdir(os.path.join(remote, "new"))), 300)


class TestRefusals(FetchCase):
    def test_lock_held(self):
        self.put("1700000000.x")
        # the state dir sits beside the queue
        d = os.path.join(os.path.dirname(self.queue), "fetch")
        os.makedirs(d, exist_ok=True)
        with open(os.path.join(d, "inbox.lock"), "w") as f:
            fcntl.flock(f, fcntl.LOCK_EX)
            r = self.fetch()
        self.assertEqual(r.returncode, 75, r.stderr)
        self.assertIn(b"another fetch of job 'inbox' is running", r.stderr)
        self.assertEqual(self.remote_names(), ["1700000000.x"])

    def test_unreachable_is_75(self):
        self.put("1700000000.x")
        self.sshd.stop()
        r = self.fetch()
        self.assertEqual(r.returncode, 75, r.stderr)
        self.assertIn(b"cannot connect to 127.0.0.1", r.stderr)

    def test_silent_server_is_bounded_by_timeout(self):
        # a TCP listener that never says a word: the SSH handshake waits
        # for the job's "timeout", not for ever
        silent = socket.socket()
        silent.bind(("127.0.0.1", 0))
        silent.listen(4)
        self.addCleanup(silent.close)
        self.put("1700000000.x")
        self.write_config(
            "fetch inbox\n  ssh %s@127.0.0.1:%d\n  ssh-key %s\n  remote %s\n  local %s\n"
            "  connect-timeout 2s\n  timeout 2s\n" % (self.sshd.user, silent.getsockname()[1],
                                                    self.key, self.remote, self.local))
        t = time.time()
        r = self.fetch()
        self.assertLess(time.time() - t, 4.5, r.stderr)
        self.assertEqual(r.returncode, 75, r.stderr)
        self.assertIn(b"SSH handshake with 127.0.0.1 failed: nothing came within 2 s of the "
                      b"connection (timeout) while waiting for the server's SSH banner", r.stderr)
        self.assertEqual(self.remote_names(), ["1700000000.x"])

    def test_a_server_that_closes_before_its_banner(self):
        # sshd over its MaxStartups closes new connections at once: said
        # as such, a deferral (libssh2's own words were "Failed getting
        # banner")
        closer = socket.socket()
        closer.bind(("127.0.0.1", 0))
        closer.listen(4)
        self.addCleanup(closer.close)

        def close_each():
            for _ in range(4):
                try:
                    c, _ = closer.accept()
                except OSError:
                    return
                c.close()
        t = threading.Thread(target=close_each, daemon=True)
        t.start()
        self.put("1700000000.x")
        self.write_config(
            "fetch inbox\n  ssh %s@127.0.0.1:%d\n  ssh-key %s\n  remote %s\n  local %s\n"
            % (self.sshd.user, closer.getsockname()[1], self.key, self.remote, self.local))
        r = self.fetch()
        self.assertEqual(r.returncode, 75, r.stderr)
        self.assertIn(b"SSH handshake with 127.0.0.1 failed: it closed the connection before its "
                      b"SSH banner (too many connections at once, its MaxStartups? or no SSH "
                      b"server on that port); try again later", r.stderr)

    def silent_config(self, port, timeout="2s"):
        self.write_config(
            "fetch inbox\n  ssh %s@127.0.0.1:%d\n  ssh-key %s\n  remote %s\n  local %s\n"
            "  connect-timeout 2s\n  timeout %s\n" % (self.sshd.user, port, self.key,
                                                     self.remote, self.local, timeout))

    def test_a_banner_then_silence_is_bounded_by_timeout(self):
        # the server says its SSH banner and then nothing: the key
        # exchange waits for the job's "timeout", and says so
        srv = socket.socket()
        srv.bind(("127.0.0.1", 0))
        srv.listen(4)
        self.addCleanup(srv.close)
        held = []

        def greet():
            try:
                c, _ = srv.accept()
            except OSError:
                return
            held.append(c)
            c.sendall(b"SSH-2.0-OpenSSH_9.2p1 Debian-2\r\n")
        threading.Thread(target=greet, daemon=True).start()
        self.addCleanup(lambda: [c.close() for c in held])
        self.put("1700000000.x")
        self.silent_config(srv.getsockname()[1])
        t = time.time()
        r = self.fetch()
        took = time.time() - t
        self.assertEqual(r.returncode, 75, r.stderr)
        self.assertLess(took, 4.5, r.stderr)
        self.assertIn(b"SSH handshake with 127.0.0.1 failed: nothing came within 2 s of the "
                      b"connection (timeout) while waiting for the key exchange", r.stderr)
        self.assertEqual(self.remote_names(), ["1700000000.x"])

    def test_a_dripping_opening_is_bounded_by_one_timeout(self):
        # every step of the opening answers within the timeout (0.4 s each
        # way, timeout 3 s; the handshake takes about 3 round trips), but
        # the handshake, login and SFTP start take ten: the whole opening
        # gets one timeout, not one a step
        proxy = LatencyProxy(self.sshd.port, 400).start()
        self.addCleanup(proxy.stop)
        with open(os.path.join(self.dir, ".ssh", "known_hosts"), "a") as f:
            f.write(self.sshd.known_hosts_line(name="[127.0.0.1]:%d" % proxy.port))
        self.put("1700000000.x")
        self.silent_config(proxy.port, "3s")
        t = time.time()
        r = self.fetch()
        took = time.time() - t
        self.assertEqual(r.returncode, 75, r.stderr)
        self.assertLess(took, 5.5, r.stderr)
        self.assertRegex(r.stderr, rb"nothing came within 3 s of the connection \(timeout\) "
                         rb"while waiting for (the key exchange|the (answer to the )?login|a channel|"
                         rb"the SFTP)")
        self.assertEqual(self.remote_names(), ["1700000000.x"])

    def test_unknown_host_key_is_76(self):
        os.unlink(os.path.join(self.dir, ".ssh", "known_hosts"))
        r = self.fetch()
        self.assertEqual(r.returncode, 76, r.stderr)
        self.assertIn(self.sshd.host_fingerprint().encode(), r.stderr)

    def test_login_refused_is_77(self):
        self.put("1700000000.x")
        self.key = sshd.keygen(os.path.join(self.dir, "stranger"))     # not authorized
        self.configure()
        r = self.fetch()
        self.assertEqual(r.returncode, 77, r.stderr)
        self.assertIn(b"refused %s with ssh-key %s" % (self.sshd.user.encode(),
                                                       self.key.encode()), r.stderr)
        self.assertEqual(self.remote_names(), ["1700000000.x"])

    def test_missing_remote_maildir_is_76(self):
        self.remote = os.path.join(self.dir, "nowhere")
        self.configure()
        r = self.fetch()
        self.assertEqual(r.returncode, 76, r.stderr)
        self.assertIn(b"cannot list", r.stderr)

    def test_unknown_job_and_no_jobs(self):
        r = self.fetch("nosuchjob")
        self.assertEqual(r.returncode, 64, r.stderr)
        self.assertIn(b"no fetch job named 'nosuchjob'", r.stderr)
        self.write_config("")
        r = self.fetch()
        self.assertEqual(r.returncode, 78, r.stderr)
        self.assertIn(b"no fetch job", r.stderr)


def deliver(remote, name, data):
    """As an MDA does: write in tmp/, then rename into new/."""
    tmp = os.path.join(remote, "tmp", name)
    with open(tmp, "wb") as f:
        f.write(data)
    os.rename(tmp, os.path.join(remote, "new", name))


class TestClients(FetchCase):
    """Several clients, each with its own config, state and local Maildir,
    fetch one server Maildir at once (move mode): each message reaches
    exactly one of them, or stays on the server."""

    def test_claims_another_fetcher_of_this_client_name_made_are_left_alone(self):
        # two machines of one host name (the default client), or two jobs
        # whose folders overlap: the claims one of them is downloading
        # turn up in the other's claim directory, and were taken as its
        # own leftovers: both got the message. A run now takes only what
        # its job claimed (fetch/JOB.claims, written before each claim)
        self.put("1700000000.first")
        r = self.fetch()
        self.assertEqual(r.returncode, 0, r.stderr)
        journal = os.path.join(os.path.dirname(self.queue), "fetch", "inbox.claims")
        self.assertTrue(os.path.exists(journal))
        theirs = ["1700000001.theirs", "1700000002.theirs"]
        for n in theirs:
            self.put(n, sub="postie-claims/laptop")
        self.put("1700000003.new")
        r = self.fetch()
        self.assertEqual(r.returncode, 78, r.stderr)
        self.assertIn(b"2 messages in this client's claims (postie-claims/laptop) were not "
                      b"claimed by this job on this machine: another machine or job fetches "
                      b"from this server as client 'laptop'", r.stderr)
        self.assertEqual(self.local_names(), ["1700000000.first", "1700000003.new"])
        self.assertEqual(self.claimed_names(), theirs)          # untouched
        # its own leftovers it finishes: a run cut off after its claims
        # (written ahead) left them
        with open(journal, "a") as f:
            f.write("*/1700000001.theirs\n")
        r = self.fetch()
        self.assertEqual(r.returncode, 78, r.stderr)
        self.assertIn(b"1 message in this client's claims", r.stderr)
        self.assertEqual(self.local_names(),
                         ["1700000000.first", "1700000001.theirs", "1700000003.new"])
        self.assertEqual(self.claimed_names(), ["1700000002.theirs"])
        # no journal yet (the first run of this version): every claim is
        # taken as before
        os.unlink(journal)
        r = self.fetch()
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(len(self.local_names()), 4)
        self.assertEqual(self.claimed_names(), [])

    def client_config(self, client, extra=""):
        """A second machine: its own config, queue (state) and Maildir."""
        root = os.path.join(self.dir, client)
        os.makedirs(root, exist_ok=True)
        conf = os.path.join(root, "postie.conf")
        with open(conf, "w") as f:
            f.write("queue %s\nlog %s\n" % (os.path.join(root, "queue"),
                                           os.path.join(root, "postie.log")))
            f.write("fetch inbox\n  ssh %s@127.0.0.1:%d\n  ssh-key %s\n  remote %s\n"
                    "  local %s\n  client %s\n" % (self.sshd.user, self.sshd.port, self.key,
                                                   self.remote, os.path.join(root, "Maildir"),
                                                   client) + extra)
        return conf, os.path.join(root, "Maildir")

    def start(self, conf, *args):
        return subprocess.Popen([os.path.join(self.bin, "fetch"), "-C", conf] + list(args),
                                env=self.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)

    def assert_exactly_once(self, sent, locals_):
        """Every message sent is in exactly one local new/ or still in the
        server's new/, byte for byte; nothing claimed, no tmp/ file left."""
        where = {}
        for root in locals_ + [self.remote]:
            d = os.path.join(root, "new")
            for n in (os.listdir(d) if os.path.isdir(d) else []):
                where.setdefault(n, []).append(root)
                with open(os.path.join(d, n), "rb") as f:
                    self.assertEqual(f.read(), sent.get(n), "%s in %s" % (n, root))
        doubled = {n: w for n, w in where.items() if len(w) > 1}
        self.assertEqual(doubled, {}, "%d messages in two places" % len(doubled))
        self.assertEqual(sorted(set(sent) - set(where)), [], "lost")
        self.assertEqual(sorted(set(where) - set(sent)), [], "unknown")
        for root in locals_:
            self.assertEqual(os.listdir(os.path.join(root, "tmp")), [], root)
        claims = os.path.join(self.remote, "postie-claims")
        for c in (os.listdir(claims) if os.path.isdir(claims) else []):
            self.assertEqual(os.listdir(os.path.join(claims, c)), [], "claimed by %s" % c)

    def fill(self, n, big=0):
        sent = {}
        for i in range(big):
            name = "1600000000.B%dP1.server" % i
            sent[name] = os.urandom(4 * 1024 * 1024)
            deliver(self.remote, name, sent[name])
        for i in range(n):
            name = "1700000000.M%dP%d.server" % (i, i)
            sent[name] = BODY % (name.encode(), os.urandom(8).hex().encode())
            deliver(self.remote, name, sent[name])
        return sent

    def run_clients(self, sent, kill_a=False):
        """Clients a and b at once while an MDA keeps delivering; with
        kill_a, a is killed mid-download and run again afterwards."""
        conf_a, local_a = self.client_config("a")
        conf_b, local_b = self.client_config("b")
        a = self.start(conf_a)
        b = self.start(conf_b)
        killed_claims = None
        if kill_a:
            self.assertTrue(self.wait_download(local_a, timeout=20))
            a.kill()
        i = 0
        while a.poll() is None or b.poll() is None or i < 50:
            name = "1800000000.M%dP%d.mda" % (i, i)
            sent[name] = BODY % (name.encode(), b"late")
            deliver(self.remote, name, sent[name])
            i += 1
            time.sleep(0.002)
        out_a, err_a = a.communicate()
        out_b, err_b = b.communicate()
        self.assertEqual(b.returncode, 0, err_b)
        if kill_a:
            self.assertEqual(a.returncode, -9)
            killed_claims = self.claimed_names(client="a")
            self.assertNotEqual(killed_claims, [])     # a's claims wait for a
            r = self.run_cmd("fetch", ["-C", conf_a])
            self.assertEqual(r.returncode, 0, r.stderr)
            for n in killed_claims:                     # finished by a alone
                self.assertTrue(os.path.exists(os.path.join(local_a, "new", n)), n)
        else:
            self.assertEqual(a.returncode, 0, err_a)
        self.assert_exactly_once(sent, [local_a, local_b])
        # no warning said "left there" of a message another client took
        for err in (err_a, err_b):
            self.assertNotIn(b"left there", err)
        return local_a, local_b

    def test_two_clients_and_a_delivery_at_once(self):
        sent = self.fill(2000)
        local_a, local_b = self.run_clients(sent)
        # both took a share (they really ran at once)
        self.assertGreater(len(os.listdir(os.path.join(local_a, "new"))), 0)
        self.assertGreater(len(os.listdir(os.path.join(local_b, "new"))), 0)

    def test_one_client_killed_then_run_again(self):
        sent = self.fill(2000, big=4)
        self.run_clients(sent, kill_a=True)

    def test_two_clients_take_cur_once(self):
        # "take new cur": what a mail reader on the server moved to cur/ is
        # claimed like new/ mail, so two clients never both take it; it
        # lands in the local cur/ with its flags
        sent = {}
        for i in range(1000):
            name = "1700000000.M%dP%d.server:2,S" % (i, i)
            sent[name] = self.put(name, BODY % (name.encode(), os.urandom(8).hex().encode()),
                                  sub="cur")
        conf_a, local_a = self.client_config("a", "  take new cur\n")
        conf_b, local_b = self.client_config("b", "  take new cur\n")
        a, b = self.start(conf_a), self.start(conf_b)
        _, err_a = a.communicate(timeout=120)
        _, err_b = b.communicate(timeout=120)
        self.assertEqual((a.returncode, b.returncode), (0, 0), err_a + err_b)
        where = {}
        for root in (local_a, local_b, self.remote):
            for n in os.listdir(os.path.join(root, "cur")):
                where.setdefault(n, []).append(root)
                with open(os.path.join(root, "cur", n), "rb") as f:
                    self.assertEqual(f.read(), sent.get(n), "%s in %s" % (n, root))
        doubled = {n: w for n, w in where.items() if len(w) > 1}
        self.assertEqual(doubled, {}, "%d messages in two places" % len(doubled))
        self.assertEqual(sorted(set(sent) - set(where)), [], "lost")
        self.assertEqual(self.remote_names(sub="cur"), [])
        self.assertEqual(self.local_names(sub="new"), [])
        self.assertEqual(self.claimed_names(client="a") + self.claimed_names(client="b"), [])

    def test_a_claim_from_cur_goes_back_to_cur(self):
        # a claim taken from cur/ (its name has the ":2," of cur/) is
        # finished into the local cur/ after a crash, and given back to the
        # server's cur/ by --release
        data = self.put("1700000000.M1P1.server:2,RS", sub="postie-claims/" + self.client)
        self.configure(job_extra="  take new cur\n")
        r = self.fetch()
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(self.local_names(sub="cur"), ["1700000000.M1P1.server:2,RS"])
        self.assertEqual(self.local_data("1700000000.M1P1.server:2,RS", sub="cur"), data)
        self.assertEqual(self.claimed_names(), [])
        self.put("1700000001.M2P2.server:2,S", sub="postie-claims/desktop")
        self.put("1700000002.M3P3.server", sub="postie-claims/desktop")
        self.quiet_claims("desktop")
        r = self.fetch("--release", "desktop")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(self.remote_names(sub="cur"), ["1700000001.M2P2.server:2,S"])
        self.assertEqual(self.remote_names(), ["1700000002.M3P3.server"])

    def test_own_claims_finished_after_a_crash(self):
        # a run of this client was cut off: one claim not downloaded yet,
        # one downloaded and linked but not removed from the claims
        claims = os.path.join(self.remote, "postie-claims", self.client)
        os.makedirs(claims)
        data = BODY % (b"claimed", b"1")
        with open(os.path.join(claims, "1700000000.M1P1.server"), "wb") as f:
            f.write(data)
        here = BODY % (b"here", b"2")
        with open(os.path.join(claims, "1700000001.M2P2.server"), "wb") as f:
            f.write(here)
        for sub in ("tmp", "new", "cur"):
            os.makedirs(os.path.join(self.local, sub), exist_ok=True)
        with open(os.path.join(self.local, "new", "1700000001.M2P2.server"), "wb") as f:
            f.write(here)
        r = self.fetch()
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(self.local_names(), ["1700000000.M1P1.server", "1700000001.M2P2.server"])
        self.assertEqual(self.local_data("1700000000.M1P1.server"), data)
        self.assertEqual(self.local_data("1700000001.M2P2.server"), here)
        self.assertEqual(self.claimed_names(), [])
        # another client's claims are never taken
        self.put("1700000002.M3P3.server", sub="postie-claims/desktop")
        r = self.fetch()
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(self.claimed_names(client="desktop"), ["1700000002.M3P3.server"])
        self.assertEqual(len(self.local_names()), 2)

    def test_stale_claims_reported_and_released(self):
        data = self.put("1700000000.M1P1.server", sub="postie-claims/desktop")
        self.put("1700000001.M2P2.server", sub="postie-claims/phone")    # recent
        old = time.time() - 8 * 86400
        os.utime(os.path.join(self.remote, "postie-claims", "desktop"), (old, old))
        r = self.fetch()
        self.assertEqual(r.returncode, 0, r.stderr)
        err = r.stderr.decode()
        self.assertIn("INBOX: 1 message claimed by client 'desktop', untouched for 8 days; "
                      "if that client is gone, 'fetch --release desktop inbox' gives them "
                      "back to new/", err)
        self.assertNotIn("phone", err)
        self.assertIn("claimed by client 'desktop'", self.log())
        self.assertEqual(self.local_names(), [])
        r = self.fetch("--release", "desktop")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(self.claimed_names(client="desktop"), [])
        self.assertEqual(self.remote_names(), ["1700000000.M1P1.server"])
        self.assertIn("1 message claimed by client 'desktop' given back to new/", self.log())
        r = self.fetch()
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(self.local_names(), ["1700000000.M1P1.server"])
        self.assertEqual(self.local_data("1700000000.M1P1.server"), data)
        self.assertEqual(self.claimed_names(client="phone"), ["1700000001.M2P2.server"])

    def test_release_of_many_claims_in_two_folders(self):
        # more claims than the first allocation of items (64): the
        # renames in flight must not point into a moved array
        self.folders = "INBOX .lists.*"
        self.configure()
        names = {"": [], ".lists.dev": []}
        for sub in ("new", "cur", "tmp"):
            os.makedirs(os.path.join(self.remote, ".lists.dev", sub), exist_ok=True)
        for i in range(150):
            folder = ".lists.dev" if i % 3 == 0 else ""
            name = "1700%06d.M%dP%d.server" % (i, i, i)
            self.put(name, folder=folder, sub="postie-claims/desktop")
            names[folder].append(name)
        self.put("1700999999.M9P9.server:2,S", folder="", sub="postie-claims/desktop")
        self.quiet_claims("desktop")
        self.quiet_claims("desktop", ".lists.dev")
        r = self.fetch("--release", "desktop")
        self.assertEqual(r.returncode, 0, r.stderr)
        for folder in names:
            self.assertEqual(self.claimed_names(folder, client="desktop"), [])
            self.assertEqual(self.remote_names(folder), sorted(names[folder]))
        self.assertEqual(self.remote_names("", "cur"), ["1700999999.M9P9.server:2,S"])
        self.assertIn("151 messages claimed by client 'desktop' given back to new/",
                      self.log())
        self.assertIn("inbox: 151 messages claimed by client 'desktop' given back",
                      r.stdout.decode())      # said where the user is, not only in the log

    def test_release_of_a_client_at_work_is_refused(self):
        # its claim directory changed a minute ago: it may be fetching
        # those messages now, and given back they would come twice
        self.put("1700000000.M1P1.server", sub="postie-claims/desktop")
        d = os.path.join(self.remote, "postie-claims", "desktop")
        recent = time.time() - 60
        os.utime(d, (recent, recent))
        r = self.fetch("--release", "desktop")
        self.assertEqual(r.returncode, 75, r.stderr)
        self.assertRegex(r.stderr.decode(), r"client 'desktop' looks active: its claims in INBOX "
                         r"changed 6\d s ago; --release is for a client that no longer runs "
                         r"\(what it is fetching would be fetched twice\): try again once they "
                         r"have been left alone for 10 minutes")
        self.assertEqual(self.claimed_names(client="desktop"), ["1700000000.M1P1.server"])
        self.quiet_claims("desktop")
        r = self.fetch("--release", "desktop")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(self.remote_names(), ["1700000000.M1P1.server"])

    def test_release_names_no_option(self):
        # "fetch --release -n X" is no release of a client called "-n"
        r = self.fetch("--release", "-n", "inbox")
        self.assertEqual(r.returncode, 64, r.stderr)
        self.assertIn(b"--release", r.stderr)

    def test_release_of_this_machines_own_client_is_refused(self):
        # its claims may be messages it has already taken: given back,
        # another client would take them a second time
        self.put("1700000000.M1P1.server", sub="postie-claims/" + self.client)
        r = self.fetch("--release", self.client)
        self.assertEqual(r.returncode, 64, r.stderr)
        self.assertIn("that is the client name of job 'inbox' on this machine", r.stderr.decode())
        # also when another job is named: its run would give them away
        self.configure(job_extra="fetch other\n  ssh %s@127.0.0.1:%d\n  ssh-key %s\n  remote %s\n"
                       "  local %s\n  client other\n" % (
                           self.sshd.user, self.sshd.port, self.key, self.remote,
                           os.path.join(self.dir, "Other")))
        r = self.fetch("--release", self.client, "other")
        self.assertEqual(r.returncode, 64, r.stderr)
        self.assertEqual(self.claimed_names(), ["1700000000.M1P1.server"])

    def test_release_that_cannot_give_a_claim_back_fails(self):
        self.put("1700000000.M1P1.server", sub="postie-claims/desktop")
        self.put("1700000000.M1P1.server", sub="new")          # the name is taken there
        self.put("1700000001.M2P2.server", sub="postie-claims/desktop")
        self.quiet_claims("desktop")
        r = self.fetch("--release", "desktop")
        self.assertEqual(r.returncode, 75, r.stderr)
        err = r.stderr.decode()
        self.assertIn("postie-claims/desktop/1700000000.M1P1.server: cannot give it back to "
                      "new/: ", err)
        self.assertIn("it stays where it is: look at it on the server", err)
        self.assertNotIn("for the next run of client", err)
        self.assertIn("1 claim of client 'desktop' could not be given back", err)
        self.assertEqual(self.claimed_names(client="desktop"), ["1700000000.M1P1.server"])
        self.assertEqual(self.remote_names(), ["1700000000.M1P1.server",
                                               "1700000001.M2P2.server"])

    def test_release_refuses_a_name_no_client_can_have(self):
        self.put("1700000000.M1P1.server", sub="postie-claims/desktop")
        for bad in ("..", "a/b", "", "x y", ".x"):
            r = self.fetch("--release", bad)
            self.assertEqual(r.returncode, 64, (bad, r.stderr))
            self.assertIn("--release", r.stderr.decode())
        self.assertEqual(self.claimed_names(client="desktop"), ["1700000000.M1P1.server"])


class TestSoak(FetchCase):
    """fetch killed (SIGKILL) at random moments, again and again, over a
    server Maildir of 2,000 messages (ten of them 0.5 to 1 MiB), until a
    run ends with exit 0 and the server empty: each message afterwards
    locally exactly once, byte for byte, and after every kill nothing
    lost, nothing torn in new/.
    POSTIE_SOAK_SEED=N replays the kill delays and the contents;
    POSTIE_SOAK_VERBOSE=1 prints the seed, the runs and the kills."""
    folders = "INBOX .lists.*"
    N = 2000
    MAX_KILLS = 40

    def fill(self, rng, start=0, count=None):
        sent = {}
        for i in range(start, start + (count or self.N)):
            folder = ".lists.dev" if i % 4 == 0 else ""
            name = "1700%06d.M%dP%d.server" % (i, i, i)
            # a few KiB each; every 200th 0.5 to 1 MiB, a download of many reads
            size = rng.randint(256, 512) * 1024 if i % 200 == 100 else rng.randint(512, 3072)
            sent[(folder, name)] = self.put(name, b"From: a@example.org\nSubject: %s\n\n%s\n" % (
                name.encode(), rng.randbytes(size).hex().encode()), folder)
        return sent

    def calibrate(self):
        """How long one whole run takes here: the same files (hard links)
        in a second server Maildir, fetched by a job of their own."""
        calib = os.path.join(self.dir, "server", "Calib")
        for folder in ("", ".lists.dev"):
            os.makedirs(os.path.join(calib, folder, "new"))
            for n in self.remote_names(folder):
                os.link(os.path.join(self.remote, folder, "new", n),
                        os.path.join(calib, folder, "new", n))
        self.configure(job_extra="fetch calib\n  ssh %s@127.0.0.1:%d\n  ssh-key %s\n  remote %s\n"
                       "  local %s\n  folders %s\n  client %s\n" % (
                           self.sshd.user, self.sshd.port, self.key, calib,
                           os.path.join(self.dir, "CalibMaildir"), self.folders, self.client))
        t = time.monotonic()
        r = self.fetch("calib")
        took = time.monotonic() - t
        self.assertEqual(r.returncode, 0, r.stderr)
        t = time.monotonic()
        r = self.fetch("calib")            # nothing to take: login and listing
        self.assertEqual(r.returncode, 0, r.stderr)
        return took, time.monotonic() - t

    def left_on_server(self):
        return sum(len(self.remote_names(f)) + len(self.claimed_names(f))
                   for f in ("", ".lists.dev"))

    def state(self):
        """What a run changes: local new/ and tmp/, the server's new/ and
        claims."""
        return [(f, sub, tuple(self.local_names(f, sub=sub))) for f in ("", ".lists.dev")
                for sub in ("new", "tmp")] + [
            (f, tuple(self.remote_names(f)), tuple(self.claimed_names(f)))
            for f in ("", ".lists.dev")]

    def check_after_kill(self, sent, why):
        """Nothing lost (each message in local new/, the server's new/ or
        this client's claims), nothing torn or foreign in new/ or cur/,
        nothing but this host's own downloads in tmp/. The killed run
        writes no more; the server side may still finish its requests
        (a claim, a remove), so local first, then new/, then the claims."""
        for folder in ("", ".lists.dev"):
            here = self.local_names(folder)
            for n in here:
                self.assertIn((folder, n), sent, "%s: a stranger in %s/new" % (why, folder))
                got = self.local_data(n, folder)
                self.assertTrue(got == sent[(folder, n)], "%s: %s/new/%s differs from the "
                                "server's: %d bytes, %d there" % (why, folder, n, len(got),
                                                                  len(sent[(folder, n)])))
            self.assertEqual(self.local_names(folder, sub="cur"), [], why)
            for n in self.local_names(folder, sub="tmp"):
                self.assertTrue(n.endswith(",postie-fetch"), "%s: tmp/%s" % (why, n))
            where = set(here) | set(self.remote_names(folder)) | set(self.claimed_names(folder))
            lost = sorted(n for f, n in sent if f == folder and n not in where)
            self.assertEqual(lost, [], "%s: lost from %s" % (why, folder or "INBOX"))

    def test_killed_at_random_moments_loses_and_doubles_nothing(self):
        seed = int(os.environ.get("POSTIE_SOAK_SEED") or random.SystemRandom().randrange(2**32))
        try:
            self.soak(seed)
        except AssertionError as e:
            raise AssertionError("seed %d (replay with POSTIE_SOAK_SEED=%d): %s"
                                 % (seed, seed, e)) from None

    def soak(self, seed):
        rng = random.Random(seed)
        sent = self.fill(rng)
        whole, login = self.calibrate()
        t0 = time.monotonic()
        kills = partial = unkilled = 0
        rnd = 0
        # the earliest moment a kill may land while no kill has yet landed
        # mid-run: a kill that found nothing changed (the machine slower
        # now than when calibrated, e.g. loaded by other work) moves it on
        early = login
        refills = 0
        while True:
            # what is still to download (a killed run's downloads wait in
            # its claims for their removes, which cost little)
            left = len(sent) - sum(len(self.local_names(f)) for f in ("", ".lists.dev"))
            before = self.state()
            # this run's length, estimated from how much is left; until 3
            # kills have landed mid-run, each lands after the login (or
            # later, once kills found nothing changed) and within half the
            # rest; then rounds are killed within the login
            # and 0.6 of the rest (a run
            # can be twice as fast as the estimate on a busy machine), later
            # ones within 1.5 times it, so some run gets to the end; past 40
            # kills or 25 s, runs are not killed
            run = login + (whole - login) * left / self.N
            if partial < 3:     # until 3 kills landed mid-run: within it
                delay = rng.uniform(early, early + (run - login) * 0.5)
            else:
                delay = rng.uniform(0, login + (run - login) * 0.6 if rnd < 20 else run * 1.5)
            kill = rnd < self.MAX_KILLS and time.monotonic() - t0 < 25
            unkilled += not kill
            with open(os.path.join(self.dir, "stderr"), "w+b") as err:
                p = subprocess.Popen([os.path.join(self.bin, "fetch"), "inbox"], env=self.env,
                                     stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                     stderr=err)
                try:
                    p.wait(timeout=delay if kill else 60)
                except subprocess.TimeoutExpired:
                    p.kill()
                    p.wait()
                err.seek(0)
                stderr = err.read()
            why = "round %d, delay %.3f s of ~%.3f, exit %d" % (rnd, delay, run, p.returncode)
            # 75: the link broke (seen once with the machine loaded: "the
            # SFTP channel broke: transport read"); a deferral the next
            # run must recover from like a kill
            self.assertIn(p.returncode, (0, -9, 75), "%s: %r" % (why, stderr))
            if p.returncode == 75:
                self.assertIn(b"broke", stderr, why)
            if p.returncode == 0 and self.left_on_server() == 0:
                if partial >= 3 or refills >= 5:
                    break
                # done before 3 kills landed mid-run (a run faster than
                # its estimate): more mail on the server, kills from the
                # login again
                refills += 1
                self.check_after_kill(sent, why)
                sent.update(self.fill(rng, self.N * (1 + refills), self.N // 2))
                early = login
                rnd += 1
                continue
            if p.returncode == -9:
                kills += 1
                changed = self.state() != before
                partial += changed
                if not changed and partial < 3:
                    early = max(early, delay) * 1.25
            self.check_after_kill(sent, why)
            self.assertLess(unkilled, 2, "%s: not done after %d runs, %d killed; %d messages left on the server"
                            % (why, rnd + 1, kills, self.left_on_server()))
            rnd += 1
        # every message here exactly once, byte for byte, nothing on the
        # server, no claim; the last run removed the killed runs' tmp/ files
        for folder in ("", ".lists.dev"):
            names = sorted(n for f, n in sent if f == folder)
            self.assertEqual(self.local_names(folder), names)
            for n in names:
                self.assertEqual(self.local_data(n, folder), sent[(folder, n)], n)
            self.assertEqual(self.local_names(folder, sub="cur"), [])
            self.assertEqual(self.local_names(folder, sub="tmp"), [])
            self.assertEqual(self.remote_names(folder), [])
            claims = os.path.join(self.remote, folder, "postie-claims")
            for c in (os.listdir(claims) if os.path.isdir(claims) else []):
                self.assertEqual(os.listdir(os.path.join(claims, c)), [],
                                 "%s claimed by %s" % (folder or "INBOX", c))
        # the kills really came mid-run (after it changed something), many times
        self.assertGreaterEqual(partial, 3, "%d kills, %d mid-run" % (kills, partial))
        if os.environ.get("POSTIE_SOAK_VERBOSE"):
            print("seed %d: %d runs, %d killed, %d mid-run, a whole run %.2f s, "
                  "login %.2f s, rounds %.1f s" % (seed, rnd + 1, kills, partial, whole, login,
                                                   time.monotonic() - t0))
