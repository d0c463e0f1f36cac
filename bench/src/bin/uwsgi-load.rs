//! uwsgi-load: a uwsgi-protocol load generator that talks to the backend
//! directly, the way nginx's uwsgi_pass does: a new connection per request,
//! one nginx-like packet (16 vars) plus an optional body, then read the raw
//! HTTP response until the backend closes. N connections are kept in flight.
//! Bounded by duration and/or request count. epoll, non-blocking sockets.
//!
//! usage: uwsgi-load --socket ADDR [--connections 64] [--duration 5] [--requests N]
//!                   [--warmup 0] [--path /] [--method GET] [--body-bytes 0]
//!                   [--threads 1] [--timeout 10] [--until-eof] [--json]
//!
//! A response is complete when its head and Content-Length body bytes are in
//! (nginx then closes the upstream connection, and so does this tool), or at
//! the backend's close when it has no Content-Length (or with --until-eof).
//!
//! Output: a human summary, or with --json one JSON object on stdout:
//!   {"requests", "ok", "elapsed_s", "rps", "p50_us", "p90_us", "p99_us", "max_us",
//!    "errors": {"connect", "write", "read", "status", "timeout"}, "errors_total",
//!    "resp_bytes"}
//! "rps" counts responses with a 2xx/3xx status line; latency is measured from
//! the connect() call to the response's completion, over all completed responses.

use rwsgi_bench::*;
use std::os::unix::io::RawFd;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

const USAGE: &str = "usage: uwsgi-load --socket ADDR [--connections N] [--duration SECS] [--requests N] [--warmup SECS] \
[--path P] [--method M] [--body-bytes N] [--threads N] [--timeout SECS] [--until-eof] [--json]";

#[derive(Default, Clone)]
struct Stats {
    lat_us: Vec<u32>,
    ok: u64,
    completed: u64,
    e_connect: u64,
    e_write: u64,
    e_read: u64,
    e_status: u64,
    e_timeout: u64,
    resp_bytes: u64,
}

impl Stats {
    fn merge(&mut self, o: Stats) {
        self.lat_us.extend(o.lat_us);
        self.ok += o.ok;
        self.completed += o.completed;
        self.e_connect += o.e_connect;
        self.e_write += o.e_write;
        self.e_read += o.e_read;
        self.e_status += o.e_status;
        self.e_timeout += o.e_timeout;
        self.resp_bytes += o.resp_bytes;
    }
}

struct Conn {
    fd: RawFd,
    start: Instant,
    written: usize,
    /// Response head (status line + headers) until the blank line is seen.
    head: Vec<u8>,
    head_done: bool,
    /// Content-Length of the response, if the head had one.
    clen: Option<u64>,
    body_got: u64,
    got: usize,
    /// Counted in the measurement (started after the warm-up ended).
    measured: bool,
    /// Ignore Content-Length and wait for the backend's close.
    until_eof: bool,
}

struct Plan {
    addr: RawAddr,
    packet: Vec<u8>, // header + vars + body
    conns: usize,
    warmup_end: Instant,
    deadline: Instant,
    /// Requests still allowed to start (u64::MAX = unbounded).
    budget: Arc<AtomicU64>,
    timeout: Duration,
    until_eof: bool,
}

