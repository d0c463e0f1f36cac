#!/usr/bin/env bash
# Seed fuzz/corpus/<target>/ from the conformance vectors in protocol-tests/vectors/ (captured and
# malformed). Idempotent; the corpus directories are gitignored. Usage: fuzz/seed.sh
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
python3 - "$here/../protocol-tests/vectors" "$here/corpus" <<'PY'
import os, struct, sys
vectors, corpus = sys.argv[1], sys.argv[2]
seeds = {t: {} for t in ("header", "vars", "decode", "reader", "response", "http")}
for peer in sorted(os.listdir(vectors)):
    d = os.path.join(vectors, peer)
    for f in sorted(os.listdir(d)):
        if not f.endswith(".bin"):
            continue
        name = f"{peer}-{f[:-4]}"
        data = open(os.path.join(d, f), "rb").read()
        seeds["decode"][name] = data
        seeds["header"][name] = data[:8]
        if len(data) >= 4:
            size = struct.unpack_from("<H", data, 1)[0]
            seeds["vars"][name] = data[4:4 + size]
        # reader input: k, k read sizes, then the stream.
        seeds["reader"][name + "-whole"] = b"\x00" + data
        seeds["reader"][name + "-split"] = b"\x03\x00\x06\xff" + data
seeds["decode"]["ping"] = b"\x64\x00\x00\x00"
# http input: k, k read sizes, then the stream.
seeds["http"]["get"] = b"\x00GET /a?b=1 HTTP/1.1\r\nHost: h\r\nAccept: */*\r\n\r\n"
seeds["http"]["pipeline"] = (b"\x02\x05\x0bPOST / HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\n\r\nabc"
    b"POST /c HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n3;x=y\r\nabc\r\n0\r\nT: 1\r\n\r\n"
    b"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
seeds["http"]["smuggle"] = b"\x01\x07POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"
seeds["http"]["absolute"] = b"\x00GET http://x:1/p HTTP/1.1\r\nHost: y\r\nExpect: 100-continue\r\n\r\n"
seeds["http"]["h2"] = b"\x00PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
seeds["header"]["ping"] = b"\x64\x00\x00\x00"
def resp(proto, status, name, value):
    return bytes([len(proto), len(status), len(name)]) + proto + status + name + value
seeds["response"]["ok"] = resp(b"HTTP/1.1", b"200 OK", b"Content-Type", b"text/plain")
seeds["response"]["bare"] = resp(b"HTTP/1.0", b"404", b"X-Multi", b"a")
seeds["response"]["splitting"] = resp(b"HTTP/1.1\r\n", b"200 OK\r\nX: y", b"Bad Name", b"a\r\nb")
for target, items in seeds.items():
    out = os.path.join(corpus, target)
    os.makedirs(out, exist_ok=True)
    for name, data in items.items():
        with open(os.path.join(out, "seed-" + name), "wb") as f:
            f.write(data)
    print(f"{target}: {len(items)} seeds in {out}")
PY
