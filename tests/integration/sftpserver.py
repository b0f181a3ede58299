#!/usr/bin/python3
"""sftpserver.py -- a small SFTP version 3 server on stdin/stdout that
serves the real file system, with misbehaviours for the fetch tests.

sshd runs it as its sftp subsystem (sshd.Sshd(subsystem=...)):
    Subsystem sftp /usr/bin/python3 sftpserver.py RULES.json

RULES.json (read at each session, so a test may change it between runs):
  refuse_remove: "reason"    every REMOVE fails: PERMISSION_DENIED, reason
  mkdir_status: {"SUFFIX": CODE}
                             a MKDIR of a path ending in /SUFFIX is
                             answered with this status, nothing made (3:
                             permission denied, 4: failure, as OpenSSH
                             says for a full disk)
  opendir_status: {"SUFFIX": CODE}
                             an OPENDIR of a path ending in /SUFFIX is
                             answered with this status (3: permission
                             denied, 2: no such file)
  rename_dir_on_remove: {"OLD": "NEW"}
                             a REMOVE of a path in folder OLD renames the
                             folder to NEW first (a user renaming it on
                             the server mid-run), then answers
                             NO_SUCH_FILE
  refuse_mkdir: "reason"     every MKDIR fails: PERMISSION_DENIED, reason
  refuse_claims: "reason"    every RENAME into a claim directory fails:
                             FAILURE, reason (a full disk, a quota)
  read_max: N                a READ returns at most N bytes (short reads)
  drip: SECONDS              DATA replies go out one byte every SECONDS
  drip_files: {"NAME": SECONDS}
                             so do the DATA replies for NAME alone
  list_drip: SECONDS         READDIR returns one entry, after SECONDS
  silent_after_init: true    answers VERSION, then nothing
  extra: [ENTRY, ...]        entries added to the listing of a directory
      whose path ends with ENTRY["dir"]: {"dir": "new", "name": "...",
      "name_len": N (a name of N 'x'), "size": N or null (no size),
      "mtime": N}
  many: [{"dir": "new", "count": N, "prefix": "P", "pad": N, "size": N}]
                             N entries "P00000000", ... (padded with N x)
  fake_size: {"NAME": N}     the listing and FSTAT say N bytes for NAME
  fstat_mode: {"NAME": MODE}  FSTAT of NAME says this st_mode (a directory,
                             a device: the file changed between listing
                             and opening)
  fstat_size: {"NAME": N}    FSTAT of NAME says N bytes (the listing not)
  no_size: {"NAME": "list" or "both"}
                             the listing of NAME has no size ("both": nor
                             has FSTAT)
  grow: {"NAME": "bytes"}    reads of NAME see these bytes after the file
                             (a read across its end gets both)
  endless: ["NAME"]          reads of NAME never end (zeros after it)
  hold: {"types": [T, ...], "seconds": S, "log": PATH}
                             before answering a request of a type in
                             types (14 MKDIR, 18 RENAME, ...), wait up to
                             S seconds for the next request, then append
                             "TYPE PATH -> NEXT_TYPE NEXT_PATH" to PATH
                             ("-> none": nothing came before the answer):
                             which requests the client sent without
                             waiting for the answer (pipelining)
  late: {"name": NAME, "seconds": S, "log": PATH, "removes": N}
                             the first READ of NAME is answered after S
                             seconds, or once N REMOVEs were served
                             meanwhile, other requests served as they
                             come; then the number of REMOVEs served
                             while it waited is appended to PATH
  reorder: HOW               a RENAME followed by an OPEN (sent without
                             waiting) is reordered: the OPEN is done
                             first but answered after the RENAME
                             ("open_first"), done and answered first
                             ("open_first_answered_first"), or done after
                             the RENAME but answered first
                             ("replies_swapped"): a server that reorders
"""
import json
import os
import select
import stat
import struct
import sys
import time

FX_OK, FX_EOF, FX_NO_SUCH_FILE, FX_PERMISSION_DENIED, FX_FAILURE = 0, 1, 2, 3, 4
FX_OP_UNSUPPORTED = 8


