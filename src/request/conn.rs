//! One accepted connection as the worker thread uses it: a non-blocking socket whose reads and
//! writes wait with `poll(2)` for at most `--socket-timeout` when the kernel says "would block".
//!
//! Staying non-blocking costs nothing on the fast path (the write usually completes at once) and
//! saves the three syscalls that switching to blocking mode with timeouts would take per request.

use crate::sys::fd::{Readiness, Socket};
use std::io::{self, IoSlice};
use std::mem::MaybeUninit;
use std::os::fd::RawFd;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// An accepted uwsgi connection (TCP or unix: both are plain stream sockets here).
#[derive(Debug)]
pub struct Conn {
    socket: Socket,
    /// Set by whoever starts the response: the Python thread, or the harakiri answer.
    claimed: AtomicBool,
    /// The client sent `Expect: 100-continue` and waits for the interim answer before sending the
    /// body; cleared once it is sent (see [`super::Body`]).
    continue_owed: AtomicBool,
    /// The last read filled the buffer it was given, so more may wait in the kernel (a waiter on
    /// edge-triggered readiness must read before it waits: no new edge comes for those bytes).
    maybe_more: AtomicBool,
    /// Added to the worker threads' epoll set (edge-triggered, once per connection).
    watched: AtomicBool,
}

impl crate::protocol::Recv for Conn {
    fn recv_append(&self, buf: &mut Vec<u8>, max: usize) -> io::Result<usize> {
        loop {
            match self.socket.recv_append(buf, max) {
                Err(e) if interrupted(&e) => {}
                other => return self.noted(other, max),
            }
        }
    }
}

/// Why a wait for the peer ended without progress.
fn timed_out() -> io::Error {
    io::Error::new(io::ErrorKind::TimedOut, "timed out waiting for the peer")
}

fn would_block(e: &io::Error) -> bool {
    e.kind() == io::ErrorKind::WouldBlock
}

fn interrupted(e: &io::Error) -> bool {
    e.kind() == io::ErrorKind::Interrupted
}

impl Conn {
    /// Wrap an accepted, non-blocking socket.
    pub fn new(socket: Socket) -> Conn {
        Conn {
            socket,
            claimed: AtomicBool::new(false),
            continue_owed: AtomicBool::new(false),
            maybe_more: AtomicBool::new(false),
            watched: AtomicBool::new(false),
        }
    }

    /// Remember whether a read of at most `asked` bytes may have left more in the kernel.
    fn noted(&self, read: io::Result<usize>, asked: usize) -> io::Result<usize> {
        let full = matches!(read, Ok(n) if n > 0 && n == asked);
        self.maybe_more.store(full, Ordering::Relaxed);
        read
    }

    /// Whether the last read filled its buffer (bytes may still wait in the kernel).
    pub fn maybe_more(&self) -> bool {
        self.maybe_more.load(Ordering::Relaxed)
    }

    /// Whether the worker threads' epoll set already watches this connection.
    pub fn watched(&self) -> bool {
        self.watched.load(Ordering::Relaxed)
    }

    /// The worker threads' epoll set watches this connection from now on.
    pub fn set_watched(&self) {
        self.watched.store(true, Ordering::Relaxed);
    }

    /// Take the right to write the response head; false if someone already has (a harakiri answer
    /// raced the app's own response).
    pub fn claim(&self) -> bool {
        !self.claimed.swap(true, Ordering::AcqRel)
    }

    /// Whether the response head has been claimed (it is going out, or went).
    pub fn is_claimed(&self) -> bool {
        self.claimed.load(Ordering::Acquire)
    }

    /// Say whether the current request's client waits for `100 Continue` before its body (set by
    /// the server for each request).
    pub fn owe_continue(&self, owed: bool) {
        self.continue_owed.store(owed, Ordering::Release);
    }

    /// Whether the client still waits for `100 Continue`.
    pub fn continue_owed(&self) -> bool {
        self.continue_owed.load(Ordering::Acquire)
    }

    /// Give the right to write a head back: the next request on a kept-alive connection.
    pub fn unclaim(&self) {
        self.claimed.store(false, Ordering::Release);
    }

