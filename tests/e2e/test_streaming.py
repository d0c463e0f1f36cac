"""A generator response reaches the client chunk by chunk, not after the app is done."""

import time

from harness import example

SLEEP_S = 2.0


def test_first_chunk_arrives_before_the_app_finishes(stack, transport):
    s = stack("--wsgi-file", example("streaming.py"), transport=transport)
    conn = s.nginx.connection(timeout=30)
    try:
        t0 = time.monotonic()
        conn.request("GET", "/slow?s=%g" % SLEEP_S)
        resp = conn.getresponse()
        assert resp.status == 200, s.diagnostics()
        first = resp.read1(65536)
        t_first = time.monotonic() - t0
        rest = resp.read()
        t_all = time.monotonic() - t0
    finally:
        conn.close()
    assert first == b"first chunk\n"
    assert rest == b"second chunk\ndone\n"
    assert t_all >= SLEEP_S * 0.9, f"the whole response took only {t_all:.2f} s"
    assert t_first < SLEEP_S / 2, f"the first chunk came after {t_first:.2f} s, the app sleeps {SLEEP_S} s after it"


def test_first_chunk_arrives_early_on_the_backend_socket(server):
    """The same without nginx: the server itself does not hold chunks back."""
    import uwsgi_wire as wire

    srv = server("--wsgi-file", example("streaming.py"))
    with wire.connect(srv.address, timeout=30) as sock:
        t0 = time.monotonic()
        sock.sendall(wire.packet(wire.request_vars("GET", "/slow", "s=%g" % SLEEP_S)))
        got = b""
        while b"first chunk\n" not in got:
            data = sock.recv(65536)
            assert data, f"connection closed early: {got!r}"
            got += data
        t_first = time.monotonic() - t0
        got += wire.read_to_eof(sock, 30)
        t_all = time.monotonic() - t0
    status, _, body = wire.split_response(got)
    assert status == "HTTP/1.1 200 OK"
    assert body == b"first chunk\nsecond chunk\ndone\n"
    assert t_first < SLEEP_S / 2 and t_all >= SLEEP_S * 0.9, (t_first, t_all)


def test_generator_body_is_complete(stack):
    s = stack("--wsgi-file", example("streaming.py"))
    resp = s.get("/")
    assert resp.status == 200
    assert resp.body == b"chunk 0\nchunk 1\nchunk 2\n"
