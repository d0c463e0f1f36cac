//! The command line, in uWSGI's spellings: every flag a user moving from uWSGI types keeps working.
//!
//! These are the raw, typed flags; [`super::Config`] is what the rest of the program sees.
#![allow(
    rustdoc::broken_intra_doc_links,
    reason = "the flags' doc comments are clap's --help text, where `[uwsgi]` and `[IPV6]:PORT` are literal"
)]

use clap::{ArgAction, Parser};
use std::path::PathBuf;

/// rwsgi serves Python WSGI apps to nginx over the uwsgi protocol (`uwsgi_pass`).
#[derive(Debug, Clone, Parser)]
#[command(
    name = "rwsgi",
    version,
    about = "A uwsgi-protocol application server for Python WSGI apps, in Rust.",
    long_about = "A uwsgi-protocol application server for Python WSGI apps, in Rust.\n\n\
                  Flags use uWSGI's spellings; unknown uWSGI options are warned about and ignored.",
    after_help = "Config logic, in --ini files and on the command line: --if-env VAR[=VALUE], \
                  --if-not-env, --if-opt KEY[=VALUE], --if-not-opt, --if-exists PATH, --if-not-exists, \
                  --if-file, --if-not-file, --if-dir, --if-not-dir, --if-hostname, --if-not-hostname, \
                  --for 'A B', --for-glob PATTERN, --for-readline FILE, --for-times N, each closed by \
                  --endif/--endfor/--end; %(_) in the body is the value or the item.",
    args_override_self = true,
    max_term_width = 110
)]
pub struct Args {
    /// Load flags from the [uwsgi] section of an ini file (FILE or FILE:section).
    #[arg(long, value_name = "FILE[:SECTION]", help_heading = "Config")]
    pub ini: Vec<String>,

