#!/usr/bin/env python3
"""A fake uwsgi backend that records what its peer sends (Python stdlib only).

Each connection is one packet: the 4-byte header, the vars block (`datasize` bytes), then
CONTENT_LENGTH body bytes. The raw bytes are written to `OUT/NNNN.bin`, with `OUT/NNNN.json`
holding this module's own parse of them (independent of rwsgi's Rust decoder) and any bytes that
arrived after the body within a short grace period. The peer gets a tiny `HTTP/1.1 200 OK`, then
the connection is closed.

Standalone:  capture.py --tcp 127.0.0.1:3031 --out /tmp/captured
             capture.py --unix /tmp/capture.sock --out /tmp/captured
regenerate.py imports `CaptureServer` and names the packets it receives.
"""

import argparse
import json
import os
import queue
import socket
import struct
import sys
import threading

REPLY = b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 9\r\n\r\ncaptured\n"
# How long to wait for bytes after the CONTENT_LENGTH body (a peer that sends a body without
# CONTENT_LENGTH, or more than it announced, shows up here).
GRACE_SECONDS = 0.3
READ_TIMEOUT = 10.0


def recv_exact(conn, n):
    """Read exactly n bytes, or fewer if the peer closes first."""
    out = bytearray()
    while len(out) < n:
        chunk = conn.recv(min(65536, n - len(out)))
        if not chunk:
            break
        out += chunk
    return bytes(out)


def parse_vars(block):
    """Parse a vars block into (key, value) byte pairs; raise ValueError if it is malformed."""
    pairs = []
    pos = 0
    while pos < len(block):
        if pos + 2 > len(block):
            raise ValueError(f"stray bytes at {pos}")
        (klen,) = struct.unpack_from("<H", block, pos)
        if klen == 0:
            raise ValueError(f"zero-length key at {pos}")
        if pos + 2 + klen + 2 > len(block):
            raise ValueError(f"key overrun at {pos}")
        key = block[pos + 2 : pos + 2 + klen]
        pos += 2 + klen
        (vlen,) = struct.unpack_from("<H", block, pos)
        if pos + 2 + vlen > len(block):
            raise ValueError(f"value overrun at {pos}")
        value = block[pos + 2 : pos + 2 + vlen]
        pos += 2 + vlen
        pairs.append((key, value))
    return pairs


def content_length(pairs):
    """The body length as rwsgi frames it: the first CONTENT_LENGTH; empty, missing (or not
    digits, which rwsgi refuses) = 0."""
    for key, value in pairs:
        if key == b"CONTENT_LENGTH":
            return int(value) if value.isdigit() else 0
    return 0


def latin1(b):
    """Bytes as a JSON-safe string: each byte becomes the code point of the same value."""
    return b.decode("latin-1")


def read_packet(conn):
    """Read one packet; return (raw bytes, parse dict, extra bytes)."""
    conn.settimeout(READ_TIMEOUT)
    header = recv_exact(conn, 4)
    if not header:
        # Some peers open a backend connection and close it unused (Apache answering 411 itself).
        return header, {"empty_connection": True}, b""
    if len(header) < 4:
        return header, {"error": "truncated header"}, b""
    modifier1, datasize, modifier2 = struct.unpack("<BHB", header)
    block = recv_exact(conn, datasize)
    raw = header + block
    if len(block) < datasize:
        return raw, {"error": "truncated vars"}, b""
    try:
        pairs = parse_vars(block)
    except ValueError as e:
        return raw, {"error": str(e)}, b""
    cl = content_length(pairs)
    body = recv_exact(conn, cl)
    raw += body
    extra = bytearray()
    conn.settimeout(GRACE_SECONDS)
    try:
        while True:
            chunk = conn.recv(65536)
            if not chunk:
                break
            extra += chunk
    except (socket.timeout, BlockingIOError):
        pass
    parsed = {
        "modifier1": modifier1,
        "modifier2": modifier2,
        "datasize": datasize,
        "vars": [[latin1(k), latin1(v)] for k, v in pairs],
        "content_length": cl,
        "body": latin1(body),
    }
    return raw, parsed, bytes(extra)


class CaptureServer:
    """Listen on a TCP address or unix path; each packet goes to `self.packets` and, if `out` is
    set, to numbered files there."""

    def __init__(self, tcp=None, unix=None, out=None):
        if unix:
            if os.path.exists(unix):
                os.unlink(unix)
            self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            self.sock.bind(unix)
            os.chmod(unix, 0o777)  # Apache/nginx workers may run as www-data.
            self.address = unix
        else:
            host, port = tcp.rsplit(":", 1)
            self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            self.sock.bind((host, int(port)))
            self.address = "%s:%d" % self.sock.getsockname()
        self.sock.listen(64)
        self.out = out
        self.count = 0
        self.packets = queue.Queue()
        self.thread = threading.Thread(target=self.serve, daemon=True)

    def start(self):
        self.thread.start()
        return self

    def serve(self):
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            with conn:
                try:
                    raw, parsed, extra = read_packet(conn)
                    conn.sendall(REPLY)
                except OSError as e:
                    print(f"capture: {e}", file=sys.stderr)
                    continue
            self.record(raw, parsed, extra)

    def record(self, raw, parsed, extra):
        self.count += 1
        if self.out:
            stem = os.path.join(self.out, "%04d" % self.count)
            with open(stem + ".bin", "wb") as f:
                f.write(raw)
            with open(stem + ".json", "w") as f:
                json.dump({"expected": parsed, "extra_after_body": latin1(extra)}, f, indent=1)
        self.packets.put((raw, parsed, extra))

    def close(self):
        self.sock.close()


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    where = ap.add_mutually_exclusive_group(required=True)
    where.add_argument("--tcp", help="HOST:PORT to listen on")
    where.add_argument("--unix", help="unix socket path to listen on")
    ap.add_argument("--out", required=True, help="directory for NNNN.bin / NNNN.json")
    args = ap.parse_args()
    os.makedirs(args.out, exist_ok=True)
    server = CaptureServer(tcp=args.tcp, unix=args.unix, out=args.out)
    print(f"capture: listening on {server.address}, writing to {args.out}", file=sys.stderr)
    try:
        server.serve()
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
