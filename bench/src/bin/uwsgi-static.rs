//! uwsgi-static: the no-Python ceiling. A uwsgi-protocol backend that answers
//! every request with one fixed HTTP response and closes, doing the least work
//! a backend can do: an accept4 loop, an optimistic read right after accept,
//! the request body (CONTENT_LENGTH bytes) read and discarded, one send of the
//! prebuilt response, close. epoll only for connections whose packet is not
//! complete yet or whose response does not fit the socket buffer.
//!
//! Two loops: `--mode blocking` (default): each thread parks in accept() on a
//! blocking listener, reads optimistically from the non-blocking connection and
//! poll()s only if the bytes are not there yet (the fewest syscalls per request
//! when requests arrive one at a time); `--mode epoll`: one epoll loop per
//! thread, draining the backlog with accept4 on each wake.
//!
//! usage: uwsgi-static --socket ADDR [--body-bytes N] [--content-type T]
//!                     [--threads N] [--backlog N] [--mode blocking|epoll]
//!   ADDR is uWSGI's spelling: host:port for TCP, a path for a unix socket.
//!   The default body is "Hello, World!" (13 bytes), what bench/apps/hello.py says.

use rwsgi_bench::*;
use std::collections::HashMap;
use std::os::unix::io::RawFd;
use std::sync::Arc;

const USAGE: &str =
    "usage: uwsgi-static --socket ADDR [--body-bytes N] [--content-type T] [--threads N] [--backlog N] [--mode blocking|epoll]";
const LISTENER: u64 = u64::MAX;

struct Conn {
    head: Vec<u8>,     // header + vars block as it arrives
    need_head: usize,  // 4 until the header is in, then 4 + datasize
    head_done: bool,   // header and vars block complete
    body_left: u64,    // request body bytes still to read and discard
    written: usize,    // response bytes sent (writing once the request is in)
    writing: bool,
}

impl Conn {
    fn new() -> Conn {
        Conn { head: Vec::with_capacity(1024), need_head: 4, head_done: false, body_left: 0, written: 0, writing: false }
    }
}

enum Step {
    Done,
    Wait,
}

fn main() {
    let args = match Args::parse(&["--help"]) {
        Ok(a) => a,
        Err(e) => die(&e),
    };
    if args.has("--help") {
        println!("{USAGE}");
        return;
    }
    if let Err(e) = args.check_known(&["--socket", "--body-bytes", "--content-type", "--threads", "--backlog", "--mode"]) {
        die(&e);
    }
    let addr = match args.get("--socket").map(Addr::parse) {
        Some(Ok(a)) => a,
        Some(Err(e)) => die(&e),
        None => die("--socket is required"),
    };
    let body_bytes: usize = args.get_parsed("--body-bytes", 13).unwrap_or_else(|e| die(&e));
    let threads: usize = args.get_parsed("--threads", 1).unwrap_or_else(|e| die(&e));
    let backlog: i32 = args.get_parsed("--backlog", 4096).unwrap_or_else(|e| die(&e));
    let ctype = args.get("--content-type").unwrap_or("text/plain").to_string();
    let epoll = match args.get("--mode").unwrap_or("blocking") {
        "blocking" => false,
        "epoll" => true,
        m => die(&format!("unknown --mode {m:?}")),
    };

    let body: Vec<u8> =
        if body_bytes == 13 { b"Hello, World!".to_vec() } else { (0..body_bytes).map(|i| b'a' + (i % 26) as u8).collect() };
    let mut resp =
        format!("HTTP/1.1 200 OK\r\nContent-Type: {ctype}\r\nContent-Length: {}\r\n\r\n", body.len()).into_bytes();
    resp.extend_from_slice(&body);
    let resp = Arc::new(resp);

    ignore_sigpipe();
    let lfd = listen(&addr, backlog, epoll).unwrap_or_else(|e| die(&format!("listen on {addr:?}: {e}")));
    eprintln!(
        "uwsgi-static: listening on {addr:?}, {} response bytes, {threads} thread(s), {} mode",
        resp.len(),
        if epoll { "epoll" } else { "blocking" }
    );

    for _ in 1..threads.max(1) {
        let resp = resp.clone();
        std::thread::spawn(move || if epoll { serve(lfd, &resp, true) } else { serve_blocking(lfd, &resp) });
    }
    if epoll {
        serve(lfd, &resp, threads > 1)
    } else {
        serve_blocking(lfd, &resp)
    }
}