fn main() {
    let args = Args::parse(&["--json", "--help", "--until-eof"]).unwrap_or_else(|e| die(&e));
    if args.has("--help") {
        println!("{USAGE}");
        return;
    }
    args.check_known(&[
        "--socket", "--connections", "--duration", "--requests", "--warmup", "--path", "--method", "--body-bytes",
        "--threads", "--timeout", "--json", "--host", "--until-eof",
    ])
    .unwrap_or_else(|e| die(&e));
    let addr = match args.get("--socket").map(Addr::parse) {
        Some(Ok(a)) => a,
        Some(Err(e)) => die(&e),
        None => die("--socket is required"),
    };
    let conns: usize = args.get_parsed("--connections", 64).unwrap_or_else(|e| die(&e));
    let requests: u64 = args.get_parsed("--requests", 0).unwrap_or_else(|e| die(&e));
    let duration: f64 =
        args.get_parsed("--duration", if requests > 0 { 3600.0 } else { 5.0 }).unwrap_or_else(|e| die(&e));
    let warmup: f64 = args.get_parsed("--warmup", 0.0).unwrap_or_else(|e| die(&e));
    let threads: usize = args.get_parsed("--threads", 1).unwrap_or_else(|e| die(&e));
    let timeout: f64 = args.get_parsed("--timeout", 10.0).unwrap_or_else(|e| die(&e));
    let body_bytes: usize = args.get_parsed("--body-bytes", 0).unwrap_or_else(|e| die(&e));
    let path = args.get("--path").unwrap_or("/").to_string();
    let method = args.get("--method").unwrap_or(if body_bytes > 0 { "POST" } else { "GET" }).to_string();
    let host = args.get("--host").unwrap_or("localhost").to_string();
    let json = args.has("--json");
    let until_eof = args.has("--until-eof");
    if conns == 0 || threads == 0 || duration <= 0.0 {
        die("--connections, --threads and --duration must be positive");
    }
    ignore_sigpipe();

    let packet = build_packet(&addr, &method, &path, &host, body_bytes);
    let start = Instant::now();
    let warmup_end = start + Duration::from_secs_f64(warmup);
    let deadline = warmup_end + Duration::from_secs_f64(duration);
    let budget = Arc::new(AtomicU64::new(if requests > 0 { requests } else { u64::MAX }));

    let mut handles = Vec::new();
    for t in 0..threads {
        let share = conns / threads + usize::from(t < conns % threads);
        if share == 0 {
            continue;
        }
        let plan = Plan {
            addr: RawAddr::new(&addr).unwrap_or_else(|e| die(&format!("address: {e}"))),
            packet: packet.clone(),
            conns: share,
            warmup_end,
            deadline,
            budget: budget.clone(),
            timeout: Duration::from_secs_f64(timeout),
            until_eof,
        };
        handles.push(std::thread::spawn(move || run(plan)));
    }
    let mut total = Stats::default();
    for h in handles {
        total.merge(h.join().expect("load thread panicked"));
    }
    let end = Instant::now().min(deadline);
    let elapsed = end.saturating_duration_since(warmup_end).as_secs_f64().max(1e-9);
    report(&total, elapsed, json, conns, &addr);
}

fn die(msg: &str) -> ! {
    eprintln!("uwsgi-load: {msg}\n{USAGE}");
    std::process::exit(2)
}

/// The vars nginx's default uwsgi_params (plus Debian's HTTP_HOST) send for a
/// request from wrk, in nginx's order: 16 vars, ~450 bytes.
fn build_packet(addr: &Addr, method: &str, path: &str, host: &str, body_bytes: usize) -> Vec<u8> {
    let (path_only, query) = match path.split_once('?') {
        Some((p, q)) => (p.to_string(), q.to_string()),
        None => (path.to_string(), String::new()),
    };
    let server_port = match addr {
        Addr::Tcp(a) => a.port().to_string(),
        Addr::Unix(_) => "80".to_string(),
    };
    let (ctype, clen) = if body_bytes > 0 {
        ("application/octet-stream".to_string(), body_bytes.to_string())
    } else {
        (String::new(), String::new())
    };
    let mut vars: Vec<(&str, String)> = vec![
        ("QUERY_STRING", query),
        ("REQUEST_METHOD", method.to_string()),
        ("CONTENT_TYPE", ctype.clone()),
        ("CONTENT_LENGTH", clen.clone()),
        ("REQUEST_URI", path.to_string()),
        ("PATH_INFO", path_only),
        ("DOCUMENT_ROOT", "/usr/share/nginx/html".to_string()),
        ("SERVER_PROTOCOL", "HTTP/1.1".to_string()),
        ("REQUEST_SCHEME", "http".to_string()),
        ("REMOTE_ADDR", "127.0.0.1".to_string()),
        ("REMOTE_PORT", "51234".to_string()),
        ("SERVER_PORT", server_port),
        ("SERVER_NAME", host.to_string()),
        ("HTTP_HOST", host.to_string()),
        ("HTTP_USER_AGENT", "uwsgi-load/0.1".to_string()),
        ("HTTP_ACCEPT", "*/*".to_string()),
    ];
    if body_bytes > 0 {
        // nginx forwards the client's Content-Type/-Length headers as HTTP_* too.
        vars.push(("HTTP_CONTENT_TYPE", ctype));
        vars.push(("HTTP_CONTENT_LENGTH", clen));
    }
    let mut pkt = encode_packet(&vars);
    pkt.extend((0..body_bytes).map(|i| b'a' + (i % 26) as u8));
    pkt
}

