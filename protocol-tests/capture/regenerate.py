#!/usr/bin/env python3
"""Regenerate the captured conformance vectors under protocol-tests/vectors/.

Starts `capture.CaptureServer` (a fake uwsgi backend) on TCP and on a unix socket, puts real peers
in front of it (nginx, Apache httpd with mod_proxy_uwsgi, uWSGI's HTTP router, uwsgi_curl), sends
each listed client request through them, and writes for each packet that arrives:

    vectors/<peer>/<name>.bin    the raw bytes: header, vars block, CONTENT_LENGTH body bytes
    vectors/<peer>/<name>.json   provenance (program, version, config, client request) and the
                                 expected decode, from capture.py's own parser

Usage:  python3 protocol-tests/capture/regenerate.py [--only PEER ...] [--keep-tmp]
Needs:  nginx (Debian nginx-light or nginx), apache2 with mod_proxy_uwsgi, /tmp/benv/bin/uwsgi
        (pyuwsgi, for --http/--http-to), /tmp/benv/bin/uwsgi_curl (uwsgi-tools), openssl.
Every server runs in the foreground under a private temp prefix on loopback and is stopped by pid.
"""

import argparse
import json
import os
import shlex
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from capture import CaptureServer, latin1  # noqa: E402

VECTORS = os.path.join(os.path.dirname(HERE), "vectors")
BENV = os.environ.get("BENV", "/tmp/benv/bin")
COOKIE_10K = "c=" + "x" * (10 * 1024)
COOKIE_60K = "c=" + "y" * (60 * 1024)


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def wait_port(port, deadline=10.0):
    end = time.time() + deadline
    while time.time() < end:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"nothing listening on 127.0.0.1:{port}")


def version_of(cmd):
    out = subprocess.run(cmd, capture_output=True, text=True)
    return (out.stdout + out.stderr).strip().splitlines()[0]


def http_request(port, method, path, headers=(), body=None, chunked=None, tls=False):
    """Send one raw HTTP/1.1 request and return (request bytes, response bytes)."""
    lines = [f"{method} {path} HTTP/1.1", f"Host: localhost:{port}", "User-Agent: rwsgi-capture/1"]
    lines += [f"{k}: {v}" for k, v in headers]
    payload = b""
    if body is not None:
        lines.append(f"Content-Length: {len(body)}")
        payload = body
    if chunked is not None:
        lines.append("Transfer-Encoding: chunked")
        payload = b"".join(b"%x\r\n%s\r\n" % (len(c), c) for c in chunked) + b"0\r\n\r\n"
    lines.append("Connection: close")
    request = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + payload
    sock = socket.create_connection(("127.0.0.1", port), timeout=10)
    if tls:
        ctx = ssl.create_default_context()
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        sock = ctx.wrap_socket(sock, server_hostname="localhost")
    with sock:
        sock.sendall(request)
        response = b""
        while True:
            try:
                chunk = sock.recv(65536)
            except (ConnectionResetError, ssl.SSLError):
                break
            if not chunk:
                break
            response += chunk
    return request, response


def describe(request):
    """The client request for the sidecar: long header values abbreviated."""
    text = latin1(request)
    out = []
    for line in text.split("\r\n"):
        if len(line) > 200:
            name, _, value = line.partition(": ")
            line = f"{name}: {value[:12]}... ({len(value)} bytes: {value[2]!r} repeated after {value[:2]!r})"
        out.append(line)
    return "\r\n".join(out)


def dump_json(doc):
    """JSON with one var pair per line, so a diff of a regenerated vector reads well."""
    expected = doc.get("expected", {})
    vars_ = expected.get("vars")
    if vars_ is None:
        return json.dumps(doc, indent=1) + "\n"
    placeholder = "@@VARS@@"
    expected["vars"] = placeholder
    text = json.dumps(doc, indent=1)
    expected["vars"] = vars_
    pairs = ",\n".join("   " + json.dumps(p) for p in vars_)
    return text.replace(json.dumps(placeholder), "[\n" + pairs + "\n  ]") + "\n"


