#!/usr/bin/python3
"""latency.py -- a TCP proxy that delays each direction by a fixed time
(the fetch tests and tests/bench/fetch.py use it).

Usage: tests/integration/latency.py TARGET_PORT DELAY_MS [LISTEN_PORT]
       (or, from Python: LatencyProxy(target_port, delay_ms).start())

Listens on 127.0.0.1 (LISTEN_PORT, or a free port printed on stdout),
connects each client to 127.0.0.1:TARGET_PORT and forwards bytes both
ways, each chunk held back until DELAY_MS after it arrived: a link with a
round trip of 2 x DELAY_MS and no bandwidth limit, order kept. No netem,
no root: what a benchmark of round trips needs. Setting .frozen stops
both directions (a server that stops answering, the socket still open).
"""
import asyncio
import socket
import sys
import threading
import time


async def _pump(reader, writer, delay, held, note=None):
    """Forward reader -> writer, each chunk delay seconds after it came;
    nothing while held() (a link that went silent). note(n): called with
    each chunk's size as it comes (the trace)."""
    queue = asyncio.Queue()
    loop = asyncio.get_running_loop()

    async def send():
        while True:
            due, data = await queue.get()
            wait = due - loop.time()
            if wait > 0:
                await asyncio.sleep(wait)
            while held():
                await asyncio.sleep(0.05)
            if data is None:
                try:
                    writer.write_eof()
                except OSError:
                    pass
                return
            writer.write(data)
            await writer.drain()

    sender = asyncio.ensure_future(send())
    try:
        while True:
            data = await reader.read(65536)
            if note is not None and data:
                note(len(data))
            queue.put_nowait((loop.time() + delay, data or None))
            if not data:
                break
        await sender
    except (ConnectionError, OSError):
        sender.cancel()


class LatencyProxy:
    def __init__(self, target_port, delay_ms, listen_port=0):
        self.target_port = target_port
        self.delay = delay_ms / 1000.0
        self.port = listen_port
        self.frozen = False     # True: nothing moves either way
        self.trace = None       # a list: (monotonic time, "C>S"/"S>C", bytes)
        self._ready = threading.Event()
        self._loop = None

    async def _client(self, creader, cwriter):
        # stop() cancels the connections still open: they end quietly
        # (asyncio's stream callback would log a cancelled one's error)
        try:
            await self._relay(creader, cwriter)
        except asyncio.CancelledError:
            pass

    async def _relay(self, creader, cwriter):
        try:
            sreader, swriter = await asyncio.open_connection("127.0.0.1", self.target_port)
        except OSError:
            cwriter.close()
            return
        for w in (cwriter, swriter):
            sock = w.get_extra_info("socket")
            if sock is not None:
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        # each direction ends on its own (a half close is passed on);
        # the sockets close when both have ended
        held = lambda: self.frozen  # noqa: E731

        def noter(way):
            if self.trace is None:
                return None
            return lambda n: self.trace.append((time.monotonic(), way, n))
        await asyncio.gather(_pump(creader, swriter, self.delay, held, noter("C>S")),
                             _pump(sreader, cwriter, self.delay, held, noter("S>C")),
                             return_exceptions=True)
        for w in (cwriter, swriter):
            try:
                w.close()
            except OSError:
                pass

    async def _main(self):
        server = await asyncio.start_server(self._client, "127.0.0.1", self.port)
        self.port = server.sockets[0].getsockname()[1]
        self._stop = asyncio.Event()
        self._ready.set()
        async with server:
            await self._stop.wait()
        # the connections still open end here, quietly
        tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    def flights(self):
        """The trace as the client saw it: bursts of one direction (chunks
        less than 3 ms apart), each (seconds from the first, way, bytes,
        chunks); a S>C chunk is counted when it reached the client."""
        if not self.trace:
            return []
        ev = sorted((t + (self.delay if way == "S>C" else 0), way, n)
                    for t, way, n in self.trace)
        t0, out = ev[0][0], []
        for t, way, n in ev:
            if out and out[-1][1] == way and t - out[-1][4] < 0.003:
                out[-1][2] += n
                out[-1][3] += 1
                out[-1][4] = t
            else:
                out.append([t - t0, way, n, 1, t])
        return [(round(a, 4), w, n, c) for a, w, n, c, _ in out]

    def start(self):
        def run():
            self._loop = asyncio.new_event_loop()
            self._loop.run_until_complete(self._main())
        self._thread = threading.Thread(target=run, daemon=True)
        self._thread.start()
        self._ready.wait(10)
        return self

    def stop(self):
        if self._loop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
            self._thread.join(5)


def main():
    if len(sys.argv) not in (3, 4):
        sys.exit("usage: latency.py TARGET_PORT DELAY_MS [LISTEN_PORT]")
    p = LatencyProxy(int(sys.argv[1]), float(sys.argv[2]),
                     int(sys.argv[3]) if len(sys.argv) == 4 else 0).start()
    print(p.port, flush=True)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        p.stop()


if __name__ == "__main__":
    main()