fn run(plan: Plan) -> Stats {
    let mut st = Stats { lat_us: Vec::with_capacity(1 << 16), ..Default::default() };
    let mut ep = Epoll::new(plan.conns * 2).expect("epoll");
    let mut slots: Vec<Option<Conn>> = (0..plan.conns).map(|_| None).collect();
    // Slots waiting to reconnect after a failed connect (avoids a hot spin when
    // the backend is not there): (slot, not before).
    let mut retry: Vec<(usize, Instant)> = Vec::new();
    for s in 0..plan.conns {
        open(&plan, &mut ep, &mut slots, s, &mut st, &mut retry);
    }
    loop {
        let now = Instant::now();
        // What is still in flight at the deadline is not counted (as wrk does).
        if now >= plan.deadline {
            break;
        }
        // Count mode: the budget is spent and every request is in.
        if slots.iter().all(|s| s.is_none()) && retry.is_empty() {
            break;
        }
        let mut wait_ms = plan.deadline.saturating_duration_since(now).as_millis().min(100) as i32;
        if let Some(t) = retry.iter().map(|r| r.1).min() {
            wait_ms = wait_ms.min(t.saturating_duration_since(now).as_millis() as i32);
        }
        let evs = ep.wait(wait_ms.max(0)).expect("epoll_wait");
        for (_ev, tok) in evs {
            let s = tok as usize;
            let Some(c) = slots[s].as_mut() else { continue };
            match drive(c, &plan.packet) {
                Drive::Pending => {}
                outcome => {
                    finish(&plan, &mut slots, s, outcome, &mut st);
                    open(&plan, &mut ep, &mut slots, s, &mut st, &mut retry);
                }
            }
        }
        let now = Instant::now();
        // Reconnect slots whose back-off is over.
        let due: Vec<usize> = retry.iter().filter(|r| r.1 <= now).map(|r| r.0).collect();
        retry.retain(|r| r.1 > now);
        for s in due {
            open(&plan, &mut ep, &mut slots, s, &mut st, &mut retry);
        }
        // Per-request timeout.
        for s in 0..slots.len() {
            if let Some(c) = &slots[s] {
                if now.duration_since(c.start) > plan.timeout {
                    finish(&plan, &mut slots, s, Drive::Timeout, &mut st);
                    open(&plan, &mut ep, &mut slots, s, &mut st, &mut retry);
                }
            }
        }
    }
    for c in slots.into_iter().flatten() {
        close(c.fd);
    }
    st
}

fn take_budget(plan: &Plan) -> bool {
    if Instant::now() >= plan.deadline {
        return false;
    }
    let b = &plan.budget;
    if b.load(Ordering::Relaxed) == u64::MAX {
        return true;
    }
    b.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |v| if v == 0 { None } else { Some(v - 1) }).is_ok()
}