    /// The peer's address (`None` on a unix socket).
    pub fn peer_addr(&self) -> Option<std::net::SocketAddr> {
        self.socket.peer_addr()
    }

    /// The local address the peer connected to (`None` on a unix socket).
    pub fn local_addr(&self) -> Option<std::net::SocketAddr> {
        self.socket.local_addr()
    }

    /// The raw descriptor (for `fileno()` and the event loop's registration).
    pub fn fd(&self) -> RawFd {
        self.socket.fd()
    }

    /// Wait until the socket is readable, up to `deadline`.
    pub fn wait_readable(&self, deadline: Instant) -> io::Result<()> {
        self.wait(Readiness::Readable, deadline)
    }

    /// Wait until the socket is ready, up to `deadline`.
    fn wait(&self, readiness: Readiness, deadline: Instant) -> io::Result<()> {
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(timed_out());
            }
            match self.socket.wait(readiness, left) {
                Ok(true) => return Ok(()),
                Ok(false) => return Err(timed_out()),
                Err(e) if interrupted(&e) => {}
                Err(e) => return Err(e),
            }
        }
    }

    /// Receive into uninitialised memory, retrying `Interrupted`; the first `n` bytes of `buf` are
    /// initialised when it returns `Ok(n)`.
    pub fn recv_uninit(&self, buf: &mut [MaybeUninit<u8>]) -> io::Result<usize> {
        loop {
            match self.socket.recv_uninit(buf) {
                Err(e) if interrupted(&e) => {}
                other => return self.noted(other, buf.len()),
            }
        }
    }

    /// [`Conn::recv_uninit`] waiting up to `timeout` when nothing is there. `Ok(0)` is end of
    /// stream.
    pub fn recv_uninit_timeout(
        &self,
        buf: &mut [MaybeUninit<u8>],
        timeout: Duration,
    ) -> io::Result<usize> {
        let deadline = Instant::now() + timeout;
        loop {
            match self.recv_uninit(buf) {
                Err(e) if would_block(&e) => self.wait(Readiness::Readable, deadline)?,
                other => return other,
            }
        }
    }

    /// Read at most `buf.len()` bytes, waiting up to `timeout`. `Ok(0)` is end of stream.
    pub fn read_timeout(&self, buf: &mut [u8], timeout: Duration) -> io::Result<usize> {
        let deadline = Instant::now() + timeout;
        loop {
            match self.socket.recv(buf) {
                Ok(n) => return self.noted(Ok(n), buf.len()),
                Err(e) if would_block(&e) => self.wait(Readiness::Readable, deadline)?,
                Err(e) if interrupted(&e) => {}
                Err(e) => return Err(e),
            }
        }
    }

    /// Read without waiting: `Err(WouldBlock)` when nothing is there (the event loop's reads).
    pub fn read_now(&self, buf: &mut [u8]) -> io::Result<usize> {
        loop {
            match self.socket.recv(buf) {
                Err(e) if interrupted(&e) => {}
                other => return self.noted(other, buf.len()),
            }
        }
    }

    /// Write every byte of `bufs`, in order; each wait for buffer space is bounded by `timeout`.
    pub fn write_all_vectored(&self, bufs: &[&[u8]], timeout: Duration) -> io::Result<()> {
        let mut index = 0;
        let mut offset = 0;
        while index < bufs.len() {
            if offset == bufs[index].len() {
                index += 1;
                offset = 0;
                continue;
            }
            let mut slices = Vec::with_capacity(bufs.len() - index);
            slices.push(IoSlice::new(&bufs[index][offset..]));
            slices.extend(bufs[index + 1..].iter().map(|b| IoSlice::new(b)));
            match self.socket.send_vectored(&slices) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(mut n) => {
                    while n > 0 && index < bufs.len() {
                        let left = bufs[index].len() - offset;
                        if n >= left {
                            n -= left;
                            index += 1;
                            offset = 0;
                        } else {
                            offset += n;
                            n = 0;
                        }
                    }
                }
                Err(e) if would_block(&e) => {
                    self.wait(Readiness::Writable, Instant::now() + timeout)?
                }
                Err(e) if interrupted(&e) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    /// One `writev` without waiting: the bytes the kernel took, 0 when the buffer is full.
    pub fn write_vectored_now(&self, bufs: &[&[u8]]) -> io::Result<usize> {
        // A response is a head and a body: no allocation for the slice list in that case.
        let mut few = [IoSlice::new(&[]); 4];
        let many: Vec<IoSlice<'_>>;
        let slices = if bufs.len() <= few.len() {
            for (slot, buf) in few.iter_mut().zip(bufs) {
                *slot = IoSlice::new(buf);
            }
            &few[..bufs.len()]
        } else {
            many = bufs.iter().map(|b| IoSlice::new(b)).collect();
            &many[..]
        };
        loop {
            match self.socket.send_vectored(slices) {
                Err(e) if would_block(&e) => return Ok(0),
                Err(e) if interrupted(&e) => {}
                other => return other,
            }
        }
    }

    /// Write without waiting; what the kernel took (the event loop's error answers).
    pub fn write_now(&self, buf: &[u8]) -> io::Result<usize> {
        self.socket.send(buf)
    }

    /// [`Conn::write_now`] of bytes that more follow at once (`MSG_MORE`): a response head before
    /// its file, sent in the same packets.
    pub fn write_now_more(&self, buf: &[u8]) -> io::Result<usize> {
        self.socket.send_more(buf)
    }

    /// Wait until the socket takes more bytes, up to `deadline`.
    pub fn wait_writable(&self, deadline: Instant) -> io::Result<()> {
        self.wait(Readiness::Writable, deadline)
    }

    /// One `sendfile(2)` of up to `count` bytes of the file `fd` from `*offset` (which moves past
    /// what was sent) without waiting: `Err(WouldBlock)` when the socket takes nothing now, `Ok(0)`
    /// at the file's end.
    pub fn sendfile_now(&self, fd: RawFd, offset: &mut u64, count: usize) -> io::Result<usize> {
        loop {
            match self.socket.sendfile(fd, offset, count) {
                Err(e) if interrupted(&e) => {}
                other => return other,
            }
        }
    }

    /// Send `len` bytes of the file `fd` from `offset` with `sendfile(2)`; returns the bytes sent,
    /// fewer than `len` only when the file ended early.
    pub fn sendfile(
        &self,
        fd: RawFd,
        mut offset: u64,
        len: u64,
        timeout: Duration,
    ) -> io::Result<u64> {
        let mut sent = 0u64;
        while sent < len {
            let chunk = usize::try_from(len - sent)
                .unwrap_or(usize::MAX)
                .min(1 << 30);
            match self.socket.sendfile(fd, &mut offset, chunk) {
                Ok(0) => break,
                Ok(n) => sent += n as u64,
                Err(e) if would_block(&e) => {
                    self.wait(Readiness::Writable, Instant::now() + timeout)?
                }
                Err(e) if interrupted(&e) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(sent)
    }

    /// Read and discard up to `limit` bytes the app left unread, so closing does not reset a peer
    /// that is still sending (nginx turns that reset into a 502). Returns the bytes discarded.
    pub fn drain(&self, limit: u64, timeout: Duration) -> io::Result<u64> {
        let mut scratch = [0u8; 16 * 1024];
        let mut left = limit;
        while left > 0 {
            let want = usize::try_from(left)
                .unwrap_or(usize::MAX)
                .min(scratch.len());
            match self.read_timeout(&mut scratch[..want], timeout)? {
                0 => break,
                n => left -= n as u64,
            }
        }
        Ok(limit - left)
    }

    /// Send a FIN: the answer is complete, whatever the peer still sends.
    pub fn shutdown_write(&self) {
        let _ = self.socket.shutdown(std::net::Shutdown::Write);
    }

    /// Shut both directions: the peer gets its FIN now even if the descriptor outlives the request.
    pub fn shutdown_both(&self) {
        let _ = self.socket.shutdown(std::net::Shutdown::Both);
    }

    /// Close with a reset instead of a FIN, so the peer knows the response is incomplete rather
    /// than taking the bytes so far for the whole body.
    pub fn abort(self) {
        let _ = self.socket.set_linger_zero();
    }
}
