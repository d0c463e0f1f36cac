//! Shared pieces of the two benchmark instruments: socket addresses in uWSGI's
//! spelling, raw non-blocking sockets, a thin epoll wrapper, the uwsgi packet
//! encoder and a tiny `--flag value` argument reader. Only std and libc.

use std::ffi::CString;
use std::io;
use std::net::{Ipv4Addr, SocketAddrV4};
use std::os::unix::io::RawFd;

/// A backend address as uWSGI spells it: anything with a `:` is TCP
/// (`127.0.0.1:3031`, `:3031` means 0.0.0.0), everything else a unix path.
#[derive(Clone, Debug)]
pub enum Addr {
    /// An IPv4 host and port.
    Tcp(SocketAddrV4),
    /// A unix socket path (`unix:` prefix stripped).
    Unix(String),
}

impl Addr {
    /// Read `s`: `unix:PATH` or a string without `:` is a unix path, `HOST:PORT` (empty host or
    /// `localhost` meaning 127.0.0.1) is TCP.
    pub fn parse(s: &str) -> Result<Addr, String> {
        if let Some(rest) = s.strip_prefix("unix:") {
            return Ok(Addr::Unix(rest.to_string()));
        }
        if s.contains(':') {
            let (host, port) = s.rsplit_once(':').unwrap();
            let host = if host.is_empty() || host == "localhost" { "127.0.0.1" } else { host };
            let ip: Ipv4Addr = host.parse().map_err(|e| format!("bad IPv4 host {host:?}: {e}"))?;
            let port: u16 = port.parse().map_err(|e| format!("bad port {port:?}: {e}"))?;
            Ok(Addr::Tcp(SocketAddrV4::new(ip, port)))
        } else {
            Ok(Addr::Unix(s.to_string()))
        }
    }
}

/// Raw sockaddr storage for connect/bind.
pub struct RawAddr {
    storage: libc::sockaddr_storage,
    len: libc::socklen_t,
    /// `AF_INET` or `AF_UNIX`, for the socket to create.
    pub family: libc::c_int,
}

impl RawAddr {
    /// The sockaddr for `addr`; a unix path too long for `sun_path` is an error.
    pub fn new(addr: &Addr) -> io::Result<RawAddr> {
        // SAFETY: sockaddr_storage is plain data; all-zero is a valid value.
        let mut storage: libc::sockaddr_storage = unsafe { std::mem::zeroed() };
        match addr {
            Addr::Tcp(a) => {
                let sin = libc::sockaddr_in {
                    sin_family: libc::AF_INET as libc::sa_family_t,
                    sin_port: a.port().to_be(),
                    sin_addr: libc::in_addr { s_addr: u32::from_ne_bytes(a.ip().octets()) },
                    sin_zero: [0; 8],
                };
                // SAFETY: sockaddr_in fits in sockaddr_storage.
                unsafe { std::ptr::write(&mut storage as *mut _ as *mut libc::sockaddr_in, sin) };
                Ok(RawAddr {
                    storage,
                    len: std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t,
                    family: libc::AF_INET,
                })
            }
            Addr::Unix(p) => {
                // SAFETY: as above for sockaddr_un.
                let sun = unsafe { &mut *(&mut storage as *mut _ as *mut libc::sockaddr_un) };
                sun.sun_family = libc::AF_UNIX as libc::sa_family_t;
                let bytes = p.as_bytes();
                if bytes.len() >= sun.sun_path.len() {
                    return Err(io::Error::new(io::ErrorKind::InvalidInput, "unix socket path too long"));
                }
                for (i, b) in bytes.iter().enumerate() {
                    sun.sun_path[i] = *b as libc::c_char;
                }
                let len = std::mem::size_of::<libc::sa_family_t>() + bytes.len() + 1;
                Ok(RawAddr { storage, len: len as libc::socklen_t, family: libc::AF_UNIX })
            }
        }
    }

    /// The sockaddr, for bind(2) and connect(2).
    pub fn as_ptr(&self) -> *const libc::sockaddr {
        &self.storage as *const _ as *const libc::sockaddr
    }

    /// Bytes of the sockaddr that are meaningful.
    pub fn len(&self) -> libc::socklen_t {
        self.len
    }

    /// Whether no address is held (never, for one built by [`RawAddr::new`]).
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

/// The calling thread's errno, 0 when none.
pub fn errno() -> i32 {
    io::Error::last_os_error().raw_os_error().unwrap_or(0)
}

/// A libc return value as a `Result`: negative means the error in errno.
pub fn cvt(r: libc::c_int) -> io::Result<libc::c_int> {
    if r < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(r)
    }
}

/// A non-blocking, close-on-exec stream socket of the address's family.
pub fn stream_socket(family: libc::c_int) -> io::Result<RawFd> {
    // SAFETY: plain syscall.
    cvt(unsafe { libc::socket(family, libc::SOCK_STREAM | libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC, 0) })
}