/// Start a new request in slot `s` (if the bounds allow one).
fn open(plan: &Plan, ep: &mut Epoll, slots: &mut [Option<Conn>], s: usize, st: &mut Stats, retry: &mut Vec<(usize, Instant)>) {
    if !take_budget(plan) {
        return;
    }
    let start = Instant::now();
    let measured = start >= plan.warmup_end;
    let fd = match stream_socket(plan.addr.family) {
        Ok(fd) => fd,
        Err(_) => {
            if measured {
                st.e_connect += 1;
            }
            retry.push((s, start + Duration::from_millis(5)));
            return;
        }
    };
    // SAFETY: addr holds a valid sockaddr.
    let r = unsafe { libc::connect(fd, plan.addr.as_ptr(), plan.addr.len()) };
    if r < 0 && errno() != libc::EINPROGRESS {
        // Includes EAGAIN on a full unix-socket backlog: nginx answers 502 then.
        close(fd);
        if measured {
            st.e_connect += 1;
        }
        retry.push((s, start + Duration::from_millis(1)));
        return;
    }
    let evs = (libc::EPOLLIN | libc::EPOLLOUT | libc::EPOLLRDHUP | libc::EPOLLET) as u32;
    if ep.add(fd, evs, s as u64).is_err() {
        close(fd);
        if measured {
            st.e_connect += 1;
        }
        retry.push((s, start + Duration::from_millis(1)));
        return;
    }
    let mut c = Conn {
        fd,
        start,
        written: 0,
        head: Vec::with_capacity(256),
        head_done: false,
        clen: None,
        body_got: 0,
        got: 0,
        measured,
        until_eof: plan.until_eof,
    };
    if r == 0 {
        // Connected at once (unix sockets): write right away, as nginx does.
        match drive(&mut c, &plan.packet) {
            Drive::Pending => {}
            outcome => {
                slots[s] = Some(c);
                finish(plan, slots, s, outcome, st);
                // Next request starts on the next loop turn via the retry list.
                retry.push((s, Instant::now()));
                return;
            }
        }
    }
    slots[s] = Some(c);
}

enum Drive {
    Pending,
    Done,
    ConnErr,
    WriteErr,
    ReadErr,
    Timeout,
}

/// Write the rest of the packet, then read until EOF. Edge-triggered: drain.
fn drive(c: &mut Conn, packet: &[u8]) -> Drive {
    while c.written < packet.len() {
        let rest = &packet[c.written..];
        // SAFETY: rest is a valid slice.
        let n = unsafe { libc::send(c.fd, rest.as_ptr() as *const libc::c_void, rest.len(), libc::MSG_NOSIGNAL) };
        if n < 0 {
            let e = errno();
            if e == libc::EAGAIN || e == libc::ENOTCONN {
                return Drive::Pending; // not connected yet or socket buffer full
            }
            if c.written == 0 && (e == libc::ECONNREFUSED || e == libc::ENOENT) {
                return Drive::ConnErr;
            }
            // The backend may have answered and closed early: read what it sent.
            return if c.got > 0 || read_some(c) == Read::Eof { Drive::Done } else { Drive::WriteErr };
        }
        c.written += n as usize;
    }
    match read_some(c) {
        Read::Again => Drive::Pending,
        Read::Complete => Drive::Done,
        Read::Eof => {
            if c.got == 0 {
                Drive::ReadErr // closed without a response (nginx: 502)
            } else {
                Drive::Done
            }
        }
        Read::Err => Drive::ReadErr,
    }
}

#[derive(PartialEq)]
enum Read {
    Again,
    /// Head plus Content-Length body bytes are in: done without waiting for EOF.
    Complete,
    Eof,
    Err,
}

fn read_some(c: &mut Conn) -> Read {
    let mut buf = [0u8; 65536];
    loop {
        // SAFETY: buf is a valid writable buffer.
        let n = unsafe { libc::recv(c.fd, buf.as_mut_ptr() as *mut libc::c_void, buf.len(), 0) };
        if n < 0 {
            let e = errno();
            return if e == libc::EAGAIN { Read::Again } else { Read::Err };
        }
        if n == 0 {
            return Read::Eof;
        }
        let n = n as usize;
        c.got += n;
        let mut data = &buf[..n];
        if !c.head_done {
            let before = c.head.len();
            c.head.extend_from_slice(data);
            match find_blank_line(&c.head, before.saturating_sub(3)) {
                Some(end) => {
                    c.head_done = true;
                    c.clen = content_length(&c.head[..end]);
                    data = &c.head[end..];
                    c.body_got = data.len() as u64;
                    c.head.truncate(end);
                }
                None => {
                    if c.head.len() > 64 * 1024 {
                        return Read::Err; // no end of headers in 64 KiB
                    }
                    continue;
                }
            }
        } else {
            c.body_got += data.len() as u64;
        }
        // nginx closes the upstream once Content-Length bytes are in; so do we.
        if !c.until_eof {
            if let Some(cl) = c.clen {
                if c.body_got >= cl {
                    return Read::Complete;
                }
            }
        }
    }
}

