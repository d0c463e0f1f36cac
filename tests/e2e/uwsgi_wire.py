"""Speaking the uwsgi protocol by hand, for tests that go straight to the backend socket.

A request packet is a 4-byte header (modifier1, u16 LE size of the vars block,
modifier2) then `u16 LE len | key | u16 LE len | value` pairs, then the body.
The reply is a raw HTTP/1.x response ended by the server closing the connection.
"""

import socket
import struct
import time

PING = bytes([100, 0, 0, 0])
PONG = bytes([100, 0, 0, 1])


def encode_vars(pairs):
    out = bytearray()
    for key, value in pairs:
        key = key.encode("latin-1") if isinstance(key, str) else key
        value = value.encode("latin-1") if isinstance(value, str) else value
        out += struct.pack("<H", len(key)) + key + struct.pack("<H", len(value)) + value
    return bytes(out)


def packet(pairs, modifier1=0, modifier2=0, body=b""):
    block = encode_vars(pairs)
    return struct.pack("<BHB", modifier1, len(block), modifier2) + block + body


def request_vars(method="GET", path="/", query="", body_len=0, content_type="", extra=()):
    """The vars nginx sends with Debian's uwsgi_params, in nginx's order."""
    uri = path + ("?" + query if query else "")
    return [
        ("QUERY_STRING", query),
        ("REQUEST_METHOD", method),
        ("CONTENT_TYPE", content_type),
        ("CONTENT_LENGTH", str(body_len) if body_len else ""),
        ("REQUEST_URI", uri),
        ("PATH_INFO", path),
        ("DOCUMENT_ROOT", "/usr/share/nginx/html"),
        ("SERVER_PROTOCOL", "HTTP/1.1"),
        ("REQUEST_SCHEME", "http"),
        ("REMOTE_ADDR", "127.0.0.1"),
        ("REMOTE_PORT", "40000"),
        ("SERVER_PORT", "80"),
        ("SERVER_NAME", "localhost"),
        ("HTTP_HOST", "localhost"),
        *extra,
    ]


def connect(address, timeout=10.0):
    """`address` is ("127.0.0.1", port) for TCP or a filesystem path for a unix socket."""
    if isinstance(address, tuple):
        sock = socket.create_connection(address, timeout=timeout)
    else:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(timeout)
        sock.connect(address)
    return sock


def read_to_eof(sock, deadline_s=15.0):
    """Everything the peer sends until it closes (a reset counts as a close)."""
    chunks = []
    end = time.monotonic() + deadline_s
    while time.monotonic() < end:
        try:
            data = sock.recv(65536)
        except ConnectionResetError:
            break
        if not data:
            break
        chunks.append(data)
    else:
        raise TimeoutError("the server did not close the connection within %.1f s" % deadline_s)
    return b"".join(chunks)


def exchange(address, data, timeout=10.0):
    """Send `data`, then return the whole reply."""
    with connect(address, timeout) as sock:
        sock.sendall(data)
        return read_to_eof(sock, timeout)


def get(address, path="/", query="", timeout=10.0):
    return exchange(address, packet(request_vars("GET", path, query)), timeout)


def split_response(raw):
    """(status line, [(name, value)], body) of a raw HTTP/1.x reply."""
    head, sep, body = raw.partition(b"\r\n\r\n")
    if not sep:
        raise AssertionError("reply has no end of headers: %r" % raw[:200])
    lines = head.split(b"\r\n")
    headers = []
    for line in lines[1:]:
        name, _, value = line.partition(b":")
        headers.append((name.decode("latin-1"), value.strip().decode("latin-1")))
    return lines[0].decode("latin-1"), headers, body
