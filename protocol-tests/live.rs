//! Raw bytes against the real binary: `rwsgi --socket 127.0.0.1:PORT --wsgi-file
//! protocol-tests/apps/echo.py --threads 2`, fed the malformed and captured vectors as a peer would
//! send them. Each case checks what comes back (an answer, or a close without a byte), the log
//! line, and that a good request is still served afterwards.

use crate::json::Json;
use crate::support::{captured, latin1, load_peer, Vector};
use rwsgi::protocol::encode::encode_packet;
use std::fs::File;
use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// How long the server gets to start (it imports Python) and to answer one request.
const START_DEADLINE: Duration = Duration::from_secs(30);
const IO_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a log line may lag behind the response.
const LOG_DEADLINE: Duration = Duration::from_secs(5);

/// A running `rwsgi`, stopped (SIGTERM, then SIGKILL) by its pid when dropped.
struct Server {
    child: Child,
    port: u16,
    log: PathBuf,
}

fn free_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}

impl Server {
    fn start(buffer_size: u32) -> Server {
        let root = Path::new(env!("CARGO_MANIFEST_DIR"));
        let port = free_port();
        let log = std::env::temp_dir().join(format!(
            "rwsgi-protocol-live-{}-{port}.log",
            std::process::id()
        ));
        let out = File::create(&log).unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_rwsgi"))
            .args(["--socket", &format!("127.0.0.1:{port}")])
            .arg("--wsgi-file")
            .arg(root.join("protocol-tests/apps/echo.py"))
            .args(["--threads", "2", "--buffer-size", &buffer_size.to_string()])
            .current_dir(root)
            .stdin(Stdio::null())
            .stdout(out.try_clone().unwrap())
            .stderr(out)
            .spawn()
            .expect("start rwsgi");
        let mut server = Server { child, port, log };
        server.wait_ready();
        server
    }

    /// Ping until PONG comes back.
    fn wait_ready(&mut self) {
        let deadline = Instant::now() + START_DEADLINE;
        while Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("rwsgi exited with {status}:\n{}", self.log_text());
            }
            if let Ok(reply) = self.exchange(&[100, 0, 0, 0], false) {
                if reply.bytes == [100, 0, 0, 1] {
                    return;
                }
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!("rwsgi did not answer a ping:\n{}", self.log_text());
    }

    fn log_text(&self) -> String {
        String::from_utf8_lossy(&std::fs::read(&self.log).unwrap_or_default()).into_owned()
    }