class Recorder:
    """Names the packets arriving at a capture server and writes vectors."""

    def __init__(self, server, peer):
        self.server = server
        self.peer = peer
        self.dir = os.path.join(VECTORS, peer)
        os.makedirs(self.dir, exist_ok=True)
        self.written = []

    def drain(self):
        while not self.server.packets.empty():
            self.server.packets.get_nowait()

    def take(self, name, provenance, expect_error=None, timeout=10.0):
        try:
            raw, parsed, extra = self.server.packets.get(timeout=timeout)
        except Exception:
            print(f"  {self.peer}/{name}: NOTHING ARRIVED", file=sys.stderr)
            return False
        doc = dict(provenance)
        doc["name"] = name
        doc["peer"] = self.peer
        doc["expected"] = parsed
        if expect_error:
            doc["expected_error"] = expect_error
        doc["extra_after_body"] = latin1(extra)
        with open(os.path.join(self.dir, name + ".bin"), "wb") as f:
            f.write(raw)
        with open(os.path.join(self.dir, name + ".json"), "w") as f:
            f.write(dump_json(doc))
        self.written.append(name)
        print(f"  {self.peer}/{name}: {len(raw)} bytes, {len(parsed.get('vars', []))} vars"
              + (f", {len(extra)} extra bytes" if extra else ""), file=sys.stderr)
        return True


# The client requests sent through HTTP front ends: (name, method, path, kwargs).
def common_requests():
    return [
        ("get_query", "GET", "/search?q=rust+lang&page=2&empty=", {}),
        ("percent_path", "GET", "/path/x%20y/caf%C3%A9/a%2Fb?next=%2Fhome%3Fx%3D1", {}),
        ("post_body", "POST", "/submit",
         {"headers": [("Content-Type", "application/x-www-form-urlencoded")],
          "body": b"name=rwsgi&lang=rust&emoji=%F0%9F%A6%80"}),
        ("chunked_upload", "POST", "/upload",
         {"headers": [("Content-Type", "text/plain")],
          "chunked": [b"hello ", b"chunked ", b"world\n"]}),
        ("dup_headers", "GET", "/dup",
         {"headers": [("X-Dup", "1"), ("X-Dup", "2"), ("Cookie", "a=1"), ("Cookie", "b=2"),
                      ("Under_score", "dropped?"), ("Accept", "text/html, */*;q=0.1")]}),
        ("cookie_10k", "GET", "/big", {"headers": [("Cookie", COOKIE_10K)]}),
    ]


NOTES = {
    ("apache", "chunked_upload"): "httpd answered 411 Length Required itself; mod_proxy_uwsgi still "
    "opened a backend connection and closed it without sending a byte.",
    ("apache", "percent_path"): "a %2F in the path makes mod_proxy_uwsgi answer 500 (AH10100: unable "
    "to decode uwsgi uri) without reaching the backend, so this path has none.",
    ("uwsgi-router", "chunked_upload"): "the router forwards HTTP_TRANSFER_ENCODING=chunked with no "
    "CONTENT_LENGTH and sent no body bytes within the capture's grace period: the body is lost.",
    ("nginx-tcp", "chunked_upload"): "nginx de-chunks: CONTENT_LENGTH is the decoded length, yet "
    "HTTP_TRANSFER_ENCODING=chunked is still forwarded.",
    ("nginx-unix", "chunked_upload"): "nginx de-chunks: CONTENT_LENGTH is the decoded length, yet "
    "HTTP_TRANSFER_ENCODING=chunked is still forwarded.",
    ("nginx-tcp", "dup_headers"): "nginx 1.22 sends duplicate keys (>= 1.23 joins them); the "
    "Under_score header is dropped (underscores_in_headers off).",
    ("nginx-unix", "dup_headers"): "nginx 1.22 sends duplicate keys (>= 1.23 joins them); the "
    "Under_score header is dropped (underscores_in_headers off).",
}


def run_http_requests(rec, port, requests, provenance, tls=False):
    for name, method, path, kw in requests:
        rec.drain()
        request, response = http_request(port, method, path, tls=tls, **kw)
        prov = dict(provenance)
        if (rec.peer, name) in NOTES:
            prov["notes"] = NOTES[(rec.peer, name)]
        prov["client_request"] = describe(request)
        prov["client_response_status"] = latin1(response.split(b"\r\n", 1)[0])
        rec.take(name, prov)


# ---------------------------------------------------------------------------------------------
# nginx


