//! `--log-master`: every process's output (the master's, the workers', the app's prints) goes
//! through one pipe to a small log process, the only writer of the log. It writes whole lines
//! (each `write` of up to `PIPE_BUF` bytes into a pipe arrives whole, and a request line or a log
//! record is one `write`), rotates the file at `--log-maxsize`, and reopens it on `SIGHUP` (sent
//! at a reload with `--log-reopen`, and by the master FIFO's `l`).
//!
//! The log process is forked before Python starts, while the process is single-threaded, and
//! outlives a reload: the re-executed master finds the pipe again through `RWSGI_LOG_PIPE`. It
//! exits when every process holding the pipe's write end has gone, after writing what they wrote.

use crate::sys;
use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::os::fd::{AsFd, AsRawFd, OwnedFd, RawFd};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::SystemTime;

/// The pipe's write end and the log process, for the next image after a reload: `FD:PID`.
const PIPE_ENV: &str = "RWSGI_LOG_PIPE";

/// What the log process writes to, and how it rotates.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LogMaster {
    /// The log file (`--logto`); `None`: the stderr rwsgi started with.
    pub file: Option<PathBuf>,
    /// `--log-maxsize`: rotate the file when it reaches this many bytes.
    pub maxsize: Option<u64>,
    /// `--log-backupname`: the rotated file's name (else `FILE.<unix time>`, never overwriting).
    pub backupname: Option<PathBuf>,
    /// `--log-reopen`: reopen the file at a reload.
    pub reopen: bool,
}

/// Route this process's stdout and stderr (and so its children's) through the log process,
/// starting it unless a previous image of this master already did.
pub fn start(options: &LogMaster) -> std::io::Result<()> {
    if let Some((fd, pid)) = std::env::var(PIPE_ENV).ok().as_deref().and_then(parse_env) {
        // A reload: the pipe is still open here (not close-on-exec), the log process alive.
        for target in [1, 2] {
            sys::fd::redirect(&Borrowed(fd), target)?;
        }
        if options.reopen {
            let _ = sys::process::kill(pid, libc::SIGHUP);
        }
        return Ok(());
    }
    let (read, write) = sys::fd::pipe()?;
    match sys::process::fork_alone()? {
        sys::process::Forked::Child => {
            drop(write);
            super::procname::name(super::procname::Role::Log);
            let code = match run(read, options) {
                Ok(()) => 0,
                Err(_) => 1,
            };
            sys::process::exit_now(code);
        }
        sys::process::Forked::Parent(pid) => {
            drop(read);
            for target in [1, 2] {
                sys::fd::redirect(&write, target)?;
            }
            sys::fd::keep_across_exec(&write)?;
            let fd = write.as_raw_fd();
            std::mem::forget(write);
            std::env::set_var(PIPE_ENV, format!("{fd}:{pid}"));
            Ok(())
        }
    }
}

/// The master FIFO's `l`: have the log process reopen the log file (after logrotate moved it).
pub fn reopen() {
    match std::env::var(PIPE_ENV).ok().as_deref().and_then(parse_env) {
        Some((_, pid)) => {
            tracing::info!("[master-fifo] reopening the log file");
            if let Err(e) = sys::process::kill(pid, libc::SIGHUP) {
                tracing::warn!("cannot signal the log process {pid}: {e}");
            }
        }
        None => tracing::warn!(
            "[master-fifo] l: reopening the log needs --log-master (each process holds the file)"
        ),
    }
}

fn parse_env(value: &str) -> Option<(RawFd, libc::pid_t)> {
    let (fd, pid) = value.split_once(':')?;
    Some((fd.parse().ok()?, pid.parse().ok()?))
}

/// A descriptor this process keeps open for its whole life.
struct Borrowed(RawFd);

impl AsRawFd for Borrowed {
    fn as_raw_fd(&self) -> RawFd {
        self.0
    }
}

/// The log process: read, write whole lines, rotate, reopen; until every writer is gone.
fn run(read: OwnedFd, options: &LogMaster) -> std::io::Result<()> {
    let reopen = Arc::new(AtomicBool::new(false));
    let _ = signal_hook::flag::register(libc::SIGHUP, Arc::clone(&reopen));
    // Ctrl-C and the service manager's TERM reach the whole group: the log process stays to
    // write the others' last lines, and leaves at end of input.
    let ignored = Arc::new(AtomicBool::new(false));
    for signal in [libc::SIGINT, libc::SIGTERM, libc::SIGQUIT] {
        let _ = signal_hook::flag::register(signal, Arc::clone(&ignored));
    }
    let mut out = Output::open(options)?;
    let mut pipe = File::from(read);
    let mut buf = vec![0u8; 64 * 1024];
    let mut pending: Vec<u8> = Vec::new();
    loop {
        let n = match pipe.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => 0,
            Err(e) => return Err(e),
        };
        if reopen.swap(false, Ordering::Relaxed) {
            out.reopen()?;
        }
        pending.extend_from_slice(&buf[..n]);
        if let Some(end) = pending.iter().rposition(|&b| b == b'\n') {
            out.write(&pending[..=end])?;
            pending.drain(..=end);
        }
    }
    if !pending.is_empty() {
        pending.push(b'\n');
        out.write(&pending)?;
    }
    Ok(())
}

/// The log file (or the original stderr), its size, and the rotation rule.
struct Output {
    file: File,
    size: u64,
    options: LogMaster,
}

impl Output {
    fn open(options: &LogMaster) -> std::io::Result<Output> {
        let file = match &options.file {
            Some(path) => append(path)?,
            None => File::from(std::io::stderr().as_fd().try_clone_to_owned()?),
        };
        let size = file.metadata().map(|m| m.len()).unwrap_or(0);
        Ok(Output {
            file,
            size,
            options: options.clone(),
        })
    }

    fn reopen(&mut self) -> std::io::Result<()> {
        if let Some(path) = &self.options.file {
            self.file = append(path)?;
            self.size = self.file.metadata().map(|m| m.len()).unwrap_or(0);
        }
        Ok(())
    }

    /// Write whole lines; rotate first when they would take the file past `--log-maxsize`.
    fn write(&mut self, lines: &[u8]) -> std::io::Result<()> {
        if let (Some(max), Some(path)) = (self.options.maxsize, &self.options.file) {
            if self.size > 0 && self.size + lines.len() as u64 > max {
                let backup = match &self.options.backupname {
                    Some(name) => name.clone(),
                    None => fresh_backup(path),
                };
                std::fs::rename(path, &backup)?;
                self.file = append(path)?;
                self.size = 0;
            }
        }
        self.file.write_all(lines)?;
        self.size += lines.len() as u64;
        Ok(())
    }
}

fn append(path: &Path) -> std::io::Result<File> {
    OpenOptions::new().append(true).create(true).open(path)
}

/// `FILE.<unix time>`, with `.1`, `.2`, ... when rotations come faster than one a second.
fn fresh_backup(path: &Path) -> PathBuf {
    let secs = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let base = format!("{}.{secs}", path.display());
    let mut candidate = PathBuf::from(&base);
    let mut n = 0;
    while candidate.exists() {
        n += 1;
        candidate = PathBuf::from(format!("{base}.{n}"));
    }
    candidate
}
