"""A scripted SOCKS5 proxy (RFC 1928, RFC 1929) on a free 127.0.0.1 port,
for the faults a real proxy will not produce on demand.

mode: "ok" (connect and relay), "refuse" (reply code `code`), "garbage"
(an HTTP error instead of SOCKS), "stall" (read the greeting, answer
nothing), "hangup" (close after the greeting). users: {user: password}
to require RFC 1929. Records each connection's peer address, the
methods offered, the login given, and the CONNECT target (address type,
host, port)."""
import socket
import struct
import threading


class SocksServer:
    def __init__(self, mode="ok", code=4, users=None):
        self.mode = mode
        self.code = code
        self.users = users
        self.peers = []
        self.methods = []
        self.logins = []
        self.targets = []
        self.errors = []
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.port = self.sock.getsockname()[1]
        self.stopping = False
        self.conns = []
        threading.Thread(target=self._accept, daemon=True).start()

    def stop(self):
        self.stopping = True
        for s in [self.sock] + self.conns:
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            s.close()

    def _accept(self):
        while not self.stopping:
            try:
                conn, peer = self.sock.accept()
            except OSError:
                return
            self.peers.append(peer[0])
            self.conns.append(conn)
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    @staticmethod
    def _read(conn, n):
        buf = b""
        while len(buf) < n:
            chunk = conn.recv(n - len(buf))
            if not chunk:
                raise EOFError("client closed")
            buf += chunk
        return buf

    def _serve(self, conn):
        conn.settimeout(30)
        try:
            ver, n = self._read(conn, 2)
            methods = list(self._read(conn, n))
            self.methods.append(methods)
            if self.mode == "stall":
                conn.recv(1)         # until the client gives up
                return
            if self.mode == "hangup":
                return
            if self.mode == "garbage":
                conn.sendall(b"HTTP/1.1 400 Bad Request\r\n\r\n")
                return
            want = 2 if self.users is not None else 0
            if want not in methods:
                conn.sendall(b"\x05\xff")
                return
            conn.sendall(bytes([5, want]))
            if want == 2:
                _, ul = self._read(conn, 2)
                user = self._read(conn, ul).decode()
                (pl,) = self._read(conn, 1)
                password = self._read(conn, pl).decode()
                self.logins.append((user, password))
                if self.users.get(user) != password:
                    conn.sendall(b"\x01\x01")
                    return
                conn.sendall(b"\x01\x00")
            ver, cmd, _, atyp = self._read(conn, 4)
            if atyp == 1:
                host = socket.inet_ntop(socket.AF_INET, self._read(conn, 4))
            elif atyp == 4:
                host = socket.inet_ntop(socket.AF_INET6, self._read(conn, 16))
            else:
                (hl,) = self._read(conn, 1)
                host = self._read(conn, hl).decode()
            (port,) = struct.unpack("!H", self._read(conn, 2))
            self.targets.append((atyp, host, port))
            if self.mode == "refuse":
                # the refusal, its address cut short: the code is what counts
                conn.sendall(bytes([5, self.code, 0, 1]))
                return
            up = socket.create_connection((host, port), timeout=10)
            self.conns.append(up)
            # the reply and the upstream's first bytes in one write: the
            # client must take exactly the reply
            conn.sendall(b"\x05\x00\x00\x01\x7f\x00\x00\x01" + struct.pack("!H", 1080))
            threading.Thread(target=self._pipe, args=(up, conn), daemon=True).start()
            self._pipe(conn, up)
        except (OSError, EOFError, ValueError) as e:
            self.errors.append(repr(e))
        finally:
            try:
                conn.close()
            except OSError:
                pass

    @staticmethod
    def _pipe(src, dst):
        try:
            while True:
                data = src.recv(65536)
                if not data:
                    break
                dst.sendall(data)
        except OSError:
            pass
        finally:
            try:
                dst.shutdown(socket.SHUT_WR)
            except OSError:
                pass
