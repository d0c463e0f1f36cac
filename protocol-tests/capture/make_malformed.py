#!/usr/bin/env python3
"""Write the hand-made malformed vectors: protocol-tests/vectors/malformed/<name>.bin + .json.

Each sidecar names the DecodeError rwsgi must return (variant and fields), the reply() it maps to,
and what the running server does: the log line it prints, and whether the peer gets an HTTP answer
or only a close. `limits` are the decoder limits the vector is judged under (the live tests run
`rwsgi --buffer-size 4096`). `peer_shuts_down` means the sender half-closes after the bytes, so
the error comes from RequestReader::eof(), not from decode().

Usage: python3 protocol-tests/capture/make_malformed.py
"""

import json
import os
import struct

OUT = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "vectors", "malformed")
LIMITS = {"buffer_size": 4096, "limit_post": 0}


def var(key, value):
    return struct.pack("<H", len(key)) + key + struct.pack("<H", len(value)) + value


def packet(block, modifier1=0, modifier2=0, datasize=None):
    size = len(block) if datasize is None else datasize
    return struct.pack("<BHB", modifier1, size, modifier2) + block


GOOD = var(b"REQUEST_METHOD", b"GET") + var(b"PATH_INFO", b"/") + var(b"SERVER_PROTOCOL", b"HTTP/1.1")


def close(log):
    return {"answer": None, "log": log}


def answer(status, log):
    return {"answer": status, "log": log}


def vectors():
    v = []
    v.append(("truncated_header", packet(b"")[:2], {"Truncated": {"have": 2, "need": 4}},
              "close", close("peer closed the connection after 2 of 4 bytes"), True,
              "two bytes of a header, then the peer half-closes"))
    block = GOOD
    data = packet(block)[: 4 + 10]
    need = 4 + len(block)
    v.append(("truncated_vars", data, {"Truncated": {"have": 14, "need": need}},
              "close", close(f"peer closed the connection after 14 of {need} bytes"), True,
              "the header and 10 bytes of its vars block, then the peer half-closes"))
    v.append(("key_past_block", packet(b"\x10\x00KEY"), {"Overrun": {"offset": 0}},
              "close", close("runs past the vars block"), False,
              "the first key length (16) runs past a 5-byte block"))
    block = var(b"A", b"1") + b"\x01\x00K\x09\x00v"
    v.append(("value_past_block", packet(block), {"Overrun": {"offset": 6}},
              "close", close("runs past the vars block"), False,
              "the second value length (9) runs past the block"))
    block = GOOD + b"\x00\x00\x01\x00x"
    v.append(("zero_length_key", packet(block), {"NullKey": {"offset": len(GOOD)}},
              "close", close("uwsgi key cannot be null"), False,
              "a key of length 0 after three good pairs"))
    v.append(("stray_trailing_byte", packet(GOOD + b"\x07"), {"TrailingBytes": {"offset": len(GOOD)}},
              "close", close("stray bytes"), False,
              "one byte after the last pair: too short for a length"))
    v.append(("stray_two_bytes", packet(GOOD + b"\x07\x00"), {"Overrun": {"offset": len(GOOD)}},
              "close", close("runs past the vars block"), False,
              "two bytes after the last pair: a key length with no key (uWSGI also rejects exactly 2)"))
    v.append(("datasize_zero", packet(b""), {"EmptyRequest": {}},
              "close", close("empty request (datasize 0)"), False,
              "a WSGI header announcing an empty vars block"))
    # An nginx-like packet whose vars block is exactly 5000 bytes: over --buffer-size 4096.
    head = GOOD + var(b"HTTP_HOST", b"localhost")
    pad = 5000 - len(head) - len(var(b"HTTP_COOKIE", b""))
    block = head + var(b"HTTP_COOKIE", b"c=" + b"z" * (pad - 2))
    assert len(block) == 5000
    v.append(("datasize_over_buffer_size", packet(block), {"BlockTooLarge": {"size": 5000, "max": 4096}},
              "431 Request Header Fields Too Large",
              answer(431, "invalid request block size: 5000 (max 4096)"), False,
              "a 5000-byte vars block (a big cookie) against --buffer-size 4096"))
    v.append(("http_get_on_socket", b"GET / HTTP/1.1\r\nHost: localhost\r\nUser-Agent: curl/8\r\n\r\n",
              {"HttpOnUwsgiSocket": {"size": 21573, "max": 4096}}, "400 Bad Request",
              answer(400, "invalid request block size: 21573 (max 4096)"), False,
              "curl speaking HTTP to the uwsgi socket: 'GET ' reads as modifier1 71, datasize 21573"))
    v.append(("http_post_on_socket",
              b"POST /form HTTP/1.1\r\nHost: localhost\r\nContent-Length: 3\r\n\r\na=1",
              {"HttpOnUwsgiSocket": {"size": 21327, "max": 4096}}, "400 Bad Request",
              answer(400, "looks like HTTP sent to a uwsgi socket"), False,
              "an HTTP POST on the uwsgi socket: 'POST' reads as modifier1 80, datasize 21327"))
    v.append(("unknown_modifier1", packet(GOOD, modifier1=5),
              {"UnknownModifier": {"modifier1": 5, "modifier2": 0}}, "close",
              close("unavailable modifier requested: 5"), False,
              "modifier1 5 (PSGI in uWSGI) with a good vars block"))
    block = GOOD + var(b"CONTENT_LENGTH", b"12abc")
    v.append(("content_length_garbage", packet(block) + b"0123456789ab", {"BadContentLength": {}},
              "400 Bad Request", answer(400, "invalid CONTENT_LENGTH"), False,
              "CONTENT_LENGTH '12abc' (uWSGI would read 12)"))
    block = (var(b"REQUEST_METHOD", b"POST") + var(b"PATH_INFO", b"/upload")
             + var(b"SERVER_PROTOCOL", b"HTTP/1.1") + var(b"CONTENT_LENGTH", b"10"))
    data = packet(block) + b"abc"
    v.append(("body_shorter_than_content_length", data,
              {"Truncated": {"have": len(data), "need": len(data) + 7}}, "close",
              close(f"peer closed the connection after {len(data)} of {len(data) + 7} bytes"), True,
              "CONTENT_LENGTH 10, three body bytes, then the peer half-closes"))
    return v


def main():
    os.makedirs(OUT, exist_ok=True)
    for name, data, error, reply, server, shuts_down, description in vectors():
        with open(os.path.join(OUT, name + ".bin"), "wb") as f:
            f.write(data)
        doc = {
            "name": name,
            "description": description,
            "provenance": "hand-made by protocol-tests/capture/make_malformed.py",
            "limits": LIMITS,
            "peer_shuts_down": shuts_down,
            "expected_error": error,
            "reply": reply,
            "server": server,
        }
        with open(os.path.join(OUT, name + ".json"), "w") as f:
            json.dump(doc, f, indent=1)
            f.write("\n")
        print(f"{name}: {len(data)} bytes")


if __name__ == "__main__":
    main()
