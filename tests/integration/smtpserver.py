"""A scripted SMTP server on loopback for the deliver tests.

Real sockets, real TLS (Python's ssl with certificates the tests make),
real SASL exchanges (PLAIN, LOGIN, CRAM-MD5), and a script that can make
any stage answer 4xx/5xx, drop the connection or stall. Every accepted
message is recorded with its envelope, the raw DATA bytes and whether it
came over TLS and authenticated.
"""
import base64
import hashlib
import hmac
import io
import socket
import ssl
import threading
import time


class Message:
    def __init__(self, mail_from, rcpts, data, tls, user):
        self.mail_from = mail_from
        self.rcpts = rcpts
        self.data = data            # as sent, dot-stuffing removed
        self.tls = tls
        self.user = user


class _Recorded(io.RawIOBase):
    """A TLS socket's reads, each kept: one read is at most one TLS record
    (SSL_read gives one record's bytes), as a server built on OpenSSL
    reads them."""

    def __init__(self, conn, reads, lock):
        self.conn, self.reads, self.lock = conn, reads, lock

    def readable(self):
        return True

    def readinto(self, b):
        n = self.conn.recv_into(b)
        with self.lock:
            self.reads.append(bytes(b[:n]))
        return n


class Server:
    """tls: None | "starttls" | "implicit".
    script: {stage: reply} or {stage: callable(arg) -> reply}; a reply is a
    string ("451 4.3.0 later"), "DROP", ("STALL", seconds), ("PARTIAL",
    text) (sent without its line end, then the connection drops),
    ("THEN-DROP", reply) (sent, then the connection drops; after DOT the
    message counts as accepted), or ("ENDLESS", "250-x") (that line sent
    over and over, never a last line). Stages: greeting, EHLO, STARTTLS,
    AUTH, MAIL, RCPT (arg: the address), DATA (the 354), DOT (after the
    final dot), QUIT. BODY, once the 354 is out: ("STALL", seconds) reads
    nothing of the data for that long, then drops; ("EARLY", n, reply)
    reads n bytes of the data, sends reply and closes.
    drip: {stage: seconds}: that stage's reply goes out one byte at a time,
    that long apart.
    mail_wait: seconds to wait before answering each MAIL; what the client
    had sent by then (its command lines) is recorded in mail_pending, one
    list per MAIL: a pipelining client's RCPT and DATA are there.
    end_wait: likewise before answering each end of data (the final
    dot); what the client had sent by then is in end_pending: a client
    that pipelines the next MAIL group behind the data has its MAIL, RCPT
    and DATA there (or its QUIT).
    A MAIL refused makes RCPT and DATA "503 5.5.1 need MAIL", as real
    servers do. tls_reads: the bytes of each read of a TLS connection
    (each at most one TLS record)."""

    def __init__(self, tls=None, cert=None, key=None, client_ca=None,
                 users=None, mechanisms=("PLAIN", "LOGIN", "CRAM-MD5"),
                 offer_starttls=True, script=None, extensions=("8BITMIME", "PIPELINING", "SIZE 100000000", "DSN"),
                 split_challenges=False, port=0, drip=None, mail_wait=None, end_wait=None):
        self.tls = tls
        self.users = users or {}
        self.mechanisms = mechanisms
        self.offer_starttls = offer_starttls
        self.split_challenges = split_challenges    # 334 lines in two writes
        self.script = dict(script or {})
        self.drip = dict(drip or {})
        self.extensions = list(extensions)
        self.mail_wait = mail_wait
        self.mail_pending = []      # per MAIL: command lines there before its reply
        self.end_wait = end_wait
        self.end_pending = []       # per end of data: command lines there before its reply
        self.messages = []
        self.tls_reads = []         # each read over TLS: one record at most
        self.commands = []          # every command line seen (AUTH redacted)
        self.auths = []             # (mechanism, initial response on the AUTH line?)
        self.error_answers = []     # the client's answer lines to an OAuth2 error 334
        self.oauth_hosts = []       # (host, port) an OAUTHBEARER client named
        self.connections = 0
        self.errors = []            # why connections ended abnormally
        self.lock = threading.Lock()
        self.ctx = None
        if tls:
            self.ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            self.ctx.load_cert_chain(cert, key)
            if client_ca:
                self.ctx.load_verify_locations(client_ca)
                self.ctx.verify_mode = ssl.CERT_REQUIRED
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", port))
        self.sock.listen(64)
        self.port = self.sock.getsockname()[1]
        self.stopping = False
        self.thread = threading.Thread(target=self._accept, daemon=True)
        self.thread.start()

    def stop(self):
        self.stopping = True
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.sock.close()

    def _accept(self):
        while not self.stopping:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            with self.lock:
                self.connections += 1
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    # --- one connection ---------------------------------------------------

    def _serve(self, conn):
        conn.settimeout(30)
        state = {"tls": False, "user": None}
        try:
            if self.tls == "implicit":
                conn = self.ctx.wrap_socket(conn, server_side=True)
                state["tls"] = True
            f = self._reader(conn)
            self._dialogue(conn, f, state)
        except _Drop:
            pass
        except (OSError, ssl.SSLError, ValueError) as e:
            with self.lock:
                self.errors.append(repr(e))
        finally:
            try:
                conn.close()
            except OSError:
                pass

    def _reader(self, conn):
        if isinstance(conn, ssl.SSLSocket):
            return io.BufferedReader(_Recorded(conn, self.tls_reads, self.lock), 65536)
        return conn.makefile("rb")

    def _send(self, conn, stage, data):
        delay = self.drip.get(stage)
        if not delay:
            conn.sendall(data)
            return
        for i in range(len(data)):
            conn.sendall(data[i:i + 1])
            time.sleep(delay)

    def _reply(self, conn, stage, default, arg=None, fixed=None):
        r = self.script.get(stage, default) if fixed is None else fixed
        if callable(r):
            r = r(arg)
        if r is None:
            r = default
        if r == "DROP":
            raise _Drop()
        if isinstance(r, tuple) and r[0] == "STALL":
            time.sleep(r[1])
            raise _Drop()
        if isinstance(r, tuple) and r[0] == "PARTIAL":
            self._send(conn, stage, r[1].encode())
            raise _Drop()
        if isinstance(r, tuple) and r[0] == "ENDLESS":
            line = r[1].encode() + b"\r\n"
            deadline = time.time() + 60
            while time.time() < deadline:
                self._send(conn, stage, line * 64)
            raise _Drop()
        if isinstance(r, tuple) and r[0] == "THEN-DROP":
            self._send(conn, stage, r[1].encode() + b"\r\n")
            return r
        self._send(conn, stage, r.encode() + b"\r\n")
        return r

    def _dialogue(self, conn, f, state):
        self._reply(conn, "greeting", "220 test.example ESMTP scripted")
        if not self.script.get("greeting", "220").startswith("2"):
            return
        mail_from, rcpts = None, []
        while True:
            line = f.readline(4096)
            if not line:
                return
            text = line.decode("latin-1").rstrip("\r\n")
            verb = text.split(" ", 1)[0].upper()
            with self.lock:
                self.commands.append("AUTH (redacted)" if verb == "AUTH" else text)
            if verb in ("EHLO", "HELO"):
                ext = list(self.extensions)
                if self.tls == "starttls" and self.offer_starttls and not state["tls"]:
                    ext.append("STARTTLS")
                if self.users and (state["tls"] or self.tls is None):
                    ext.append("AUTH " + " ".join(self.mechanisms))
                lines = ["test.example"] + ext
                r = self.script.get("EHLO")
                if callable(r):
                    r = r(text)
                if r:
                    self._reply(conn, "EHLO", None, fixed=r)
                    continue
                self._send(conn, "EHLO", "".join("250%s%s\r\n" % ("-" if i < len(lines) - 1 else " ", l)
                                                 for i, l in enumerate(lines)).encode())
            elif verb == "STARTTLS":
                self._reply(conn, "STARTTLS", "220 2.0.0 go ahead")
                conn = self.ctx.wrap_socket(conn, server_side=True)
                f = self._reader(conn)
                state["tls"] = True
            elif verb == "AUTH":
                self._auth(conn, f, text, state)
            elif verb == "MAIL":
                mail_from = text[10:].strip().split(" ")[0].strip("<>")
                rcpts = []
                if self.mail_wait:
                    time.sleep(self.mail_wait)
                    pending = self._pending(conn, f)
                    with self.lock:
                        self.mail_pending.append(pending)
                r = self._reply(conn, "MAIL", "250 2.1.0 ok", mail_from)
                if isinstance(r, tuple):
                    raise _Drop()
                if not r.startswith("2"):
                    mail_from = None
            elif verb in ("RCPT", "DATA") and mail_from is None:
                conn.sendall(b"503 5.5.1 need MAIL\r\n")
            elif verb == "RCPT":
                addr = text[8:].strip().split(" ")[0].strip("<>")
                r = self._reply(conn, "RCPT", "250 2.1.5 ok", addr)
                if r.startswith("2"):
                    rcpts.append(addr)
            elif verb == "DATA":
                if not rcpts:
                    conn.sendall(b"554 5.5.1 no valid recipients\r\n")
                    continue
                r = self._reply(conn, "DATA", "354 go ahead")
                if not r.startswith("3"):
                    continue
                self._body(conn, f)
                data = self._read_data(f)
                if self.end_wait:
                    time.sleep(self.end_wait)
                    pending = self._pending(conn, f)
                    with self.lock:
                        self.end_pending.append(pending)
                r = self._reply(conn, "DOT", "250 2.0.0 queued as X%d" % len(self.messages), data)
                then_drop = isinstance(r, tuple)
                if then_drop:
                    r = r[1]
                if r.startswith("2"):
                    with self.lock:
                        self.messages.append(Message(mail_from, rcpts, data,
                                                     state["tls"], state["user"]))
                if then_drop:
                    raise _Drop()
            elif verb == "BDAT":
                # RFC 3030: "BDAT size [LAST]", then exactly size raw bytes
                args = text.split()
                size, last = int(args[1]), len(args) > 2 and args[2].upper() == "LAST"
                chunk = f.read(size)
                if len(chunk) != size:
                    raise _Drop()
                state.setdefault("bdat", []).append(chunk)
                if not last:
                    conn.sendall(b"250 2.0.0 %d octets received\r\n" % size)
                    continue
                data = b"".join(state.pop("bdat"))
                if not rcpts:
                    conn.sendall(b"554 5.5.1 no valid recipients\r\n")
                    continue
                r = self._reply(conn, "DOT", "250 2.0.0 queued as X%d" % len(self.messages), data)
                if r.startswith("2"):
                    with self.lock:
                        self.messages.append(Message(mail_from, rcpts, data,
                                                     state["tls"], state["user"]))
            elif verb == "RSET":
                mail_from, rcpts = None, []
                conn.sendall(b"250 2.0.0 ok\r\n")
            elif verb == "NOOP":
                conn.sendall(b"250 2.0.0 ok\r\n")
            elif verb == "QUIT":
                self._reply(conn, "QUIT", "221 2.0.0 bye")
                return
            else:
                conn.sendall(b"500 5.5.1 unknown command\r\n")

    @staticmethod
    def _pending(conn, f):
        """The whole command lines already sent and not yet read."""
        conn.settimeout(0)
        try:
            data = f.peek(65536) or b""
        except (BlockingIOError, ssl.SSLWantReadError, OSError):
            data = b""
        finally:
            conn.settimeout(30)
        return [l.decode("latin-1") for l in data.split(b"\r\n")[:-1]]

    def _body(self, conn, f):
        b = self.script.get("BODY")
        if callable(b):
            b = b(None)
        if not b:
            return
        if b[0] == "STALL":
            time.sleep(b[1])
            raise _Drop()
        if b[0] == "EARLY":
            f.read(b[1])
            conn.sendall(b[2].encode() + b"\r\n")
            raise _Drop()

    def _read_data(self, f):
        out = []
        while True:
            line = f.readline(1 << 20)
            if not line:
                raise _Drop()
            if line == b".\r\n":
                return b"".join(out)
            if self.script.get("DOT") == "DROP-BEFORE-DOT":
                raise _Drop()
            if line.startswith(b"."):
                line = line[1:]
            out.append(line)

    def _auth(self, conn, f, text, state):
        parts = text.split(" ")
        mech = parts[1].upper() if len(parts) > 1 else ""

        def ask(challenge):
            line = b"334 " + base64.b64encode(challenge) + b"\r\n"
            if self.split_challenges:
                conn.sendall(line[:4])
                time.sleep(0.05)
                line = line[4:]
            conn.sendall(line)
            return base64.b64decode(f.readline().strip())

        user = password = None
        with self.lock:
            self.auths.append((mech, len(parts) > 2))
        if mech in ("XOAUTH2", "OAUTHBEARER"):
            # users holds the access token; a wrong one gets the error
            # challenge (base64 JSON), whose answer is recorded, then 535
            blob = base64.b64decode(parts[2]) if len(parts) > 2 else ask(b"")
            fields = blob.split(b"\x01")
            if mech == "OAUTHBEARER":
                gs2 = fields[0].decode()            # "n,a=USER,"
                user = gs2.split(",")[1][2:].replace("=2C", ",").replace("=3D", "=")
                kv = dict(x.decode().split("=", 1) for x in fields[1:] if b"=" in x)
                with self.lock:
                    self.oauth_hosts.append((kv.get("host"), kv.get("port")))
            else:
                user = fields[0].decode()[len("user="):]
                kv = dict(x.decode().split("=", 1) for x in fields[1:] if b"=" in x)
            token = kv.get("auth", "")[len("Bearer "):]
            if self.users.get(user) == token and blob.endswith(b"\x01\x01"):
                state["user"] = user
                conn.sendall(b"235 2.7.0 authenticated\r\n")
                return
            status = "invalid_token" if mech == "OAUTHBEARER" else "401"
            err = ('{"status":"%s","schemes":"bearer",'
                   '"scope":"https://outlook.office.com/SMTP.Send"}' % status)
            conn.sendall(b"334 " + base64.b64encode(err.encode()) + b"\r\n")
            answer = f.readline().rstrip(b"\r\n")     # as sent, not decoded
            with self.lock:
                self.error_answers.append(answer)
            conn.sendall(b"535 5.7.3 Authentication unsuccessful\r\n")
            return
        if mech == "PLAIN":
            blob = base64.b64decode(parts[2]) if len(parts) > 2 else ask(b"")
            _, user, password = blob.split(b"\0")
            user, password = user.decode(), password.decode()
            ok = self.users.get(user) == password
        elif mech == "LOGIN":
            user = (base64.b64decode(parts[2]) if len(parts) > 2 else ask(b"Username:")).decode()
            password = ask(b"Password:").decode()
            ok = self.users.get(user) == password
        elif mech == "CRAM-MD5":
            challenge = b"<1896.697170952@test.example>"
            user, digest = ask(challenge).decode().split(" ")
            secret = self.users.get(user, "")
            ok = hmac.new(secret.encode(), challenge, hashlib.md5).hexdigest() == digest
        else:
            conn.sendall(b"504 5.5.4 unrecognized mechanism\r\n")
            return
        forced = self.script.get("AUTH")
        if forced:
            self._reply(conn, "AUTH", forced)
            return
        if ok:
            state["user"] = user
            conn.sendall(b"235 2.7.0 authenticated\r\n")
        else:
            conn.sendall(b"535 5.7.8 authentication credentials invalid\r\n")


class _Drop(Exception):
    pass


def main():
    """python3 smtpserver.py PORTFILE COUNT: serve plain SMTP on a free
    loopback port (written to PORTFILE), print each message received,
    exit after COUNT messages or 60 seconds."""
    import sys
    portfile, count = sys.argv[1], int(sys.argv[2])
    srv = Server()
    with open(portfile, "w") as f:
        f.write("%d\n" % srv.port)
    deadline = time.time() + 60
    shown = 0
    while shown < count and time.time() < deadline:
        while shown < len(srv.messages):
            m = srv.messages[shown]
            print("== the SMTP server received, from <%s> for %s:" %
                  (m.mail_from, ", ".join("<%s>" % r for r in m.rcpts)))
            print(m.data.decode("utf-8", "replace").replace("\r\n", "\n"), flush=True)
            shown += 1
        time.sleep(0.05)
    srv.stop()


if __name__ == "__main__":
    main()
