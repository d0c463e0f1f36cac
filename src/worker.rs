//! One worker process: the event loop on the calling thread and `--threads` Python threads behind
//! the job queue. Returns when a signal stops it, after in-flight requests finished (within
//! `--reload-mercy`) unless the stop was a fast one.

use crate::config::Config;
use crate::dispatch;
use crate::python::{self, App};
use crate::server::{EventLoop, Listener, Stop};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Serve on `listeners` until stopped; gives the listeners back (for vacuum or reload).
pub fn run(
    config: &Config,
    listeners: Vec<Listener>,
    app: App,
) -> Result<(Stop, Vec<Listener>), String> {
    let mut event_loop = EventLoop::new(listeners, config.limits, config.socket_timeout)
        .map_err(|e| format!("cannot start the event loop: {e}"))?;
    let watch = |ev: &mut EventLoop, signals: &[libc::c_int], stop| {
        ev.watch_signals(signals, stop)
            .map_err(|e| format!("cannot install signal handlers: {e}"))
    };
    watch(&mut event_loop, &[libc::SIGTERM], Stop::Graceful)?;
    watch(&mut event_loop, &[libc::SIGINT, libc::SIGQUIT], Stop::Fast)?;
    watch(&mut event_loop, &[libc::SIGHUP], Stop::Reload)?;

    let (sink, source) = dispatch::queue(config.threads, event_loop.wake_handle());
    let app = Arc::new(app);
    let mut threads = Vec::with_capacity(config.threads);
    for core in 0..config.threads {
        let (app, source) = (app.clone(), source.clone());
        let handle = std::thread::Builder::new()
            .name(format!("rwsgi-core-{core}"))
            .spawn(move || python::serve(app, source, core))
            .map_err(|e| format!("cannot start a Python thread: {e}"))?;
        threads.push(handle);
    }
    drop(source);

    let stop = event_loop.run(&sink);
    match stop {
        Stop::Fast => tracing::info!("SIGINT/SIGQUIT received: fast shutdown"),
        Stop::Graceful => {
            tracing::info!("SIGTERM received: graceful shutdown, finishing in-flight requests")
        }
        Stop::Reload => tracing::info!("SIGHUP received: graceful reload"),
        Stop::WorkersGone => tracing::error!("every Python thread has exited"),
    }
    drop(sink);
    if stop != Stop::Fast {
        let deadline = Instant::now() + config.reload_mercy;
        while threads.iter().any(|t| !t.is_finished()) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(10));
        }
        if threads.iter().any(|t| !t.is_finished()) {
            tracing::warn!(
                "requests still running after --reload-mercy {}s: exiting without them",
                config.reload_mercy.as_secs()
            );
            return Ok((Stop::Fast, event_loop.into_listeners()));
        }
        for t in threads {
            let _ = t.join();
        }
    }
    Ok((stop, event_loop.into_listeners()))
}