/// Park in accept(); serve one connection at a time.
fn serve_blocking(lfd: RawFd, resp: &[u8]) {
    let mut scratch = vec![0u8; 256 * 1024];
    loop {
        // SAFETY: plain syscall; no peer address wanted.
        let fd = unsafe {
            libc::accept4(lfd, std::ptr::null_mut(), std::ptr::null_mut(), libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC)
        };
        if fd < 0 {
            continue; // EINTR, ECONNABORTED, EMFILE...: try again
        }
        let mut c = Conn::new();
        // Bounded: a peer that stays silent for 10 s is dropped.
        for _ in 0..100_000 {
            match advance(fd, &mut c, resp, &mut scratch) {
                Step::Done => break,
                Step::Wait => {
                    let mut p = libc::pollfd {
                        fd,
                        events: if c.writing { libc::POLLOUT } else { libc::POLLIN },
                        revents: 0,
                    };
                    // SAFETY: one valid pollfd.
                    if unsafe { libc::poll(&mut p, 1, 10_000) } == 0 {
                        break;
                    }
                }
            }
        }
        close(fd);
    }
}

fn die(msg: &str) -> ! {
    eprintln!("uwsgi-static: {msg}\n{USAGE}");
    std::process::exit(2)
}

fn serve(lfd: RawFd, resp: &[u8], exclusive: bool) {
    let mut ep = Epoll::new(256).expect("epoll");
    let mut lev = libc::EPOLLIN as u32;
    if exclusive {
        lev |= libc::EPOLLEXCLUSIVE as u32;
    }
    ep.add(lfd, lev, LISTENER).expect("epoll add listener");
    let mut conns: HashMap<RawFd, Conn> = HashMap::new();
    let mut scratch = vec![0u8; 256 * 1024];
    loop {
        let evs = ep.wait(-1).expect("epoll_wait");
        for (_ev, tok) in evs {
            if tok == LISTENER {
                // Drain the backlog (bounded per wake so parked connections progress).
                for _ in 0..256 {
                    // SAFETY: plain syscall; no peer address wanted.
                    let fd = unsafe {
                        libc::accept4(lfd, std::ptr::null_mut(), std::ptr::null_mut(), libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC)
                    };
                    if fd < 0 {
                        break; // EAGAIN, or a transient error: wait for the next wake.
                    }
                    let mut c = Conn::new();
                    match advance(fd, &mut c, resp, &mut scratch) {
                        Step::Done => close(fd),
                        Step::Wait => {
                            let evs = (libc::EPOLLIN | libc::EPOLLOUT | libc::EPOLLRDHUP | libc::EPOLLET) as u32;
                            if ep.add(fd, evs, fd as u64).is_err() {
                                close(fd);
                            } else {
                                conns.insert(fd, c);
                            }
                        }
                    }
                }
            } else {
                let fd = tok as RawFd;
                if let Some(c) = conns.get_mut(&fd) {
                    if let Step::Done = advance(fd, c, resp, &mut scratch) {
                        conns.remove(&fd);
                        close(fd); // close also removes it from the epoll set
                    }
                }
            }
        }
    }
}

/// Read what is there, then write what fits. Done = close the connection.
fn advance(fd: RawFd, c: &mut Conn, resp: &[u8], scratch: &mut [u8]) -> Step {
    while !c.writing {
        if c.head_done && c.body_left == 0 {
            c.writing = true;
            break;
        }
        // One request per connection: read whatever is there, in one go.
        // SAFETY: scratch is a valid writable buffer.
        let n = unsafe { libc::recv(fd, scratch.as_mut_ptr() as *mut libc::c_void, scratch.len(), 0) };
        if n < 0 {
            return if errno() == libc::EAGAIN { Step::Wait } else { Step::Done };
        }
        if n == 0 {
            return Step::Done; // peer went away before a full request
        }
        let mut data = &scratch[..n as usize];
        while !data.is_empty() && !c.head_done {
            let take = (c.need_head - c.head.len()).min(data.len());
            c.head.extend_from_slice(&data[..take]);
            data = &data[take..];
            if c.head.len() == 4 && c.need_head == 4 {
                c.need_head = 4 + u16::from_le_bytes([c.head[1], c.head[2]]) as usize;
            }
            if c.head.len() == c.need_head {
                c.head_done = true;
                c.body_left = find_var(&c.head[4..], b"CONTENT_LENGTH").map(leading_number).unwrap_or(0);
            }
        }
        c.body_left = c.body_left.saturating_sub(data.len() as u64);
    }
    while c.written < resp.len() {
        let rest = &resp[c.written..];
        // SAFETY: rest is a valid slice.
        let n = unsafe { libc::send(fd, rest.as_ptr() as *const libc::c_void, rest.len(), libc::MSG_NOSIGNAL) };
        if n < 0 {
            return if errno() == libc::EAGAIN { Step::Wait } else { Step::Done };
        }
        c.written += n as usize;
    }
    Step::Done
}