/// Bind and listen. A stale unix socket file is removed first. A non-blocking
/// listener is for epoll; a blocking one for threads parked in accept().
pub fn listen(addr: &Addr, backlog: i32, nonblocking: bool) -> io::Result<RawFd> {
    let raw = RawAddr::new(addr)?;
    let fd = stream_socket(raw.family)?;
    if !nonblocking {
        // SAFETY: plain fcntl on our fd.
        unsafe {
            let fl = libc::fcntl(fd, libc::F_GETFL);
            libc::fcntl(fd, libc::F_SETFL, fl & !libc::O_NONBLOCK);
        }
    }
    if let Addr::Unix(p) = addr {
        let _ = std::fs::remove_file(p);
    } else {
        let one: libc::c_int = 1;
        // SAFETY: valid fd and option pointer.
        unsafe {
            libc::setsockopt(
                fd,
                libc::SOL_SOCKET,
                libc::SO_REUSEADDR,
                &one as *const _ as *const libc::c_void,
                std::mem::size_of::<libc::c_int>() as libc::socklen_t,
            );
        }
    }
    // SAFETY: raw holds a valid sockaddr of raw.len bytes.
    cvt(unsafe { libc::bind(fd, raw.as_ptr(), raw.len()) })?;
    if let Addr::Tcp(_) = addr {
        // Wake accept() only once the request's first bytes are in (as uWSGI does).
        let secs: libc::c_int = 5;
        // SAFETY: valid fd and option pointer.
        unsafe {
            libc::setsockopt(
                fd,
                libc::IPPROTO_TCP,
                libc::TCP_DEFER_ACCEPT,
                &secs as *const _ as *const libc::c_void,
                std::mem::size_of::<libc::c_int>() as libc::socklen_t,
            );
        }
    }
    // SAFETY: plain syscall.
    cvt(unsafe { libc::listen(fd, backlog) })?;
    Ok(fd)
}

/// Close `fd`, ignoring errors.
pub fn close(fd: RawFd) {
    // SAFETY: the caller owns fd.
    unsafe { libc::close(fd) };
}

/// Thin epoll wrapper; the u64 data is the caller's token.
pub struct Epoll {
    /// The epoll instance.
    pub fd: RawFd,
    events: Vec<libc::epoll_event>,
}

impl Epoll {
    /// An epoll instance that returns up to `capacity` (at least 16) events per wait.
    pub fn new(capacity: usize) -> io::Result<Epoll> {
        // SAFETY: plain syscall.
        let fd = cvt(unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) })?;
        Ok(Epoll { fd, events: vec![libc::epoll_event { events: 0, u64: 0 }; capacity.max(16)] })
    }

    /// Watch `fd` for `events` (`EPOLLIN`, ...); waits report it with `token`.
    pub fn add(&self, fd: RawFd, events: u32, token: u64) -> io::Result<()> {
        let mut ev = libc::epoll_event { events, u64: token };
        // SAFETY: valid epoll fd and event pointer.
        cvt(unsafe { libc::epoll_ctl(self.fd, libc::EPOLL_CTL_ADD, fd, &mut ev) }).map(|_| ())
    }

    /// Wait; returns the ready (events, token) pairs.
    pub fn wait(&mut self, timeout_ms: i32) -> io::Result<Vec<(u32, u64)>> {
        // SAFETY: the buffer has events.len() entries.
        let n = unsafe {
            libc::epoll_wait(self.fd, self.events.as_mut_ptr(), self.events.len() as libc::c_int, timeout_ms)
        };
        if n < 0 {
            let e = io::Error::last_os_error();
            if e.raw_os_error() == Some(libc::EINTR) {
                return Ok(Vec::new());
            }
            return Err(e);
        }
        Ok(self.events[..n as usize].iter().map(|e| (e.events, e.u64)).collect())
    }
}

impl Drop for Epoll {
    fn drop(&mut self) {
        close(self.fd);
    }
}

/// Encode a uwsgi request packet: 4-byte header (modifier1, u16 LE datasize,
/// modifier2) then `u16 LE len | key | u16 LE len | value` per var.
pub fn encode_packet(vars: &[(&str, String)]) -> Vec<u8> {
    let mut block = Vec::with_capacity(512);
    for (k, v) in vars {
        block.extend_from_slice(&(k.len() as u16).to_le_bytes());
        block.extend_from_slice(k.as_bytes());
        block.extend_from_slice(&(v.len() as u16).to_le_bytes());
        block.extend_from_slice(v.as_bytes());
    }
    assert!(block.len() <= 65535, "vars block over 64 KiB");
    let mut pkt = Vec::with_capacity(block.len() + 4);
    pkt.push(0);
    pkt.extend_from_slice(&(block.len() as u16).to_le_bytes());
    pkt.push(0);
    pkt.extend_from_slice(&block);
    pkt
}

