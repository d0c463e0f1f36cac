//! The master FIFO (`--master-fifo PATH`): a named pipe the master reads one-byte commands from,
//! with uWSGI's letters (`docs/MasterFIFO.rst`), so `echo c > /run/app.fifo` works as it does there.
//!
//! The master creates the FIFO at start (replacing a stale one, as uWSGI does) and opens it
//! read-write, so it never sees end-of-file when a writer goes away and the poll never spins.
//! Unknown letters are logged and ignored; several letters in one write run in order.

use std::fs::{File, OpenOptions};
use std::io::{self, Read};
use std::os::fd::{AsRawFd, RawFd};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

/// What a FIFO letter asks the master to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Command {
    /// `r`: graceful reload (as SIGHUP).
    Reload,
    /// `R`: brutal reload: workers are stopped at once, then the master reloads.
    BrutalReload,
    /// `c`: chain reload: replace the workers one at a time, each once its successor accepts.
    ChainReload,
    /// `q`: graceful stop: in-flight requests finish (within `--reload-mercy`).
    Stop,
    /// `Q`: fast stop.
    FastStop,
    /// `w`: gracefully reload the workers only (the master stays as it is).
    ReloadWorkers,
    /// `W`: brutally reload the workers only.
    BrutalReloadWorkers,
    /// `s`: write the stats to the log.
    Stats,
    /// `+`: one more worker (adaptive workers).
    MoreWorkers,
    /// `-`: one worker fewer (adaptive workers).
    FewerWorkers,
    /// `l`: reopen the log file (with `--log-master`).
    ReopenLogs,
}

impl Command {
    /// The command a FIFO byte stands for, if any.
    pub fn from_byte(b: u8) -> Option<Command> {
        Some(match b {
            b'r' => Command::Reload,
            b'R' => Command::BrutalReload,
            b'c' => Command::ChainReload,
            b'q' => Command::Stop,
            b'Q' => Command::FastStop,
            b'w' => Command::ReloadWorkers,
            b'W' => Command::BrutalReloadWorkers,
            b's' => Command::Stats,
            b'+' => Command::MoreWorkers,
            b'-' => Command::FewerWorkers,
            b'l' => Command::ReopenLogs,
            _ => return None,
        })
    }
}

/// The open FIFO.
pub struct Fifo {
    path: PathBuf,
    file: File,
}

impl Fifo {
    /// Create (or re-create) the FIFO at `path` and open it for reading without blocking.
    pub fn create(path: &Path) -> io::Result<Fifo> {
        match std::fs::remove_file(path) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
        mkfifo(path, 0o600)?;
        // Read-write: the master is its own writer, so the FIFO never reads as closed.
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .custom_flags(libc::O_NONBLOCK | libc::O_CLOEXEC)
            .open(path)?;
        Ok(Fifo {
            path: path.to_path_buf(),
            file,
        })
    }

    /// The descriptor to poll.
    pub fn fd(&self) -> RawFd {
        self.file.as_raw_fd()
    }

    /// The FIFO's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Every command written since the last call, in order; unknown bytes are logged and skipped.
    pub fn commands(&mut self) -> Vec<Command> {
        let mut out = Vec::new();
        let mut buf = [0u8; 256];
        loop {
            match self.file.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => out.extend(buf[..n].iter().filter_map(|&b| parse_logged(b))),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(_) => break,
            }
        }
        out
    }
}

fn parse_logged(b: u8) -> Option<Command> {
    let command = Command::from_byte(b);
    if command.is_none() && !b.is_ascii_whitespace() {
        tracing::warn!(
            "[master-fifo] unknown command {:?}: ignored",
            char::from(b).escape_default().to_string()
        );
    }
    command
}

/// `mkfifo(3)`: std has no way to make a named pipe.
fn mkfifo(path: &Path, mode: libc::mode_t) -> io::Result<()> {
    crate::sys::fd::mkfifo(path, mode)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn letters_are_uwsgi_s() {
        assert_eq!(Command::from_byte(b'c'), Some(Command::ChainReload));
        assert_eq!(Command::from_byte(b'Q'), Some(Command::FastStop));
        assert_eq!(Command::from_byte(b'x'), None);
    }

    #[test]
    fn commands_written_to_the_fifo_are_read_in_order() {
        let dir = std::env::temp_dir().join(format!("rwsgi-fifo-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("fifo");
        std::fs::write(&path, b"stale file").unwrap();
        let mut fifo = Fifo::create(&path).unwrap();
        assert!(fifo.commands().is_empty());
        let mut writer = OpenOptions::new().write(true).open(&path).unwrap();
        writer.write_all(b"s\nzc").unwrap();
        drop(writer);
        assert_eq!(
            fifo.commands(),
            [Command::Stats, Command::ChainReload],
            "newline and the unknown z are skipped"
        );
        // The writer went away: reading neither blocks nor reports anything.
        assert!(fifo.commands().is_empty());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
