//! The `rwsgi` command: flags in, a served app out; errors become an exit code.

use rwsgi::config::{self, Config};
use rwsgi::server::{Listener, Stop};
use rwsgi::{log, python, worker};
use std::process::ExitCode;

fn main() -> ExitCode {
    let (config, warnings) = match config::load(std::env::args_os().collect()) {
        Ok(loaded) => loaded,
        Err(e) => e.exit(),
    };
    log::init();
    for w in warnings {
        tracing::warn!("{w}");
    }
    match run(&config) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e}");
            ExitCode::FAILURE
        }
    }
}

/// Raise the open-file limit to its hard maximum: each connection is a descriptor.
fn raise_nofile_limit() {
    // SAFETY: getrlimit/setrlimit with a valid struct.
    unsafe {
        let mut lim = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) == 0 && lim.rlim_cur < lim.rlim_max {
            lim.rlim_cur = lim.rlim_max;
            libc::setrlimit(libc::RLIMIT_NOFILE, &lim);
        }
    }
}

fn bind_all(config: &Config) -> Result<Vec<Listener>, String> {
    let backlog = rwsgi::server::listener::effective_backlog(config.listen);
    config
        .sockets
        .iter()
        .enumerate()
        .map(|(i, spec)| {
            let l = Listener::bind(
                spec,
                backlog,
                config.chmod_socket,
                config.socket_timeout.as_secs(),
            )
            .map_err(|e| e.to_string())?;
            tracing::info!(
                "uwsgi socket {i} bound to {spec} fd {} (backlog {backlog})",
                l.fd()
            );
            Ok(l)
        })
        .collect()
}

fn run(config: &Config) -> Result<(), String> {
    raise_nofile_limit();
    if config.master {
        tracing::warn!("--master/--processes are not implemented yet: running one worker process");
    }
    let listeners = bind_all(config)?;
    python::interpreter::initialize(config)?;
    let callable = python::load_app(config)?;
    let app = python::App::new(config, callable)?;
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
    tracing::info!("goodbye to rwsgi");
    Ok(())
}
