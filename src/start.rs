//! Start-up shared by both entries: the `rwsgi` binary (`src/main.rs`, which embeds libpython and
//! starts the interpreter itself) and the pip-installed extension module (`python::extension`, which
//! adopts the interpreter it was imported into). From [`main`] on, both run the same code.

use crate::config::{self, Config};
use crate::master;
use crate::scoreboard::Scoreboard;
use crate::server::{Listener, Stop};
use crate::sys::process;
use crate::{log, privileges, python, worker};
use std::ffi::OsString;
use std::sync::Arc;

/// Parse `argv`, set up logging, and serve until shutdown; returns the process's exit code.
/// `reexec` is the command (program first) a reload replaces the master with.
pub fn main(argv: Vec<OsString>, reexec: Vec<OsString>) -> u8 {
    let (config, warnings) = match config::load(argv) {
        Ok(loaded) => loaded,
        Err(e) => e.exit(),
    };
    if let Some(path) = &config.logto {
        if let Err(e) = privileges::log_to(path) {
            eprintln!("rwsgi: {e}");
            return 1;
        }
    }
    log::init();
    for w in warnings {
        tracing::warn!("{w}");
    }
    match run(&config, reexec) {
        Ok(()) => 0,
        Err(e) => {
            tracing::error!("{e}");
            1
        }
    }
}

/// What listener `i` speaks, for its start-up line: `uwsgi` (to nginx's `uwsgi_pass`), or `http`
/// for an `--http-socket` (they follow the `--socket`s). uWSGI says "uwsgi socket" for both; saying
/// the protocol tells the reader which one to point nginx or a browser at.
fn speaks(config: &Config, i: usize) -> &'static str {
    if !config.http.sockets.is_empty() && i >= config.http.first {
        "http"
    } else {
        "uwsgi"
    }
}

/// Bind every `--socket`, or adopt the ones systemd (socket activation) or a reloading master
/// passed on; with no `--socket`, serve every passed socket.
fn listeners(config: &Config) -> Result<Vec<Listener>, String> {
    let (mut adopted, alone) = master::sockets::adopt(&config.sockets, &|i| speaks(config, i))?;
    if config.sockets.is_empty() {
        if alone.is_empty() {
            return Err(
                "no --socket given and no socket passed (LISTEN_FDS): nothing to serve on".into(),
            );
        }
        return Ok(alone);
    }
    let backlog = crate::server::listener::effective_backlog(config.listen);
    config
        .sockets
        .iter()
        .enumerate()
        .map(|(i, spec)| {
            if let Some(l) = adopted[i].take() {
                return Ok(l);
            }
            let l = Listener::bind(
                spec,
                backlog,
                config.chmod_socket,
                config.socket_timeout.as_secs(),
            )
            .map_err(|e| e.to_string())?;
            tracing::info!(
                "{} socket {i} bound to {spec} fd {} (backlog {backlog})",
                speaks(config, i),
                l.fd()
            );
            if let (Some(owner), config::SocketSpec::Unix(path)) = (&config.chown_socket, spec) {
                privileges::chown(path, owner)?;
            }
            Ok(l)
        })
        .collect()
}

/// Serve `config` until shutdown: bind, drop privileges, then the master or the single process.
pub fn run(config: &Config, reexec: Vec<OsString>) -> Result<(), String> {
    python::interpreter::preflight(config)?;
    // Each connection is a descriptor: the open-file limit to its hard maximum, or --max-fd.
    crate::server::fd_limit::apply_at_start(config.max_fd);
    if let Some(mask) = config.umask {
        process::set_umask(mask);
    }
    let listeners = listeners(config)?;
    if let Some(pidfile) = &config.pidfile {
        let pid = format!("{}\n", std::process::id());
        if let Err(e) = std::fs::write(pidfile, &pid) {
            // A reload re-executes the master under the same pid, maybe without the rights that
            // wrote the file (--uid): what the file holds is still right.
            if std::fs::read_to_string(pidfile).ok().as_deref() != Some(pid.as_str()) {
                return Err(format!("--pidfile {}: {e}", pidfile.display()));
            }
        }
    }
    // Bound and written as root; from here on (Python, the app, every worker) as the given user.
    privileges::drop_to(config.uid.as_deref(), config.gid.as_deref())?;
    if let Some(path) = &config.logto2 {
        privileges::log_to(path)?;
    }
    let result = if config.master {
        master::run(config, listeners, reexec)
    } else {
        single_process(config, listeners)
    };
    if let (true, Some(pidfile)) = (config.vacuum, &config.pidfile) {
        match std::fs::remove_file(pidfile) {
            Ok(()) => tracing::info!("VACUUM: pidfile removed"),
            Err(e) => tracing::warn!("VACUUM: cannot remove pidfile {}: {e}", pidfile.display()),
        }
    }
    result
}

/// No master: this process imports the app and serves.
fn single_process(config: &Config, listeners: Vec<Listener>) -> Result<(), String> {
    tracing::warn!("*** WARNING: you are running rwsgi without its master process manager ***");
    let board = Arc::new(
        Scoreboard::new(1, config.threads)
            .map_err(|e| format!("cannot map the scoreboard: {e}"))?,
    );
    board.spawned(1, std::process::id() as i32);
    python::interpreter::initialize(config)?;
    python::uwsgi_module::install(config, &board)?;
    let apps = python::load_app(config)?;
    let app = python::App::new(config, apps, board)?;
    tracing::info!(
        "rwsgi {} serving with {} thread(s) (pid: {})",
        env!("CARGO_PKG_VERSION"),
        config.threads,
        std::process::id()
    );
    let (stop, listeners) = worker::run(config, listeners, app)?;
    if config.vacuum {
        for l in &listeners {
            l.vacuum();
        }
    }
    drop(listeners);
    if stop != Stop::Fast {
        python::interpreter::finalize();
    }
    tracing::info!("goodbye to rwsgi.");
    Ok(())
}
