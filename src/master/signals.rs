//! The master's signals, delivered through pipes its loop polls: the handlers only write a byte.

use std::io::Read;
use std::os::fd::{AsRawFd, RawFd};
use std::os::unix::net::UnixStream;

/// What a signal asks the master to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Event {
    /// SIGTERM: stop gracefully.
    Term,
    /// SIGINT, SIGQUIT: stop now.
    Fast,
    /// SIGHUP: reload gracefully.
    Reload,
    /// SIGCHLD: a worker exited.
    Child,
}

/// Installed handlers and the read ends of their pipes.
pub struct Signals {
    pipes: Vec<(UnixStream, Event)>,
    ids: Vec<signal_hook::SigId>,
}

impl Signals {
    /// Install the master's handlers.
    pub fn install() -> std::io::Result<Signals> {
        let mut signals = Signals {
            pipes: Vec::new(),
            ids: Vec::new(),
        };
        signals.add(&[libc::SIGTERM], Event::Term)?;
        signals.add(&[libc::SIGINT, libc::SIGQUIT], Event::Fast)?;
        signals.add(&[libc::SIGHUP], Event::Reload)?;
        signals.add(&[libc::SIGCHLD], Event::Child)?;
        Ok(signals)
    }

    fn add(&mut self, which: &[libc::c_int], event: Event) -> std::io::Result<()> {
        let (read, write) = UnixStream::pair()?;
        read.set_nonblocking(true)?;
        write.set_nonblocking(true)?;
        for &signal in which {
            self.ids.push(signal_hook::low_level::pipe::register(
                signal,
                write.try_clone()?,
            )?);
        }
        self.pipes.push((read, event));
        Ok(())
    }

    /// The descriptors to poll, in order.
    pub fn fds(&self) -> Vec<RawFd> {
        self.pipes.iter().map(|(p, _)| p.as_raw_fd()).collect()
    }

    /// Empty pipe `index` and say which event it carries.
    pub fn take(&mut self, index: usize) -> Event {
        let mut buf = [0u8; 64];
        while matches!(self.pipes[index].0.read(&mut buf), Ok(n) if n > 0) {}
        self.pipes[index].1
    }

    /// Remove the handlers (in a freshly forked worker, which installs its own).
    pub fn uninstall(self) {
        for id in self.ids {
            signal_hook::low_level::unregister(id);
        }
    }
}