    /// Send `bytes` on a fresh connection (then half-close if asked) and read until the server
    /// closes.
    fn exchange(&self, bytes: &[u8], shut_down: bool) -> std::io::Result<Reply> {
        let mut s = TcpStream::connect(("127.0.0.1", self.port))?;
        s.set_read_timeout(Some(IO_TIMEOUT))?;
        s.set_write_timeout(Some(IO_TIMEOUT))?;
        s.write_all(bytes)?;
        if shut_down {
            s.shutdown(Shutdown::Write)?;
        }
        let mut out = Vec::new();
        let mut buf = [0u8; 65536];
        let reset = loop {
            match s.read(&mut buf) {
                Ok(0) => break false,
                Ok(n) => out.extend_from_slice(&buf[..n]),
                Err(e) if e.kind() == ErrorKind::ConnectionReset => break true,
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        };
        Ok(Reply { bytes: out, reset })
    }

    /// Wait until the log, past `from` bytes, holds `needle`.
    fn expect_log(&self, from: usize, needle: &str, case: &str) {
        let deadline = Instant::now() + LOG_DEADLINE;
        loop {
            let text = self.log_text();
            if text.get(from..).is_some_and(|t| t.contains(needle)) {
                return;
            }
            if Instant::now() > deadline {
                panic!(
                    "{case}: no log line {needle:?} in:\n{}",
                    text.get(from..).unwrap_or("")
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn log_len(&self) -> usize {
        std::fs::metadata(&self.log).map_or(0, |m| m.len() as usize)
    }

    /// A good request still gets `HTTP/1.1 200` with the echo line.
    fn assert_serves(&self, case: &str) {
        let path = format!("/after/{case}");
        let packet = good_request(path.as_bytes());
        let reply = self.exchange(&packet, false).expect("good request");
        let text = String::from_utf8_lossy(&reply.bytes);
        assert!(
            text.starts_with("HTTP/1.1 200") && text.ends_with(&format!("GET - {path} 0\n")),
            "after {case}: {text:?}\n{}",
            self.log_text()
        );
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let pid = self.child.id() as libc::pid_t;
        // SAFETY: signalling the child we spawned, by its pid.
        unsafe { libc::kill(pid, libc::SIGTERM) };
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                let _ = std::fs::remove_file(&self.log);
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_file(&self.log);
    }
}

/// What came back on one connection.
struct Reply {
    bytes: Vec<u8>,
    /// The server reset the connection instead of closing it.
    reset: bool,
}

impl Reply {
    /// The status code of an HTTP answer.
    fn status(&self) -> Option<u16> {
        let line = self.bytes.split(|&b| b == b'\n').next()?;
        let text = std::str::from_utf8(line).ok()?;
        let mut words = text.split(' ');
        words.next().filter(|p| p.starts_with("HTTP/1."))?;
        words.next()?.trim().parse().ok()
    }
}

fn good_request(path: &[u8]) -> Vec<u8> {
    encode_packet(
        0,
        0,
        &[
            (b"REQUEST_METHOD", b"GET"),
            (b"PATH_INFO", path),
            (b"QUERY_STRING", b""),
            (b"SERVER_PROTOCOL", b"HTTP/1.1"),
            (b"SERVER_NAME", b"localhost"),
            (b"SERVER_PORT", b"80"),
            (b"REMOTE_ADDR", b"127.0.0.1"),
        ],
    )
    .unwrap()
}

#[test]
fn live_ping_answers_pong_and_http_on_the_socket_gets_400() {
    let server = Server::start(4096);
    let reply = server.exchange(&[100, 0, 0, 0], false).unwrap();
    assert_eq!(reply.bytes, [100, 0, 0, 1]);
    let reply = server
        .exchange(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n", false)
        .unwrap();
    assert!(
        reply.bytes.starts_with(b"HTTP/1.0 400"),
        "{:?}",
        String::from_utf8_lossy(&reply.bytes)
    );
    server.assert_serves("http");
}

#[test]
fn live_malformed_vectors_get_their_documented_answer() {
    let server = Server::start(4096);
    for v in load_peer("malformed") {
        let case = v.id();
        let from = server.log_len();
        let shut_down = v.doc.get("peer_shuts_down").and_then(Json::bool).unwrap();
        let expected = v.doc.get("server").unwrap();
        let reply = server
            .exchange(&v.bytes, shut_down)
            .unwrap_or_else(|e| panic!("{case}: {e}"));
        match expected.get("answer").unwrap() {
            Json::Null => assert!(
                reply.bytes.is_empty(),
                "{case}: expected a close without a byte, got {:?}",
                String::from_utf8_lossy(&reply.bytes)
            ),
            Json::Num(code) => {
                assert_eq!(
                    reply.status().map(i64::from),
                    Some(*code),
                    "{case}: {:?}",
                    String::from_utf8_lossy(&reply.bytes)
                );
                // An answer the peer cannot read (lost to a reset) is no answer.
                assert!(!reply.reset, "{case}: answered, then reset");
            }
            other => panic!("{case}: bad answer {other:?}"),
        }
        let log = expected.get("log").and_then(Json::str).unwrap();
        server.expect_log(from, log, &case);
        server.assert_serves(&v.name);
    }
}

/// The echo line the app answers for a captured request.
fn echo_of(v: &Vector) -> String {
    let vars = v.expected().get("vars").and_then(Json::arr).unwrap();
    let get = |key: &str| -> Option<Vec<u8>> {
        vars.iter()
            .rev()
            .map(|p| p.arr().unwrap())
            .find(|p| p[0].str() == Some(key))
            .map(|p| latin1(p[1].str().unwrap()))
    };
    let method = String::from_utf8_lossy(&get("REQUEST_METHOD").unwrap_or_default()).into_owned();
    let script = get("SCRIPT_NAME").filter(|s| !s.is_empty());
    let mut path = get("PATH_INFO").unwrap_or_default();
    // rwsgi strips a SCRIPT_NAME the proxy sends from the front of PATH_INFO, whatever modifier1
    // (src/python/environ/mod.rs): what modifier1 30 asks for, and what PEP 3333 means.
    if let Some(s) = &script {
        if let Some(rest) = path.strip_prefix(&s[..]) {
            path = rest.to_vec();
        }
    }
    let script = script.map_or("-".to_owned(), |s| latin1_text(&s));
    let body = v
        .expected()
        .get("content_length")
        .and_then(Json::num)
        .unwrap();
    format!("{method} {script} {} {body}\n", latin1_text(&path))
}

fn latin1_text(b: &[u8]) -> String {
    b.iter().map(|&c| char::from(c)).collect()
}

#[test]
fn live_captured_vectors_are_served() {
    // nginx caps a vars block at 65535: serve everything a real peer can send.
    let server = Server::start(65535);
    for v in captured() {
        let case = v.id();
        // Apache's unused backend connection was closed by Apache: so is ours.
        let reply = server
            .exchange(&v.bytes, v.bytes.is_empty())
            .unwrap_or_else(|e| panic!("{case}: {e}"));
        if v.bytes.is_empty() || v.doc.get("expected_error").is_some() {
            // Apache's unused connection, and modifier1 5: closed without a byte.
            assert!(reply.bytes.is_empty(), "{case}");
        } else {
            let text = String::from_utf8_lossy(&reply.bytes);
            // The status line echoes SERVER_PROTOCOL (HTTP/1.0 when a peer sends none).
            assert_eq!(reply.status(), Some(200), "{case}: {text:?}");
            let body = latin1_text(&reply.bytes);
            assert!(
                body.ends_with(&echo_of(&v)),
                "{case}: {body:?} does not end with {:?}",
                echo_of(&v)
            );
        }
        server.assert_serves(&v.name);
    }
}