class Server:
    def __init__(self, rules):
        self.rules = rules
        self.handles = {}
        self.next_handle = 0
        self.out = sys.stdout.buffer
        self.buf = b""          # read from stdin, not yet taken
        self.eof = False
        self.capture = None     # a list: answers held back (reorder)
        self.late_held = None   # the late READ's answer (late)
        self.late_due = 0.0
        self.late_done = False
        self.late_removes = 0

    def send(self, data, drip=0):
        pkt = struct.pack(">I", len(data)) + data
        if self.capture is not None:
            self.capture.append(pkt)
            return
        if drip:
            for i in range(len(pkt)):
                self.out.write(pkt[i:i + 1])
                self.out.flush()
                time.sleep(drip)
        else:
            self.out.write(pkt)
            self.out.flush()

    def status(self, rid, code, msg=""):
        m = msg.encode()
        self.send(struct.pack(">BII", 101, rid, code) + struct.pack(">I", len(m)) + m
                  + struct.pack(">I", 0))

    @staticmethod
    def s(b):
        return struct.pack(">I", len(b)) + b

    def attrs(self, st, name=None, size=True, fstat=False):
        fake = self.rules.get("fake_size", {})
        no = self.rules.get("no_size", {}).get(name)
        if no == "both" or (no == "list" and not fstat):
            size = False
        flags = 0x4 | 0x8
        body = b""
        if size:
            flags |= 0x1
            n = fake.get(name, st.st_size) if name is not None else st.st_size
            if fstat:
                n = self.rules.get("fstat_size", {}).get(name, n)
            body += struct.pack(">Q", n)
        mode = self.rules.get("fstat_mode", {}).get(name, st.st_mode) if fstat else st.st_mode
        body += struct.pack(">III", mode, int(st.st_atime), int(st.st_mtime))
        return struct.pack(">I", flags) + body

    def fake_attrs(self, e):
        flags = 0x4 | 0x8
        body = b""
        if e.get("size", 0) is not None:
            flags |= 0x1
            body += struct.pack(">Q", e.get("size", 10))
        mt = e.get("mtime", 1700000000)
        body += struct.pack(">III", 0o100600, mt, mt)
        return struct.pack(">I", flags) + body

    def handle(self, obj):
        h = b"%d" % self.next_handle
        self.next_handle += 1
        self.handles[h] = obj
        return h

    def run(self):
        if self.rules.get("silent_after_init"):
            self.read_packet()
            self.send(struct.pack(">BI", 2, 3))
            while self.read_packet() is not None:
                pass
            return
        while True:
            if self.late_held is not None:
                left = self.late_due - time.monotonic()
                if (left <= 0 or self.late_removes >= self.rules["late"].get("removes", 1 << 30)
                        or self.peek_packet(left) is None):
                    self.release_late()
                    continue
            p = self.read_packet()
            if p is None:
                return
            self.dispatch(p)

    def release_late(self):
        for pkt in self.late_held:
            self.out.write(pkt)
        self.out.flush()
        self.late_held = None
        with open(self.rules["late"]["log"], "a") as f:
            f.write("%d\n" % self.late_removes)

    def hold_late(self, p):
        """The first READ of the late file: done now, answered later."""
        late = self.rules.get("late")
        if not late or self.late_done or self.capture is not None or len(p) < 9:
            return False
        n = struct.unpack(">I", p[5:9])[0]
        f = self.handles.get(p[9:9 + n])
        if not hasattr(f, "name") or os.path.basename(f.name.decode()) != late["name"]:
            return False
        self.late_done = True
        self.capture = []
        self.dispatch(p)
        self.late_held, self.capture = self.capture, None
        self.late_due = time.monotonic() + late["seconds"]
        return True

    def _fill(self, timeout):
        """More input, waiting at most timeout seconds (None: for ever)."""
        if self.eof or not select.select([0], [], [], timeout)[0]:
            return
        data = os.read(0, 65536)
        if not data:
            self.eof = True
        self.buf += data

    def _whole(self):
        """The length of the first whole packet in buf, or 0."""
        if len(self.buf) < 4:
            return 0
        n = struct.unpack(">I", self.buf[:4])[0]
        return 4 + n if len(self.buf) >= 4 + n else 0

    def read_packet(self):
        while not self._whole():
            if self.eof:
                return None
            self._fill(None)
        n = self._whole()
        p, self.buf = self.buf[4:n], self.buf[n:]
        return p

    def peek_packet(self, seconds):
        """The next packet, left to read, if it comes within seconds."""
        end = time.monotonic() + seconds
        while not self._whole() and not self.eof and time.monotonic() < end:
            self._fill(max(0.0, end - time.monotonic()))
        n = self._whole()
        return self.buf[4:n] if n else None

    @staticmethod
    def shown(p):
        """TYPE PATH of a request (its first string), for the hold log."""
        if p is None:
            return "none"
        if p[0] == 1 or len(p) < 9:
            return "%d" % p[0]
        n = struct.unpack(">I", p[5:9])[0]
        return "%d %s" % (p[0], p[9:9 + n].decode(errors="replace"))

    def hold(self, p):
        h = self.rules.get("hold")
        if not h or p[0] not in h.get("types", []):
            return
        nxt = self.peek_packet(h.get("seconds", 2))
        with open(h["log"], "a") as f:
            f.write("%s -> %s\n" % (self.shown(p), self.shown(nxt)))

    def dispatch(self, p):
        t = p[0]
        self.hold(p)
        if t == 5 and self.hold_late(p):
            return
        if t == 13 and self.late_held is not None:
            self.late_removes += 1
        how = self.rules.get("reorder")
        if t == 18 and how and self.capture is None:
            nxt = self.peek_packet(2)
            if nxt is not None and nxt[0] == 3:
                self.read_packet()
                first, second = (nxt, p) if how.startswith("open_first") else (p, nxt)
                if how == "open_first_answered_first":
                    self.dispatch(first)
                    self.dispatch(second)
                    return
                self.capture = []           # the first one's answer waits
                self.dispatch(first)
                held, self.capture = self.capture, None
                self.dispatch(second)
                for pkt in held:
                    self.out.write(pkt)
                self.out.flush()
                return
        if t == 1:
            self.send(struct.pack(">BI", 2, 3))
            return
        rid = struct.unpack(">I", p[1:5])[0]
        args = p[5:]

        def string(off):
            n = struct.unpack(">I", args[off:off + 4])[0]
            return args[off + 4:off + 4 + n], off + 4 + n
        try:
            if t == 3:                      # OPEN
                path, _ = string(0)
                f = open(path, "rb")
                self.send(struct.pack(">BI", 102, rid) + self.s(self.handle(f)))
            elif t == 4:                    # CLOSE
                h, _ = string(0)
                o = self.handles.pop(h, None)
                if hasattr(o, "close"):
                    o.close()
                self.status(rid, FX_OK)
            elif t == 5:                    # READ
                h, off = string(0)
                pos, ln = struct.unpack(">QI", args[off:off + 12])
                f = self.handles[h]
                ln = min(ln, self.rules.get("read_max", ln))
                f.seek(0, 2)
                real = f.tell()
                base = os.path.basename(f.name.decode())
                grow = self.rules.get("grow", {}).get(base, "").encode()
                if base in self.rules.get("endless", []):
                    grow = b"\0" * (pos + ln)      # never ends
                if pos >= real + len(grow):
                    self.status(rid, FX_EOF)
                    return
                # the file and what it grew by are one stream: a read
                # across its old end gets both, as from a longer file
                data = b""
                if pos < real:
                    f.seek(pos)
                    data = f.read(ln)
                at = pos + len(data) - real
                data += grow[at:at + ln - len(data)]
                self.send(struct.pack(">BI", 103, rid) + self.s(data),
                          drip=self.rules.get("drip_files", {}).get(
                              base, self.rules.get("drip", 0)))
            elif t == 8:                    # FSTAT
                h, _ = string(0)
                f = self.handles[h]
                self.send(struct.pack(">BI", 105, rid) +
                          self.attrs(os.fstat(f.fileno()), os.path.basename(f.name.decode()),
                                     fstat=True))
            elif t in (7, 17):              # LSTAT, STAT
                path, _ = string(0)
                st = os.lstat(path) if t == 7 else os.stat(path)
                self.send(struct.pack(">BI", 105, rid) + self.attrs(st))
            elif t == 11:                   # OPENDIR
                path, _ = string(0)
                for suffix, code in self.rules.get("opendir_status", {}).items():
                    if path.decode(errors="replace").endswith("/" + suffix):
                        self.status(rid, code, "refused by the test's rule")
                        return
                names = sorted(os.listdir(path))
                ents = []
                for n in names:
                    st = os.lstat(os.path.join(path, n))
                    ents.append((n, self.attrs(st, n.decode())))
                extra = []     # listed first: what follows must still come
                for e in self.rules.get("extra", []):
                    if path.decode().endswith("/" + e["dir"]):
                        name = e["name"].encode() if "name" in e else b"x" * e["name_len"]
                        extra.append((name, self.fake_attrs(e)))
                for m in self.rules.get("many", []):
                    if path.decode().endswith("/" + m["dir"]):
                        a = self.fake_attrs(m)
                        for i in range(m["count"]):
                            n = (m.get("prefix", "") + "%08d" % i).encode()
                            extra.append((n + b"x" * (m.get("pad", 0)), a))
                ents = extra + ents
                self.send(struct.pack(">BI", 102, rid) + self.s(self.handle(ents)))
            elif t == 12:                   # READDIR
                h, _ = string(0)
                ents = self.handles[h]
                if not ents:
                    self.status(rid, FX_EOF)
                    return
                ld = self.rules.get("list_drip")
                k = 1 if ld else 100
                if ld:
                    time.sleep(ld)
                parts, size = [], 0
                for n, a in ents[:k]:      # a packet under 200 KB
                    part = self.s(n) + self.s(n[:80]) + a
                    if parts and size + len(part) > 200000:
                        break
                    parts.append(part)
                    size += len(part)
                self.handles[h] = ents[len(parts):]
                self.send(struct.pack(">BII", 104, rid, len(parts)) + b"".join(parts))
            elif t == 13:                   # REMOVE
                path, _ = string(0)
                why = self.rules.get("refuse_remove")
                if why:
                    self.status(rid, FX_PERMISSION_DENIED, why)
                    return
                for old, new in self.rules.get("rename_dir_on_remove", {}).items():
                    if ("/%s/" % old).encode() in path and os.path.isdir(old_dir := path.split(
                            ("/%s/" % old).encode())[0] + b"/" + old.encode()):
                        os.rename(old_dir, os.path.join(os.path.dirname(old_dir), new.encode()))
                        self.status(rid, FX_NO_SUCH_FILE)
                        return
                os.unlink(path)
                self.status(rid, FX_OK)
            elif t == 14:                   # MKDIR (attrs ignored: 0700)
                path, _ = string(0)
                why = self.rules.get("refuse_mkdir")
                if why:
                    self.status(rid, FX_PERMISSION_DENIED, why)
                    return
                for suffix, code in self.rules.get("mkdir_status", {}).items():
                    if path.decode(errors="replace").endswith("/" + suffix):
                        self.status(rid, code, "refused by the test's rule")
                        return
                os.mkdir(path, 0o700)
                self.status(rid, FX_OK)
            elif t == 18:                   # RENAME, as OpenSSH: link, unlink
                old, off = string(0)
                new, _ = string(off)
                if b"/postie-claims/" in new and "refuse_claims" in self.rules:
                    self.status(rid, FX_FAILURE, self.rules["refuse_claims"])
                    return
                os.link(old, new)
                os.unlink(old)
                self.status(rid, FX_OK)
            else:
                self.status(rid, FX_OP_UNSUPPORTED, "not here")
        except FileNotFoundError:
            self.status(rid, FX_NO_SUCH_FILE, "no such file")
        except OSError as e:
            self.status(rid, FX_FAILURE, str(e))


def main():
    rules = {}
    if len(sys.argv) > 1 and os.path.exists(sys.argv[1]):
        with open(sys.argv[1]) as f:
            rules = json.load(f)
    Server(rules).run()


if __name__ == "__main__":
    main()