fn find_blank_line(buf: &[u8], from: usize) -> Option<usize> {
    buf[from..].windows(4).position(|w| w == b"\r\n\r\n").map(|i| from + i + 4)
}

/// Content-Length from a response head (case-insensitive name).
fn content_length(head: &[u8]) -> Option<u64> {
    for line in head.split(|&b| b == b'\n') {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if line.len() > 15 && line[..15].eq_ignore_ascii_case(b"content-length:") {
            let v = std::str::from_utf8(&line[15..]).ok()?.trim();
            return v.parse().ok();
        }
    }
    None
}

fn finish(plan: &Plan, slots: &mut [Option<Conn>], s: usize, outcome: Drive, st: &mut Stats) {
    let Some(c) = slots[s].take() else { return };
    close(c.fd);
    let now = Instant::now();
    // Completions after the deadline are outside the window (wrk does the same).
    if !c.measured || now > plan.deadline {
        return;
    }
    match outcome {
        Drive::Done => {
            st.completed += 1;
            st.resp_bytes += c.got as u64;
            st.lat_us.push(now.duration_since(c.start).as_micros().min(u32::MAX as u128) as u32);
            // "HTTP/1.x 2xx" or "HTTP/1.x 3xx"; CGI-style "Status:" replies count as errors.
            let code = c.head.get(9).copied().unwrap_or(0);
            if c.head.len() >= 12 && c.head.starts_with(b"HTTP/1.") && (code == b'2' || code == b'3') {
                st.ok += 1;
            } else {
                st.e_status += 1;
            }
        }
        Drive::ConnErr => st.e_connect += 1,
        Drive::WriteErr => st.e_write += 1,
        Drive::ReadErr => st.e_read += 1,
        Drive::Timeout => st.e_timeout += 1,
        Drive::Pending => unreachable!(),
    }
}

fn pct(sorted: &[u32], p: f64) -> u32 {
    if sorted.is_empty() {
        return 0;
    }
    let i = ((p / 100.0) * (sorted.len() as f64 - 1.0)).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

fn report(st: &Stats, elapsed: f64, json: bool, conns: usize, addr: &Addr) {
    let mut lat = st.lat_us.clone();
    lat.sort_unstable();
    let (p50, p90, p99, max) = (pct(&lat, 50.0), pct(&lat, 90.0), pct(&lat, 99.0), lat.last().copied().unwrap_or(0));
    let errors = st.e_connect + st.e_write + st.e_read + st.e_status + st.e_timeout;
    let rps = st.ok as f64 / elapsed;
    if json {
        println!(
            "{{\"requests\": {}, \"ok\": {}, \"elapsed_s\": {:.4}, \"rps\": {:.1}, \"p50_us\": {}, \"p90_us\": {}, \
\"p99_us\": {}, \"max_us\": {}, \"errors\": {{\"connect\": {}, \"write\": {}, \"read\": {}, \"status\": {}, \
\"timeout\": {}}}, \"errors_total\": {}, \"resp_bytes\": {}, \"connections\": {}}}",
            st.completed, st.ok, elapsed, rps, p50, p90, p99, max, st.e_connect, st.e_write, st.e_read, st.e_status,
            st.e_timeout, errors, st.resp_bytes, conns
        );
    } else {
        println!("uwsgi-load -> {addr:?}, {conns} connections, {elapsed:.2} s");
        println!("  requests {} ok {}  {:.1} req/s", st.completed, st.ok, rps);
        println!(
            "  latency p50 {:.3} ms  p90 {:.3} ms  p99 {:.3} ms  max {:.3} ms",
            p50 as f64 / 1e3,
            p90 as f64 / 1e3,
            p99 as f64 / 1e3,
            max as f64 / 1e3
        );
        println!(
            "  errors {errors}: connect {} write {} read {} status {} timeout {}",
            st.e_connect, st.e_write, st.e_read, st.e_status, st.e_timeout
        );
        println!("  response bytes {}", st.resp_bytes);
    }
}
