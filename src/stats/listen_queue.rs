//! The accept queue of a listening unix socket, from the kernel (`sock_diag(7)`, as `ss -xl` reads
//! its Recv-Q): uWSGI reports 0 for unix sockets (its issue #2709); rwsgi reports the real depth.
//! TCP listeners are measured by `Listener::queue_len` (`TCP_INFO`).
//!
//! One `NETLINK_SOCK_DIAG` request for the socket's inode with `UDIAG_SHOW_RQLEN`; the answer's
//! `UNIX_DIAG_RQLEN` attribute holds the queued connections and the backlog. Built and parsed as
//! plain bytes: no unsafe, no netlink crate.

use socket2::{Domain, Protocol, Socket, Type};
use std::os::fd::RawFd;
use std::time::Duration;

const NETLINK_SOCK_DIAG: i32 = 4;
const SOCK_DIAG_BY_FAMILY: u16 = 20;
const NLM_F_REQUEST: u16 = 1;
const NLMSG_ERROR: u16 = 2;
const AF_UNIX: u8 = 1;
const TCP_LISTEN: u32 = 10;
const UDIAG_SHOW_RQLEN: u32 = 0x10;
const UNIX_DIAG_RQLEN: u16 = 4;

/// The inode of the socket behind `fd` (`/proc/self/fd/N` reads `socket:[INODE]`).
fn inode(fd: RawFd) -> Option<u32> {
    let link = std::fs::read_link(format!("/proc/self/fd/{fd}")).ok()?;
    let text = link.to_str()?;
    text.strip_prefix("socket:[")?
        .strip_suffix(']')?
        .parse()
        .ok()
}

/// `(queued connections, backlog)` of the listening unix socket `fd`, or `None` when the kernel
/// cannot say (no `unix_diag` support).
pub fn unix_queue(fd: RawFd) -> Option<(u32, u32)> {
    let ino = inode(fd)?;
    let sock = Socket::new(
        Domain::from(libc::AF_NETLINK),
        Type::DGRAM,
        Some(Protocol::from(NETLINK_SOCK_DIAG)),
    )
    .ok()?;
    sock.set_read_timeout(Some(Duration::from_millis(100)))
        .ok()?;
    let mut req = Vec::with_capacity(40);
    req.extend_from_slice(&40u32.to_ne_bytes()); // nlmsg_len
    req.extend_from_slice(&SOCK_DIAG_BY_FAMILY.to_ne_bytes());
    req.extend_from_slice(&NLM_F_REQUEST.to_ne_bytes());
    req.extend_from_slice(&1u32.to_ne_bytes()); // seq
    req.extend_from_slice(&0u32.to_ne_bytes()); // pid
    req.extend_from_slice(&[AF_UNIX, 0, 0, 0]); // family, protocol, pad
    req.extend_from_slice(&(1u32 << TCP_LISTEN).to_ne_bytes()); // states
    req.extend_from_slice(&ino.to_ne_bytes());
    req.extend_from_slice(&UDIAG_SHOW_RQLEN.to_ne_bytes());
    req.extend_from_slice(&[0xff; 8]); // no cookie
                                       // An unconnected netlink socket sends to the kernel.
    sock.send(&req).ok()?;
    let mut buf = [0u8; 1024];
    let n = std::io::Read::read(&mut &sock, &mut buf).ok()?;
    parse(&buf[..n], ino)
}

fn u16_at(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_ne_bytes(b.get(at..at + 2)?.try_into().ok()?))
}

fn u32_at(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_ne_bytes(b.get(at..at + 4)?.try_into().ok()?))
}

/// Find `UNIX_DIAG_RQLEN` in the kernel's answer for inode `ino`.
fn parse(b: &[u8], ino: u32) -> Option<(u32, u32)> {
    let len = u32_at(b, 0)? as usize;
    if u16_at(b, 4)? == NLMSG_ERROR || len > b.len() || len < 32 {
        return None;
    }
    // nlmsghdr (16) + unix_diag_msg (16: family, type, state, pad, ino, cookie[2]).
    if u32_at(b, 20)? != ino {
        return None;
    }
    let mut at = 32;
    while at + 4 <= len {
        let rta_len = usize::from(u16_at(b, at)?);
        if rta_len < 4 {
            return None;
        }
        if u16_at(b, at + 2)? == UNIX_DIAG_RQLEN {
            return Some((u32_at(b, at + 4)?, u32_at(b, at + 8)?));
        }
        at += rta_len.next_multiple_of(4);
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::AsRawFd;
    use std::os::unix::net::{UnixListener, UnixStream};

    #[test]
    fn counts_connections_waiting_to_be_accepted() {
        let dir = std::env::temp_dir().join(format!("rwsgi-lq-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("s.sock");
        let _ = std::fs::remove_file(&path);
        let listener = UnixListener::bind(&path).unwrap();
        let Some((before, backlog)) = unix_queue(listener.as_raw_fd()) else {
            // A kernel without unix_diag: nothing to check here (the stats read 0).
            eprintln!("sock_diag for unix sockets is not available");
            return;
        };
        assert_eq!(before, 0);
        assert!(backlog > 0);
        let _clients: Vec<UnixStream> = (0..3)
            .map(|_| UnixStream::connect(&path).unwrap())
            .collect();
        assert_eq!(unix_queue(listener.as_raw_fd()).map(|q| q.0), Some(3));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
