"""benchfs.py -- a fresh journaled ext4 for a benchmark's files.

This kind of machine's root file system is ext4 without a journal,
mounted with online discard. There each file created skips every inode
of its group freed in the last 60 s (300 s while the inode table block is
dirty), and each file freed issues a synchronous discard to the virtual
disk (about 125 us a file, measured: tests/bench/README.md). A tool's
time then depends on what earlier runs, tools or tests deleted, and on
discards users' laptops do not do (distributions trim once a week,
fstrim.timer, instead of mounting with discard). So a benchmark puts the
files of the tools it compares on a fresh ext4 made with mkfs.ext4's
defaults and mounted with the default options, as on a user's laptop.
"""
import os
import subprocess
import sys


def mount_fresh_fs(work, name="fs", size=4 << 30, who="bench"):
    """A fresh ext4 with a journal, loop-mounted at work/name; None if it
    cannot be had (not root, no loop device, BENCH_FS=here): the caller
    then uses work itself."""
    if os.geteuid() != 0 or os.environ.get("BENCH_FS") == "here":
        return None
    img, mnt = os.path.join(work, name + ".img"), os.path.join(work, name)
    os.makedirs(mnt)
    with open(img, "wb") as f:
        f.truncate(size)
    for cmd in (["mkfs.ext4", "-q", "-F", img], ["mount", "-o", "loop", img, mnt]):
        if subprocess.run(cmd, capture_output=True).returncode != 0:
            print("%s: cannot set up a fresh ext4 (%s); the runs go to %s"
                  % (who, cmd[0], work), file=sys.stderr)
            return None
    return mnt


def unmount(work, name="fs"):
    mnt = os.path.join(work, name)
    if os.path.ismount(mnt):
        subprocess.run(["umount", mnt])