NGINX_SERVER = """
    server {{
        listen 127.0.0.1:{port}{ssl};
        server_name localhost;
        {ssl_files}
        location / {{
            include /etc/nginx/uwsgi_params;
            uwsgi_pass {backend};
        }}
        location /extras/ {{
            include /etc/nginx/uwsgi_params;
            uwsgi_param SCRIPT_NAME /extras;
            uwsgi_param UWSGI_SCHEME https;
            uwsgi_param X_DEPLOY "blue green";
            uwsgi_param X_EMPTY "";
            uwsgi_param X_SKIPPED "" if_not_empty;
            uwsgi_pass {backend};
        }}
        location /mod30/ {{
            include /etc/nginx/uwsgi_params;
            uwsgi_param SCRIPT_NAME /mod30;
            uwsgi_modifier1 30;
            uwsgi_pass {backend};
        }}
        location /mod5/ {{
            include /etc/nginx/uwsgi_params;
            uwsgi_modifier1 5;
            uwsgi_modifier2 9;
            uwsgi_pass {backend};
        }}
    }}
"""

NGINX_CONF = """
daemon off;
master_process on;
worker_processes 1;
user root root;
pid {tmp}/nginx.pid;
error_log {tmp}/nginx-error.log info;
events {{ worker_connections 64; }}
http {{
    access_log off;
    client_body_temp_path {tmp}/client_body;
    proxy_temp_path {tmp}/proxy;
    fastcgi_temp_path {tmp}/fastcgi;
    uwsgi_temp_path {tmp}/uwsgi;
    scgi_temp_path {tmp}/scgi;
    large_client_header_buffers 4 128k;
    client_max_body_size 10m;
{servers}
}}
"""


def nginx(tmp, tcp_cap, unix_cap):
    exe = shutil.which("nginx")
    if not exe:
        print("nginx: not installed (apt-get install -y nginx-light); skipped", file=sys.stderr)
        return
    version = version_of([exe, "-v"])
    key, cert = os.path.join(tmp, "key.pem"), os.path.join(tmp, "cert.pem")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", key,
                    "-out", cert, "-days", "2", "-subj", "/CN=localhost"],
                   check=True, capture_output=True)
    p_tcp, p_unix, p_tls = free_port(), free_port(), free_port()
    ssl_files = f"ssl_certificate {cert}; ssl_certificate_key {key};"
    servers = [
        NGINX_SERVER.format(port=p_tcp, ssl="", ssl_files="", backend=tcp_cap.address),
        NGINX_SERVER.format(port=p_unix, ssl="", ssl_files="", backend="unix:" + unix_cap.address),
        NGINX_SERVER.format(port=p_tls, ssl=" ssl", ssl_files=ssl_files, backend=tcp_cap.address),
    ]
    conf = NGINX_CONF.format(tmp=tmp, servers="".join(servers))
    path = os.path.join(tmp, "nginx.conf")
    with open(path, "w") as f:
        f.write(conf)
    proc = subprocess.Popen([exe, "-c", path, "-p", tmp, "-e", os.path.join(tmp, "nginx-error.log")])
    try:
        for p in (p_tcp, p_unix, p_tls):
            wait_port(p)
        extra = [
            ("cookie_60k", "GET", "/big", {"headers": [("Cookie", COOKIE_60K)]}),
            ("uwsgi_param_extras", "GET", "/extras/page?x=1", {}),
            ("modifier1_30", "GET", "/mod30/env", {}),
        ]
        for peer, port, cap, backend in (("nginx-tcp", p_tcp, tcp_cap, tcp_cap.address),
                                         ("nginx-unix", p_unix, unix_cap, "unix:" + unix_cap.address)):
            prov = {
                "program": "nginx",
                "version": version,
                "transport": "tcp" if peer == "nginx-tcp" else "unix",
                "config": NGINX_SERVER.format(port=port, ssl="", ssl_files="", backend=backend).strip()
                + "\n# http{}: large_client_header_buffers 4 128k; client_max_body_size 10m;"
                + "\n# /etc/nginx/uwsgi_params is Debian's (adds HTTP_HOST $host)",
            }
            rec = Recorder(cap, peer)
            run_http_requests(rec, port, common_requests() + extra, prov)
            # modifier1 5 is a plugin rwsgi does not serve: a real packet with an expected error.
            rec.drain()
            request, response = http_request(port, "GET", "/mod5/x")
            rec.take("modifier1_5", dict(prov, client_request=describe(request),
                                         client_response_status=latin1(response.split(b"\r\n", 1)[0])),
                     expect_error={"UnknownModifier": {"modifier1": 5, "modifier2": 9}})
        rec = Recorder(tcp_cap, "nginx-tcp")
        prov = {"program": "nginx", "version": version, "transport": "tcp (client side: TLS)",
                "config": servers[2].strip().replace(tmp, "$TMP")}
        run_http_requests(rec, p_tls, [("https_on", "GET", "/secure?tls=1", {})], prov, tls=True)
    finally:
        proc.send_signal(signal.SIGQUIT)
        proc.wait(timeout=10)