    /// Load flags from the uwsgi: mapping of a YAML file (FILE or FILE:section), read as uWSGI
    /// reads it: keys may repeat; a list gives its key once per item.
    #[arg(
        long,
        visible_alias = "yml",
        value_name = "FILE[:SECTION]",
        help_heading = "Config"
    )]
    pub yaml: Vec<String>,

    /// Load flags from the "uwsgi" object of a JSON file (FILE or FILE:section); an array gives
    /// its key once per item.
    #[arg(
        long,
        visible_alias = "js",
        value_name = "FILE[:SECTION]",
        help_heading = "Config"
    )]
    pub json: Vec<String>,

    /// Print the configuration as rwsgi read it (after --ini files, logic and placeholders), as an
    /// ini file, to stderr at start-up.
    #[arg(long, help_heading = "Config")]
    pub show_config: bool,

    /// Make every unknown option, and every ini key that is no option (placeholders need set-ph),
    /// a start-up error naming each, instead of a warning.
    #[arg(long, help_heading = "Config")]
    pub strict: bool,

    /// Bind a uwsgi socket: HOST:PORT, :PORT, [IPV6]:PORT, a unix path or @abstract.
    #[arg(
        short = 's',
        long,
        visible_alias = "uwsgi-socket",
        value_name = "ADDR",
        help_heading = "Sockets"
    )]
    pub socket: Vec<String>,

    /// Listen backlog (clamped to net.core.somaxconn with a warning).
    #[arg(
        short = 'l',
        long,
        default_value_t = 1024,
        value_name = "N",
        help_heading = "Sockets"
    )]
    pub listen: i32,

    /// chmod the unix socket: octal mode, 666 when given without a value.
    #[arg(short = 'C', long, num_args = 0..=1, default_missing_value = "666", value_name = "MODE",
          help_heading = "Sockets")]
    pub chmod_socket: Option<String>,

    /// Remove the unix socket and the pidfile at exit.
    #[arg(long, help_heading = "Sockets")]
    pub vacuum: bool,

    /// chown the unix socket after binding it: USER or USER:GROUP (names or numbers).
    #[arg(long, value_name = "USER[:GROUP]", help_heading = "Sockets")]
    pub chown_socket: Option<String>,

    /// Seconds a connection may stay silent while its request is read or its response written.
    #[arg(
        short = 'z',
        long,
        default_value_t = 4,
        value_name = "SECS",
        help_heading = "Sockets"
    )]
    pub socket_timeout: u64,

    /// Largest uwsgi vars block (request headers) accepted, up to 65535.
    #[arg(short = 'b', long, default_value_t = 65535, value_name = "BYTES",
          value_parser = clap::value_parser!(u32).range(1..=65535), help_heading = "Requests")]
    pub buffer_size: u32,

    /// Refuse request bodies larger than this (413); 0 means no limit.
    #[arg(
        long,
        default_value_t = 0,
        value_name = "BYTES",
        help_heading = "Requests"
    )]
    pub limit_post: u64,

    /// Body bytes read by the event loop before the app runs (larger bodies stream through wsgi.input).
    #[arg(long, value_name = "BYTES", help_heading = "Requests")]
    pub post_buffering: Option<usize>,

    /// Trust X-Forwarded-Proto / X-Forwarded-Ssl for wsgi.url_scheme (only behind a proxy that sets them).
    #[arg(long, help_heading = "Requests")]
    pub trust_forwarded_headers: bool,

    /// Load a WSGI file (its `application` callable, see --callable).
    #[arg(
        long,
        visible_alias = "file",
        value_name = "FILE",
        help_heading = "App"
    )]
    pub wsgi_file: Option<PathBuf>,

    /// Load a module: pkg.mod or pkg.mod:callable.
    #[arg(
        short = 'w',
        long,
        visible_alias = "wsgi",
        value_name = "MODULE",
        help_heading = "App"
    )]
    pub module: Option<String>,

    /// Name of the WSGI callable.
    #[arg(
        long,
        default_value = "application",
        value_name = "NAME",
        help_heading = "App"
    )]
    pub callable: String,

    /// Mount an app at a URL prefix: MOUNTPOINT=FILE or MOUNTPOINT=pkg.mod[:callable]
    /// (repeatable). Requests go to the app whose mountpoint matches (see --manage-script-name).
    #[arg(long, value_name = "MOUNTPOINT=APP", help_heading = "App")]
    pub mount: Vec<String>,

    /// Pick the mounted app by the longest mountpoint PATH_INFO starts with, and move that prefix
    /// from PATH_INFO to SCRIPT_NAME.
    #[arg(long, help_heading = "App")]
    pub manage_script_name: bool,

    /// chdir before loading the app.
    #[arg(long, value_name = "DIR", help_heading = "App")]
    pub chdir: Option<PathBuf>,

    /// Add a directory to sys.path (repeatable).
    #[arg(long, visible_aliases = ["python-path", "pp"], value_name = "DIR", help_heading = "App")]
    pub pythonpath: Vec<PathBuf>,

    /// Use this virtualenv's packages (defaults to $VIRTUAL_ENV when set).
    #[arg(short = 'H', long, visible_aliases = ["venv", "home", "pyhome"], value_name = "DIR",
          help_heading = "App")]
    pub virtualenv: Option<PathBuf>,

    /// Set an environment variable before the app loads: KEY=VALUE (repeatable).
    #[arg(long, value_name = "KEY=VALUE", help_heading = "App")]
    pub env: Vec<String>,

    /// Exit when the app cannot be loaded (the default); `--need-app=false` serves 500s instead.
    #[arg(long, num_args = 0..=1, default_value = "true", default_missing_value = "true",
          value_name = "BOOL", action = ArgAction::Set, value_parser = parse_bool, help_heading = "App")]
    pub need_app: bool,

    /// Python threads per worker process.
    #[arg(long, default_value_t = 1, value_name = "N",
          value_parser = clap::value_parser!(u16).range(1..=512), help_heading = "Processes")]
    pub threads: u16,

    /// Worker processes (more than one turns on --master).
    #[arg(short = 'p', long, visible_alias = "workers", default_value_t = 1, value_name = "N",
          value_parser = clap::value_parser!(u16).range(1..=1024), help_heading = "Processes")]
    pub processes: u16,

    /// Run a master process that forks, supervises and reloads the workers.
    #[arg(short = 'M', long, help_heading = "Processes")]
    pub master: bool,

    /// Import the app in each worker after fork instead of once in the master (uWSGI's `lazy` too:
    /// a reload replaces the workers and keeps the master).
    #[arg(long, visible_alias = "lazy", help_heading = "Processes")]
    pub lazy_apps: bool,

    /// Freeze the objects the master's import made (`gc.freeze()`) before forking a worker, so
    /// the workers' garbage collections never write to them and their pages stay shared;
    /// `--gc-freeze=false` turns it off.
    #[arg(long, num_args = 0..=1, default_value = "true", default_missing_value = "true",
          value_name = "BOOL", action = ArgAction::Set, value_parser = parse_bool, help_heading = "App")]
    pub gc_freeze: bool,

    /// Development aid (CPython 3.12+): log, once per global, when request code rebinds a
    /// module global of the app or mutates a module-level dict (the state every thread of a
    /// worker shares), naming the module, the global and the file:line. For development and
    /// staging: each write to a watched dict runs a callback, about 110 ns more per write (CPython
    /// 3.12: 115-160 -> 220-270 ns per `X = i`, scripts/shared-globals-cost.sh); requests that
    /// write none pay nothing measurable.
    #[arg(long, help_heading = "App")]
    pub py_warn_shared_globals: bool,

    /// Seconds a request may run before it is answered with an error and its worker recycled.
    #[arg(
        short = 't',
        long,
        default_value_t = 0,
        value_name = "SECS",
        help_heading = "Processes"
    )]
    pub harakiri: u64,

    /// With --harakiri: log every busy thread's Python stack, not only the stuck one's.
    #[arg(long, help_heading = "Processes")]
    pub harakiri_verbose: bool,

    /// Recycle a worker after this many requests.
    #[arg(
        short = 'R',
        long,
        default_value_t = 0,
        value_name = "N",
        help_heading = "Processes"
    )]
    pub max_requests: u64,

    /// Add up to this many requests per worker id to --max-requests, so workers do not recycle together.
    #[arg(
        long,
        default_value_t = 0,
        value_name = "N",
        help_heading = "Processes"
    )]
    pub max_requests_delta: u64,

    /// Recycle a worker whose RSS exceeds this many megabytes after a request.
    #[arg(
        long,
        default_value_t = 0,
        value_name = "MB",
        help_heading = "Processes"
    )]
    pub reload_on_rss: u64,

    /// Recycle a worker after it has lived this many seconds.
    #[arg(
        long,
        default_value_t = 0,
        value_name = "SECS",
        help_heading = "Processes"
    )]
    pub max_worker_lifetime: u64,

    /// A worker lives at least this many seconds before any recycling.
    #[arg(
        long,
        default_value_t = 1,
        value_name = "SECS",
        help_heading = "Processes"
    )]
    pub min_worker_lifetime: u64,

    /// Seconds in-flight requests get to finish at shutdown or reload.
    #[arg(
        long,
        visible_alias = "worker-reload-mercy",
        default_value_t = 60,
        value_name = "SECS",
        help_heading = "Processes"
    )]
    pub reload_mercy: u64,

    /// File mode creation mask (octal), set before the sockets are bound and the app loads.
    #[arg(long, value_name = "MASK", help_heading = "Processes")]
    pub umask: Option<String>,

    /// Write the master's pid to this file.
    #[arg(long, value_name = "FILE", help_heading = "Processes")]
    pub pidfile: Option<PathBuf>,

    /// Run as this user (name or number) once the sockets are bound; needs root to start.
    #[arg(long, value_name = "USER", help_heading = "Processes")]
    pub uid: Option<String>,

    /// Run as this group (name or number) once the sockets are bound; needs root to start.
    #[arg(long, value_name = "GROUP", help_heading = "Processes")]
    pub gid: Option<String>,

    /// Reload gracefully when this file's modification time changes (repeatable).
    #[arg(long, value_name = "FILE", help_heading = "Processes")]
    pub touch_reload: Vec<PathBuf>,

    /// Accepted for uWSGI configs: SIGTERM always shuts down gracefully in rwsgi.
    #[arg(long, help_heading = "Processes")]
    pub die_on_term: bool,

    /// Serve uwsgitop-compatible JSON stats on this address (HOST:PORT or unix path).
    #[arg(long, value_name = "ADDR", help_heading = "Monitoring")]
    pub stats: Option<String>,

    /// Wrap the stats JSON in an HTTP response.
    #[arg(long, help_heading = "Monitoring")]
    pub stats_http: bool,

    /// Report RSS and address space in the request log and the stats.
    #[arg(long, help_heading = "Monitoring")]
    pub memory_report: bool,

    /// Do not write the request log line (but see --log-4xx, --log-5xx, --log-slow, --log-big,
    /// --log-zero).
    #[arg(short = 'L', long, help_heading = "Monitoring")]
    pub disable_logging: bool,

    /// With --disable-logging, still log requests answered 4xx.
    #[arg(long, help_heading = "Monitoring")]
    pub log_4xx: bool,

    /// With --disable-logging, still log requests answered 5xx.
    #[arg(long, help_heading = "Monitoring")]
    pub log_5xx: bool,

    /// With --disable-logging, still log requests that took longer than this many milliseconds.
    #[arg(long, value_name = "MSECS", help_heading = "Monitoring")]
    pub log_slow: Option<u64>,

    /// With --disable-logging, still log responses larger than this many bytes.
    #[arg(long, value_name = "BYTES", help_heading = "Monitoring")]
    pub log_big: Option<u64>,

    /// With --disable-logging, still log responses without a body.
    #[arg(long, help_heading = "Monitoring")]
    pub log_zero: bool,

    /// Write each request's log line as FORMAT: text with uWSGI's variables, such as %(addr),
    /// %(user), %(ltime), %(method), %(uri), %(proto), %(status), %(size), %(msecs),
    /// %(var.HTTP_X_Y) (the README lists them all).
    #[arg(
        long,
        value_name = "FORMAT",
        allow_hyphen_values = true,
        help_heading = "Monitoring"
    )]
    pub log_format: Option<String>,

    /// Append the log (and the app's stdout and stderr) to this file instead of stderr.
    #[arg(long, value_name = "FILE", help_heading = "Monitoring")]
    pub logto: Option<PathBuf>,

    /// Like --logto, but the file is opened after --uid/--gid take effect, as that user.
    #[arg(long, value_name = "FILE", help_heading = "Monitoring")]
    pub logto2: Option<PathBuf>,

    /// Accepted for uWSGI configs: Python threads are always enabled.
    #[arg(short = 'T', long, help_heading = "Compatibility")]
    pub enable_threads: bool,

    /// Accepted for uWSGI configs: rwsgi always runs a single interpreter.
    #[arg(long, help_heading = "Compatibility")]
    pub single_interpreter: bool,

    /// Accepted for uWSGI configs: one waiting thread per worker accepts, and a connection wakes
    /// one worker.
    #[arg(long, help_heading = "Compatibility")]
    pub thunder_lock: bool,

    /// Logging options.
    #[command(flatten)]
    pub logging: super::logging::LogArgs,

    /// Options accepted for uWSGI configs that need nothing from rwsgi.
    #[command(flatten)]
    pub compat: super::compat::CompatArgs,

    /// Operations: master FIFO, chain reload, metrics, adaptive workers, attached daemons.
    #[command(flatten)]
    pub ops: super::ops::OpsArgs,

    /// The HTTP front end and static files.
    #[command(flatten)]
    pub http: super::http::HttpArgs,

    /// The request-head deadline and the open-file limit.
    #[command(flatten)]
    pub conn_limits: super::conn_limits::ConnLimitArgs,
}

/// uWSGI's boolean spellings.
pub fn parse_bool(s: &str) -> Result<bool, String> {
    match s.to_ascii_lowercase().as_str() {
        "1" | "true" | "yes" | "on" | "y" => Ok(true),
        "0" | "false" | "no" | "off" | "n" => Ok(false),
        other => Err(format!("expected true or false, got {other:?}")),
    }
}
