#!/usr/bin/python3
"""demo_fetch.py POSTIE HOME: the receive half of the demo. Starts a
private sshd on loopback (as the tests do), puts two new messages and a
symbolic link into a "server" Maildir, and runs fetch -n, then fetch -v,
into HOME/Maildir; shows what arrived and what the server kept."""
import os
import subprocess
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "integration"))
import sshd  # noqa: E402


def say(text):
    print("\n\033[1m== %s\033[0m" % text, flush=True)


def main():
    postie, home = sys.argv[1], sys.argv[2]
    ssh_dir = os.path.join(home, ".ssh")
    os.makedirs(ssh_dir, mode=0o700, exist_ok=True)
    key = sshd.keygen(os.path.join(ssh_dir, "id_ed25519"))
    server = sshd.Sshd(authorized=[key + ".pub"])
    try:
        with open(os.path.join(ssh_dir, "known_hosts"), "w") as f:
            f.write(server.known_hosts_line())
        remote = os.path.join(home, "server", "Maildir")
        for sub in ("tmp", "new", "cur"):
            os.makedirs(os.path.join(remote, sub))
        for i, subj in enumerate(("Minutes", "Re: lunch")):
            with open(os.path.join(remote, "new", "170000000%d.M%dP1.mail" % (i, i)), "w") as f:
                f.write("From: bob@example.com\nTo: alice@corp.example.com\nSubject: %s\n\n"
                        "hello %d\n" % (subj, i))
        os.symlink("/etc/passwd", os.path.join(remote, "new", "1700000009.M9P1.evil"))
        conf = os.path.join(home, ".config", "postie", "config")
        with open(conf, "a") as f:
            f.write("fetch inbox\n  ssh %s@127.0.0.1:%d\n  remote %s\n  local %s\n" %
                    (server.user, server.port, remote, os.path.join(home, "Maildir")))
        say("a fetch job added to the config (a private sshd on 127.0.0.1:%d stands in for "
            "mail.example.org; its host key is in ~/.ssh/known_hosts)" % server.port)
        print(open(conf).read().split("fetch inbox")[1].join(["fetch inbox", ""]), end="")
        env = dict(os.environ, HOME=home)
        env.pop("SSH_AUTH_SOCK", None)
        say("fetch -n: what would move (nothing changes)")
        subprocess.run([postie, "fetch", "-n"], env=env, check=False)
        say("fetch -v: each message downloaded, fsync'd, linked into ~/Maildir/new, then "
            "removed on the server; the symbolic link is refused, never followed")
        r = subprocess.run([postie, "fetch", "-v"], env=env)
        print("fetch exited %d" % r.returncode)
        say("~/Maildir/new now")
        for n in sorted(os.listdir(os.path.join(home, "Maildir", "new"))):
            print(n)
        say("the server's new/ kept only what was refused")
        for n in sorted(os.listdir(os.path.join(remote, "new"))):
            print(n)
    finally:
        server.stop()


if __name__ == "__main__":
    main()
