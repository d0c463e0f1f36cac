//! One worker process: the event loop on the calling thread and `--threads` Python threads that
//! accept and serve requests. Returns when a signal or the harakiri watchdog stops it, after in-flight requests
//! finished (within `--reload-mercy`), unless the stop was a fast one.

use crate::config::Config;
use crate::python::{self, App};
use crate::server::dispatch::{self, InFlight};
use crate::server::incoming::Timeouts;
use crate::server::{Acceptor, EventLoop, Listener, Release, Stop};
use crate::sys::process;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// Serve on `listeners` until stopped; gives the listeners back (for vacuum or reload).
pub fn run(
    config: &Config,
    listeners: Vec<Listener>,
    mut app: App,
) -> Result<(Stop, Vec<Listener>), String> {
    crate::log::procname::name(crate::log::procname::Role::Worker(app.worker_id));
    python::uwsgi_module::worker_started(app.worker_id);
    // Recycling counts this worker's life from here (the app may have been imported in the
    // master long before the fork).
    app.since = Instant::now();
    let timeouts = Timeouts {
        idle: config.socket_timeout,
        head: config.headers_timeout,
    };
    let mut event_loop = EventLoop::new(listeners, timeouts, config.limits)
        .map_err(|e| format!("cannot start the event loop: {e}"))?;
    let watch = |ev: &mut EventLoop, signals: &[libc::c_int], stop| {
        ev.watch_signals(signals, stop)
            .map_err(|e| format!("cannot install signal handlers: {e}"))
    };
    watch(&mut event_loop, &[libc::SIGTERM], Stop::Graceful)?;
    watch(&mut event_loop, &[libc::SIGINT, libc::SIGQUIT], Stop::Fast)?;
    watch(&mut event_loop, &[libc::SIGHUP], Stop::Reload)?;
    // Signals that arrived since the fork are delivered now, to these handlers.
    crate::sys::process::unblock_stop_signals();
    let inflight = config
        .harakiri
        .map(|_| Arc::new(InFlight::new(config.threads)));
    if let (Some(limit), Some(inflight)) = (config.harakiri, &inflight) {
        event_loop.set_watchdog(inflight.clone(), limit);
    }
    event_loop.set_stop_budget(config.reload_mercy);

    let (sink, sources) = dispatch::channel(
        config.threads,
        event_loop.listener_fds(),
        config.limits,
        timeouts,
        inflight.clone(),
        event_loop.wake_handle(),
        crate::server::http::settings(config),
        (!config.http.statics.is_empty()).then(|| Arc::new(config.http.statics.clone())),
    )
    .map_err(|e| format!("cannot set up the Python threads' queue: {e}"))?;
    let app = Arc::new(app);
    let mut threads = Vec::with_capacity(config.threads);
    let acceptors = Acceptor::for_threads(sources)
        .map_err(|e| format!("cannot set up accepting for the Python threads: {e}"))?;
    if let Some(first) = acceptors.first() {
        event_loop.set_deafener(first.deafener());
    }
    for (core, acceptor) in acceptors.into_iter().enumerate() {
        let app = app.clone();
        let handle = std::thread::Builder::new()
            .name(format!("rwsgi-core-{core}"))
            .spawn(move || python::serve(app, acceptor, core))
            .map_err(|e| format!("cannot start a Python thread: {e}"))?;
        threads.push(handle);
    }

    let board = app.board.clone();
    let worker = app.board.worker(app.worker_id);
    worker.ready.store(1, Ordering::SeqCst);
    let stop = event_loop.run(&sink, |_| release_at_stop(config.master, &board));
    // Only while the slot is still ours: a successor spawned into it (a recycle, a chain reload)
    // may already have said it is ready.
    if worker.pid.load(Ordering::SeqCst) == std::process::id() as i32 {
        worker.ready.store(0, Ordering::SeqCst);
    }
    worker.accepting.store(0, Ordering::SeqCst);
    announce(stop, worker);
    drop(sink);
    if matches!(stop, Stop::Retire | Stop::Harakiri) && config.master {
        // Wake the master now (it treats SIGCHLD as "look at the workers") so the successor starts
        // while this worker finishes, instead of at the master's next tick.
        let _ = process::kill(process::parent_pid(), libc::SIGCHLD);
    }
    let stop = match stop {
        Stop::Fast => Stop::Fast,
        _ if wait_for_threads(
            &threads,
            inflight.as_deref(),
            config.harakiri,
            config.reload_mercy,
        ) =>
        {
            for t in threads {
                let _ = t.join();
            }
            stop
        }
        // A thread is stuck (harakiri) or mercy ran out: the process cannot finalize Python.
        _ => Stop::Fast,
    };
    python::uwsgi_module::worker_stopping();
    Ok((stop, event_loop.into_listeners()))
}

/// Log why the worker stops, and count a harakiri.
fn announce(stop: Stop, worker: &crate::scoreboard::WorkerSlot) {
    match stop {
        Stop::Fast => tracing::info!("SIGINT/SIGQUIT received: fast shutdown"),
        Stop::Graceful => {
            tracing::info!("SIGTERM received: graceful shutdown, finishing in-flight requests")
        }
        Stop::Reload => tracing::info!("SIGHUP received: graceful reload"),
        Stop::WorkersGone => tracing::error!("every Python thread has exited"),
        Stop::Retire => {}
        Stop::Harakiri => {
            worker.harakiri_count.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// What a stopping worker does with its listening sockets. Without a master this process is the
/// only one holding them, and it is about to exit: they close, new connects refused first. With a master
/// they close only when the master shuts down (it has let go of its own copies then); otherwise
/// (a reload, a recycled worker) the master keeps them open for the next workers.
fn release_at_stop(master: bool, board: &crate::scoreboard::Scoreboard) -> Release {
    if !master {
        Release::Drain { refuse_first: true }
    } else if board.totals().listeners_closing.load(Ordering::SeqCst) != 0 {
        Release::Drain {
            refuse_first: false,
        }
    } else {
        Release::Leave
    }
}

/// Wait until every thread has exited, or only threads stuck in a request the watchdog gave up on
/// remain. True when all exited.
fn wait_for_threads(
    threads: &[JoinHandle<()>],
    inflight: Option<&InFlight>,
    harakiri: Option<Duration>,
    mercy: Duration,
) -> bool {
    let deadline = Instant::now() + mercy;
    loop {
        let running: Vec<usize> = (0..threads.len())
            .filter(|&i| !threads[i].is_finished())
            .collect();
        if running.is_empty() {
            return true;
        }
        if let (Some(limit), Some(inflight)) = (harakiri, inflight) {
            let stuck: Vec<usize> = inflight
                .overdue(limit)
                .into_iter()
                .map(|(core, _)| core)
                .collect();
            if !stuck.is_empty() && running.iter().all(|core| stuck.contains(core)) {
                tracing::warn!(
                    "leaving {} request(s) stuck past --harakiri behind",
                    running.len()
                );
                return false;
            }
        }
        if Instant::now() >= deadline {
            tracing::warn!(
                "requests still running after --reload-mercy {}s: exiting without them",
                mercy.as_secs()
            );
            return false;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}