/// Find a var's value in a vars block (no header).
pub fn find_var<'a>(block: &'a [u8], key: &[u8]) -> Option<&'a [u8]> {
    let mut i = 0;
    while i + 2 <= block.len() {
        let kl = u16::from_le_bytes([block[i], block[i + 1]]) as usize;
        i += 2;
        if i + kl + 2 > block.len() {
            return None;
        }
        let k = &block[i..i + kl];
        i += kl;
        let vl = u16::from_le_bytes([block[i], block[i + 1]]) as usize;
        i += 2;
        if i + vl > block.len() {
            return None;
        }
        let v = &block[i..i + vl];
        i += vl;
        if k == key {
            return Some(v);
        }
    }
    None
}

/// Leading ASCII digits as a number (uWSGI's reading of CONTENT_LENGTH).
pub fn leading_number(v: &[u8]) -> u64 {
    let mut n: u64 = 0;
    for &b in v {
        if !b.is_ascii_digit() {
            break;
        }
        n = n.saturating_mul(10).saturating_add((b - b'0') as u64);
    }
    n
}

/// A minimal `--flag value` / `--flag=value` / `--switch` reader.
pub struct Args {
    items: Vec<(String, Option<String>)>,
}

impl Args {
    /// `switches` are flags that take no value.
    pub fn parse(switches: &[&str]) -> Result<Args, String> {
        let mut items = Vec::new();
        let mut it = std::env::args().skip(1);
        while let Some(a) = it.next() {
            if !a.starts_with("--") {
                return Err(format!("unexpected argument {a:?}"));
            }
            if let Some((k, v)) = a.split_once('=') {
                items.push((k.to_string(), Some(v.to_string())));
            } else if switches.contains(&a.as_str()) {
                items.push((a, None));
            } else {
                let v = it.next().ok_or_else(|| format!("{a} needs a value"))?;
                items.push((a, Some(v)));
            }
        }
        Ok(Args { items })
    }

    /// Whether `--name` was given at all (with or without a value).
    pub fn has(&self, name: &str) -> bool {
        self.items.iter().any(|(k, _)| k == name)
    }

    /// The value of the last `--name` given, if any.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.items.iter().rev().find(|(k, _)| k == name).and_then(|(_, v)| v.as_deref())
    }

    /// The last `--name`'s value parsed as `T`, `default` when absent; an unparsable value is
    /// an error naming the flag.
    pub fn get_parsed<T: std::str::FromStr>(&self, name: &str, default: T) -> Result<T, String> {
        match self.get(name) {
            None => Ok(default),
            Some(v) => v.parse().map_err(|_| format!("bad value for {name}: {v:?}")),
        }
    }

    /// An error naming the first flag that is not in `known`.
    pub fn check_known(&self, known: &[&str]) -> Result<(), String> {
        for (k, _) in &self.items {
            if !known.contains(&k.as_str()) {
                return Err(format!("unknown option {k}"));
            }
        }
        Ok(())
    }
}

/// Ignore SIGPIPE (we also use MSG_NOSIGNAL; this covers write(2) paths).
pub fn ignore_sigpipe() {
    // SAFETY: setting a signal disposition to SIG_IGN is always sound.
    unsafe { libc::signal(libc::SIGPIPE, libc::SIG_IGN) };
}

/// `s` as a C string; panics on an interior NUL.
pub fn cstring(s: &str) -> CString {
    CString::new(s).expect("no NUL in string")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn packet_roundtrip() {
        let p = encode_packet(&[("A", "1".into()), ("CONTENT_LENGTH", "42abc".into()), ("E", String::new())]);
        assert_eq!(p[0], 0);
        let size = u16::from_le_bytes([p[1], p[2]]) as usize;
        assert_eq!(size + 4, p.len());
        let block = &p[4..];
        assert_eq!(find_var(block, b"A"), Some(&b"1"[..]));
        assert_eq!(find_var(block, b"E"), Some(&b""[..]));
        assert_eq!(leading_number(find_var(block, b"CONTENT_LENGTH").unwrap()), 42);
        assert_eq!(find_var(block, b"Z"), None);
    }

    #[test]
    fn addr_spelling() {
        assert!(matches!(Addr::parse("127.0.0.1:3031").unwrap(), Addr::Tcp(_)));
        assert!(matches!(Addr::parse(":3031").unwrap(), Addr::Tcp(_)));
        assert!(matches!(Addr::parse("/tmp/x.sock").unwrap(), Addr::Unix(_)));
        assert!(matches!(Addr::parse("unix:/tmp/x.sock").unwrap(), Addr::Unix(_)));
    }
}
