//! Micro-benchmarks of the per-request work outside the kernel: decoding an nginx packet, and
//! building the WSGI environ from it (in a live interpreter).
//!
//! `cargo bench --bench request_path`

use criterion::{criterion_group, criterion_main, Criterion};
use pyo3::prelude::*;
use rwsgi::protocol::encode::encode_packet;
use rwsgi::protocol::{decode, Limits, Packet, Progress, RequestReader};
use rwsgi::python::environ::{EnvironTemplate, Routes};
use std::hint::black_box;

/// What nginx 1.22 sends for `GET /hello?x=1` with Debian's uwsgi_params and a browser's headers.
fn nginx_packet() -> Vec<u8> {
    let pairs: &[(&[u8], &[u8])] = &[
        (b"QUERY_STRING", b"x=1"),
        (b"REQUEST_METHOD", b"GET"),
        (b"CONTENT_TYPE", b""),
        (b"CONTENT_LENGTH", b""),
        (b"REQUEST_URI", b"/hello?x=1"),
        (b"PATH_INFO", b"/hello"),
        (b"DOCUMENT_ROOT", b"/usr/share/nginx/html"),
        (b"SERVER_PROTOCOL", b"HTTP/1.1"),
        (b"REQUEST_SCHEME", b"http"),
        (b"REMOTE_ADDR", b"127.0.0.1"),
        (b"REMOTE_PORT", b"51234"),
        (b"SERVER_PORT", b"80"),
        (b"SERVER_NAME", b"localhost"),
        (b"HTTP_HOST", b"localhost"),
        (
            b"HTTP_USER_AGENT",
            b"Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0",
        ),
        (
            b"HTTP_ACCEPT",
            b"text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8",
        ),
        (b"HTTP_ACCEPT_LANGUAGE", b"en-US,en;q=0.5"),
        (b"HTTP_ACCEPT_ENCODING", b"gzip, deflate, br"),
        (b"HTTP_COOKIE", b"session=0123456789abcdef; theme=dark"),
        (
            b"HTTP_X_REQUEST_ID",
            b"7f9d2c1e-5b3a-4e8f-9c6d-2a1b0e3f4d5c",
        ),
    ];
    encode_packet(0, 0, pairs).expect("fits")
}

fn decoder(c: &mut Criterion) {
    let packet = nginx_packet();
    let limits = Limits::default();
    c.bench_function("decode nginx packet", |b| {
        b.iter(|| decode(black_box(&packet), &limits))
    });
    c.bench_function("request reader, one read", |b| {
        b.iter(|| {
            let mut reader = RequestReader::new(limits);
            let spare = reader.spare();
            spare[..packet.len()].copy_from_slice(&packet);
            reader.commit(packet.len());
            matches!(reader.poll(), Ok(Progress::Ready(Packet::Request(_))))
        })
    });
}

fn environ(c: &mut Criterion) {
    Python::initialize();
    let packet = nginx_packet();
    let Ok(Some(Packet::Request(head))) = decode(&packet, &Limits::default()) else {
        panic!("the packet decodes");
    };
    Python::attach(|py| {
        let template = EnvironTemplate::new(
            py,
            true,
            false,
            false,
            py.None().into_bound(py),
            Routes::default(),
        )
        .expect("template");
        c.bench_function("build environ (20 vars)", |b| {
            b.iter(|| {
                let (environ, _) = template
                    .build(py, head.vars(&packet), py.None().into_bound(py))
                    .expect("environ");
                black_box(environ);
            })
        });
    });
}

criterion_group!(benches, decoder, environ);
criterion_main!(benches);