# ---------------------------------------------------------------------------------------------
# Apache httpd + mod_proxy_uwsgi


APACHE_CONF = """
ServerRoot "/usr/lib/apache2"
ServerName localhost
Listen 127.0.0.1:{port}
PidFile {tmp}/apache.pid
ErrorLog {tmp}/apache-error.log
DefaultRuntimeDir {tmp}
LogLevel warn
LoadModule mpm_event_module modules/mod_mpm_event.so
LoadModule authz_core_module modules/mod_authz_core.so
LoadModule proxy_module modules/mod_proxy.so
LoadModule proxy_uwsgi_module modules/mod_proxy_uwsgi.so
User www-data
Group www-data
LimitRequestFieldSize 65536
AllowEncodedSlashes NoDecode
ProxyPass "/app/" "uwsgi://{backend}/"
ProxyPass "/" "uwsgi://{backend}/"
"""


def apache(tmp, tcp_cap):
    exe = shutil.which("apache2") or shutil.which("httpd")
    if not exe or not os.path.exists("/usr/lib/apache2/modules/mod_proxy_uwsgi.so"):
        print("apache2 + mod_proxy_uwsgi: not installed; skipped", file=sys.stderr)
        return
    version = version_of([exe, "-v"])
    pkg = subprocess.run(["dpkg-query", "-W", "-f", "${Package} ${Version}", "apache2"],
                         capture_output=True, text=True).stdout
    port = free_port()
    conf = APACHE_CONF.format(port=port, tmp=tmp, backend=tcp_cap.address)
    path = os.path.join(tmp, "apache.conf")
    with open(path, "w") as f:
        f.write(conf)
    os.chmod(tmp, 0o755)
    # httpd copies its environment into every request's vars: keep it small and reproducible.
    env = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "LANG": "C"}
    proc = subprocess.Popen([exe, "-f", path, "-DFOREGROUND"], env=env)
    try:
        wait_port(port)
        prov = {"program": "Apache httpd mod_proxy_uwsgi", "version": f"{version} (Debian package {pkg})",
                "transport": "tcp", "config": conf.strip().replace(tmp, "$TMP")}
        rec = Recorder(tcp_cap, "apache")
        # An encoded slash (%2F) in the path makes mod_proxy_uwsgi answer 500 itself
        # ("AH10100: unable to decode uwsgi uri"), even with AllowEncodedSlashes NoDecode: nothing
        # reaches the backend, so Apache's percent_path has no %2F in its path.
        requests = [r if r[0] != "percent_path" else
                    ("percent_path", "GET", "/path/x%20y/caf%C3%A9?next=%2Fhome%3Fx%3D1", {})
                    for r in common_requests()] + [
            ("authorization", "GET", "/private", {"headers": [("Authorization", "Basic dXNlcjpwYXNz")]}),
            ("script_name_mount", "GET", "/app/sub/page?x=1", {}),
        ]
        run_http_requests(rec, port, requests, prov)
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=10)


# ---------------------------------------------------------------------------------------------
# uWSGI's HTTP router


def uwsgi_router(tmp, tcp_cap):
    exe = os.path.join(BENV, "uwsgi")
    if not os.path.exists(exe):
        print(f"{exe}: missing; uWSGI router skipped", file=sys.stderr)
        return
    version = "uWSGI " + version_of([exe, "--version"]) + " (pyuwsgi build, http plugin built in)"
    port = free_port()
    args = [exe, "--http", f"127.0.0.1:{port}", "--http-to", tcp_cap.address, "--master",
            "--buffer-size", "32768", "--pidfile", os.path.join(tmp, "uwsgi-router.pid")]
    log = open(os.path.join(tmp, "uwsgi-router.log"), "w")
    proc = subprocess.Popen(args, stdout=log, stderr=log)
    try:
        wait_port(port)
        prov = {"program": "uWSGI HTTP router", "version": version, "transport": "tcp",
                "config": " ".join(["uwsgi"] + args[1:]).replace(tmp, "$TMP")}
        run_http_requests(Recorder(tcp_cap, "uwsgi-router"), port, common_requests(), prov)
    finally:
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=10)
        log.close()


# ---------------------------------------------------------------------------------------------
# uwsgi_curl (uwsgi-tools)


UWSGI_CURL_NOTES = {
    "post_data": "uwsgi_curl sends the body with no CONTENT_LENGTH: the bytes arrive after the "
    "packet (extra_after_body) and a conforming backend reads no body.",
    "headers": "uwsgi_curl does not turn '-' into '_' in header names (HTTP_X-TEST).",
}


def uwsgi_curl(tmp, tcp_cap, unix_cap):
    exe = os.path.join(BENV, "uwsgi_curl")
    if not os.path.exists(exe):
        print(f"{exe}: missing; skipped", file=sys.stderr)
        return
    pip = subprocess.run([os.path.join(BENV, "python3"), "-m", "pip", "show", "uwsgi-tools"],
                         capture_output=True, text=True).stdout
    version = "uwsgi-tools " + next((l.split()[1] for l in pip.splitlines() if l.startswith("Version")), "?")
    # uwsgi_curl takes its options before the address: [options] ADDR URL.
    cases = [
        ("get_query", tcp_cap, [], "http://example.com/search?q=rust&page=2"),
        ("post_data", tcp_cap, ["-X", "POST", "-d", "a=1&b=2"], "/submit"),
        ("headers", tcp_cap, ["-H", "X-Test: v", "-H", "Accept: */*"], "/h"),
        ("unix_get", unix_cap, [], "/over/unix?y=2"),
    ]
    rec_tcp, rec_unix = Recorder(tcp_cap, "uwsgi_curl"), Recorder(unix_cap, "uwsgi_curl")
    for name, cap, opts, url in cases:
        rec = rec_tcp if cap is tcp_cap else rec_unix
        rec.drain()
        cmd = [exe] + opts + [cap.address, url]
        subprocess.run(cmd, capture_output=True, timeout=20)
        prov = {"program": "uwsgi_curl", "version": version,
                "transport": "unix" if cap is unix_cap else "tcp",
                "config": "(none: uwsgi_curl speaks uwsgi itself)",
                "client_request": shlex.join(["uwsgi_curl"] + opts + ["$ADDR", url])}
        if name in UWSGI_CURL_NOTES:
            prov["notes"] = UWSGI_CURL_NOTES[name]
        rec.take(name, prov)


def main():
    ap = argparse.ArgumentParser(description="Regenerate captured uwsgi vectors.")
    ap.add_argument("--only", nargs="*", choices=["nginx", "apache", "uwsgi-router", "uwsgi_curl"])
    ap.add_argument("--keep-tmp", action="store_true")
    args = ap.parse_args()
    only = set(args.only or ["nginx", "apache", "uwsgi-router", "uwsgi_curl"])
    tmp = tempfile.mkdtemp(prefix="rwsgi-capture-")
    os.chmod(tmp, 0o755)
    tcp_cap = CaptureServer(tcp="127.0.0.1:0").start()
    unix_cap = CaptureServer(unix=os.path.join(tmp, "capture.sock")).start()
    try:
        if "nginx" in only:
            nginx(tmp, tcp_cap, unix_cap)
        if "apache" in only:
            apache(tmp, tcp_cap)
        if "uwsgi-router" in only:
            uwsgi_router(tmp, tcp_cap)
        if "uwsgi_curl" in only:
            uwsgi_curl(tmp, tcp_cap, unix_cap)
    finally:
        tcp_cap.close()
        unix_cap.close()
        if args.keep_tmp:
            print(f"kept {tmp}", file=sys.stderr)
        else:
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
