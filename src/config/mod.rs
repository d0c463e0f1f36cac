//! Configuration: uWSGI-spelled flags (and `--ini` files) in, one validated [`Config`] out.
//!
//! `main` calls [`load`]; nothing else in the program sees raw flags.

pub mod args;
pub mod compat;
pub mod conn_limits;
mod env;
pub mod http;
pub mod ini;
pub mod logging;
pub mod ops;
pub mod socket;

use crate::protocol::Limits;
pub use args::Args;
use clap::{CommandFactory, FromArgMatches};
pub use socket::SocketSpec;
use std::ffi::OsString;
use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

/// Where the WSGI callable comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AppSpec {
    /// `--wsgi-file FILE`: run the file as a module and take `callable` from it.
    File {
        /// The file, as given (relative to `--chdir`).
        path: PathBuf,
        /// The name of the WSGI callable in it (`--callable`, `application` by default).
        callable: String,
    },
    /// `--module pkg.mod[:callable]`.
    Module {
        /// The dotted module name.
        module: String,
        /// The name of the WSGI callable in it (after `:`, else `--callable`).
        callable: String,
    },
}

/// The validated configuration every layer reads.
#[derive(Debug, Clone)]
pub struct Config {
    /// The `--socket` listeners (uwsgi protocol), then the `--http-socket` ones, in flag order.
    pub sockets: Vec<SocketSpec>,
    /// `--http-socket` and the other HTTP and static-file flags; `sockets` ends with the HTTP ones.
    pub http: http::HttpConfig,
    /// `--listen`: the backlog every listener is bound with (at least 1).
    pub listen: i32,
    /// `--chmod-socket`: the mode given to unix sockets after binding.
    pub chmod_socket: Option<u32>,
    /// `--chown-socket USER[:GROUP]`, as given.
    pub chown_socket: Option<String>,
    /// `--vacuum`: remove the unix sockets and the pidfile at exit.
    pub vacuum: bool,
    /// `--socket-timeout`: how long a connection may stay silent while its request is read or
    /// its response written (at least one second).
    pub socket_timeout: Duration,
    /// `--headers-timeout`: the whole request head, from accept.
    pub headers_timeout: Duration,
    /// `--max-fd`: the open-file limit to set at start-up.
    pub max_fd: Option<u64>,
    /// `--buffer-size`, `--limit-post` and `--post-buffering`: what the decoder accepts.
    pub limits: Limits,
    /// `--trust-forwarded-headers`: `X-Forwarded-Proto`/`X-Forwarded-Ssl` may set
    /// `wsgi.url_scheme`.
    pub trust_forwarded: bool,
    /// The default app (`--wsgi-file` or `--module`), mounted at `''`; `None` when only
    /// `--mount`s are given or `--need-app=false`.
    pub app: Option<AppSpec>,
    /// `--mount`: apps at URL prefixes (mountpoints without a trailing slash).
    pub mounts: Vec<(String, AppSpec)>,
    /// `--manage-script-name`: route by the longest mountpoint `PATH_INFO` starts with and move
    /// that prefix into `SCRIPT_NAME`.
    pub manage_script_name: bool,
    /// `--chdir`: the directory changed into before the app is imported.
    pub chdir: Option<PathBuf>,
    /// `--pythonpath`: directories put on `sys.path`, in flag order.
    pub pythonpath: Vec<PathBuf>,
    /// `--virtualenv`, or `$VIRTUAL_ENV` when the flag is absent: whose `site-packages` to use.
    pub virtualenv: Option<PathBuf>,
    /// `--env KEY=VALUE` pairs, set in the process environment before the app loads.
    pub env: Vec<(String, String)>,
    /// `--need-app`: exit when no app can be imported (true), or serve 500s instead (false).
    pub need_app: bool,
    /// `gc.freeze()` in the master before each fork (not with `--lazy-apps`).
    pub gc_freeze: bool,
    /// `--py-warn-shared-globals`.
    pub py_warn_shared_globals: bool,
    /// `--threads`: Python threads serving requests in each worker.
    pub threads: usize,
    /// `--processes`/`--workers`: the most worker processes (all of them without `--cheaper`).
    pub processes: usize,
    /// Whether a master supervises the workers: `--master`, or implied by a flag only a
    /// supervisor can honour (several workers, harakiri, recycling, stats, ...).
    pub master: bool,
    /// `--lazy-apps`: import the app in each worker after fork rather than once in the master.
    pub lazy_apps: bool,
    /// `--harakiri`: a request running longer is answered with an error and its worker recycled.
    pub harakiri: Option<Duration>,
    /// `--harakiri-verbose`: the harakiri log shows every busy thread's stack.
    pub harakiri_verbose: bool,
    /// `--max-requests`: a worker retires after this many requests (0: never).
    pub max_requests: u64,
    /// `--max-requests-delta`: up to this many more requests per worker id, so workers do not all
    /// retire at once.
    pub max_requests_delta: u64,
    /// `--reload-on-rss`: a worker whose RSS is over this many megabytes after a request
    /// retires (0: never).
    pub reload_on_rss_mb: u64,
    /// `--max-worker-lifetime`: a worker retires after living this long.
    pub max_worker_lifetime: Option<Duration>,
    /// `--min-worker-lifetime`: no recycling rule retires a worker younger than this.
    pub min_worker_lifetime: Duration,
    /// `--reload-mercy`: how long in-flight requests may run on at shutdown or reload.
    pub reload_mercy: Duration,
    /// `--pidfile`: where the master writes its pid.
    pub pidfile: Option<PathBuf>,
    /// `--uid` and `--gid`, as given (names or numbers).
    pub uid: Option<String>,
    /// `--gid`, as given (a name or a number); see `uid`.
    pub gid: Option<String>,
    /// `--logto` (opened at start) and `--logto2` (opened after dropping privileges).
    pub logto: Option<PathBuf>,
    /// `--logto2`: the log file opened as the `--uid`/`--gid` user; see `logto`.
    pub logto2: Option<PathBuf>,
    /// `--touch-reload`: files whose modification time, when it changes, reloads the workers.
    pub touch_reload: Vec<PathBuf>,
    /// `--stats`: the address (HOST:PORT or a unix path) serving uwsgitop's JSON.
    pub stats: Option<String>,
    /// `--stats-http`: answer the stats socket with an HTTP response around the JSON.
    pub stats_http: bool,
    /// `--memory-report`: RSS and address space in the request log and the stats.
    pub memory_report: bool,
    /// Which requests get a log line (`--disable-logging` and its exceptions).
    pub logging: LogRules,
    /// `--log-date`, `--log-encoder`, `--req-logger`, ...
    pub log_options: crate::log::Options,
    /// `--log-format`, parsed.
    pub log_format: Option<crate::log::LogFormat>,
    /// `--umask`, parsed.
    pub umask: Option<u32>,
    /// Operations settings (master FIFO, metrics, adaptive workers, daemons).
    pub ops: ops::Ops,
}

/// An octal mode or mask flag, at most `max`.
fn octal(flag: &str, value: Option<&str>, max: u32) -> Result<Option<u32>, ConfigError> {
    value
        .map(|m| {
            u32::from_str_radix(m, 8)
                .ok()
                .filter(|m| *m <= max)
                .ok_or_else(|| ConfigError(format!("{flag} {m:?} is not an octal mode")))
        })
        .transpose()
}

/// `--module` spelling: `pkg.mod:callable`, `pkg.mod` (then `--callable`).
fn module_spec(m: &str, callable: &str) -> AppSpec {
    match m.split_once(':') {
        Some((module, name)) if !name.is_empty() => AppSpec::Module {
            module: module.into(),
            callable: name.into(),
        },
        _ => AppSpec::Module {
            module: m.trim_end_matches(':').into(),
            callable: callable.into(),
        },
    }
}

/// `--mount MOUNTPOINT=APP`: a path-like APP (a `/`, or ending in `.py` or `.wsgi`) is a file, the
/// rest a module, as uWSGI reads it.
fn parse_mount(spec: &str, callable: &str) -> Result<(String, AppSpec), ConfigError> {
    let (point, app) = spec
        .split_once('=')
        .filter(|(_, app)| !app.is_empty())
        .ok_or_else(|| ConfigError(format!("--mount {spec:?}: expected MOUNTPOINT=APP")))?;
    let point = point.trim_end_matches('/');
    if !point.is_empty() && !point.starts_with('/') {
        return Err(ConfigError(format!(
            "--mount {spec:?}: the mountpoint must start with /"
        )));
    }
    let app = if app.contains('/') || app.ends_with(".py") || app.ends_with(".wsgi") {
        AppSpec::File {
            path: PathBuf::from(app),
            callable: callable.into(),
        }
    } else {
        module_spec(app, callable)
    };
    Ok((point.into(), app))
}

/// Which requests get a log line.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LogRules {
    /// Every request (no `--disable-logging`).
    pub all: bool,
    /// `--log-4xx`: log requests answered 4xx even when `all` is off.
    pub status_4xx: bool,
    /// `--log-5xx`: log requests answered 5xx even when `all` is off.
    pub status_5xx: bool,
    /// `--log-slow`: log requests that took longer than this many milliseconds.
    pub slower_than_ms: Option<u64>,
    /// `--log-big`: log responses whose body is larger than this many bytes.
    pub bigger_than: Option<u64>,
    /// `--log-zero`: log responses without a body.
    pub empty_body: bool,
}

impl LogRules {
    /// Whether a request with this outcome is logged.
    pub fn wants(&self, status: u16, msecs: u128, body_bytes: u64) -> bool {
        self.all
            || (self.status_4xx && (400..500).contains(&status))
            || (self.status_5xx && (500..600).contains(&status))
            || self.slower_than_ms.is_some_and(|ms| msecs > u128::from(ms))
            || self.bigger_than.is_some_and(|big| body_bytes > big)
            || (self.empty_body && body_bytes == 0)
    }

    /// Whether any request can be logged.
    pub fn any(&self) -> bool {
        *self != LogRules::default()
    }
}

/// A configuration that cannot run.
#[derive(Debug)]
pub struct ConfigError(pub String);

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ConfigError {}

/// Parse the process's arguments (with `--ini` files expanded in place) into a [`Config`].
/// Unknown options come back as warnings for the caller to log once logging is set up.
pub fn load(argv: Vec<OsString>) -> Result<(Config, Vec<String>), clap::Error> {
    load_with_env(argv, std::env::vars_os())
}

/// [`load`], with `UWSGI_*`/`RWSGI_*` options taken from `vars` rather than the process environment.
pub fn load_with_env(
    argv: Vec<OsString>,
    vars: impl Iterator<Item = (OsString, OsString)>,
) -> Result<(Config, Vec<String>), clap::Error> {
    let mut warnings = Vec::new();
    let command = Args::command();
    let fail = |kind, message: String| command.clone().error(kind, message);
    let lone: Option<OsString> = ini::lone_ini(&argv).map(|flag| format!("--{flag}").into());
    let mut argv = argv.into_iter();
    let program = argv.next().into_iter();
    let from_env = env::options(vars, &command);
    let argv = program.chain(from_env).chain(lone).chain(argv).collect();
    let expanded = ini::expand(argv, &command, &mut warnings)
        .map_err(|e| fail(clap::error::ErrorKind::Io, e.0))?;
    let mut unknown = Vec::new();
    let argv = drop_unknown_options(expanded.argv, &command, &mut unknown);
    if argv.iter().any(|a| a == "--strict") && !(unknown.is_empty() && expanded.custom.is_empty()) {
        let mut names: Vec<String> = unknown.iter().map(|n| format!("--{n}")).collect();
        names.extend(
            expanded
                .custom
                .iter()
                .map(|k| format!("{k} (an ini key that is no option)")),
        );
        return Err(fail(
            clap::error::ErrorKind::UnknownArgument,
            format!("strict mode: unknown options: {}", names.join(", ")),
        ));
    }
    warnings.extend(
        unknown
            .iter()
            .map(|name| format!("ignoring unknown option --{name}: rwsgi does not implement it")),
    );
    if argv.iter().any(|a| a == "--show-config") {
        eprint!("{}", show_config(&argv, &command));
    }
    let matches = command.clone().try_get_matches_from(argv)?;
    let args = Args::from_arg_matches(&matches)?;
    warnings.extend(foreign_plugins(&args.compat.plugin).map(|name| {
        format!("plugin {name}: rwsgi has Python built in and no other plugins; ignored")
    }));
    let config = Config::from_args(args)
        .map_err(|e| Args::command().error(clap::error::ErrorKind::ValueValidation, e.0))?;
    warnings.extend(config.http.notes.iter().cloned());
    crate::log::configure(&config.log_options)
        .map_err(|e| Args::command().error(clap::error::ErrorKind::Io, e))?;
    if let Some(format) = &config.log_format {
        for name in format.unknown_names() {
            warnings.push(format!(
                "--log-format: %({name}) is no built-in variable: it prints the request's \
                 uwsgi.set_logvar('{name}', ...) value, or - when the app sets none"
            ));
        }
        for name in format.metric_names() {
            warnings.push(format!(
                "--log-format: rwsgi keeps no metrics: %(metric.{name}) is logged as 0"
            ));
        }
    }
    Ok((config, warnings))
}

/// The plugins named in `plugin`/`plugins` lists that are not Python's.
fn foreign_plugins(lists: &[String]) -> impl Iterator<Item = &str> {
    lists
        .iter()
        .flat_map(|list| list.split([',', ' ']))
        .map(str::trim)
        .filter(|name| !name.is_empty() && !name.starts_with("python"))
}

/// `--show-config`: the flags as uWSGI prints its configuration, one `key = value` a line.
fn show_config(argv: &[OsString], command: &clap::Command) -> String {
    let mut out = String::from("\n;rwsgi instance configuration\n[uwsgi]\n");
    let mut args = argv.iter().skip(1).cloned().peekable();
    while let Some(arg) = args.next() {
        let (key, value) = ini::cli_pair(&arg, &mut args, command);
        let value = if value.is_empty() { "true" } else { &value };
        out.push_str(&format!("{key} = {value}\n"));
    }
    out + ";end of configuration\n\n"
}

/// Remove options clap does not know, giving their names in `unknown`, so a uWSGI command line or
/// ini file with options rwsgi lacks still starts. An unknown `--name` takes the next argument with it when
/// that argument is not itself an option.
fn drop_unknown_options(
    argv: Vec<OsString>,
    command: &clap::Command,
    unknown: &mut Vec<String>,
) -> Vec<OsString> {
    let known = |name: &str| {
        command.get_arguments().any(|a| {
            a.get_long() == Some(name) || a.get_all_aliases().is_some_and(|v| v.contains(&name))
        }) || matches!(name, "help" | "version")
    };
    let mut out = Vec::with_capacity(argv.len());
    let mut iter = argv.into_iter().peekable();
    if let Some(program) = iter.next() {
        out.push(program);
    }
    while let Some(arg) = iter.next() {
        let text = arg.to_string_lossy();
        let Some(long) = text.strip_prefix("--").filter(|l| !l.is_empty()) else {
            out.push(arg);
            continue;
        };
        let (name, has_value) = match long.split_once('=') {
            Some((name, _)) => (name.to_string(), true),
            None => (long.to_string(), false),
        };
        if known(&name) {
            out.push(arg);
            continue;
        }
        let takes_next = !has_value
            && iter
                .peek()
                .is_some_and(|next| !next.to_string_lossy().starts_with('-'));
        if takes_next {
            iter.next();
        }
        unknown.push(name);
    }
    out
}

/// A `--mount`: the mountpoint (no trailing slash) and its app.
type Mount = (String, AppSpec);

/// `--env KEY=VALUE`.
fn env_pair(kv: &str) -> Result<(String, String), ConfigError> {
    match kv.split_once('=') {
        Some((k, v)) if !k.is_empty() => Ok((k.to_string(), v.to_string())),
        _ => Err(ConfigError(format!("--env {kv:?} is not KEY=VALUE"))),
    }
}

/// The app (`--wsgi-file` or `--module`) and the `--mount`ed ones; at least one unless
/// `--need-app=false`.
fn apps(args: &Args) -> Result<(Option<AppSpec>, Vec<Mount>), ConfigError> {
    let mounts = args
        .mount
        .iter()
        .map(|m| parse_mount(m, &args.callable))
        .collect::<Result<Vec<_>, _>>()?;
    let app = match (&args.wsgi_file, &args.module) {
        (Some(_), Some(_)) => {
            return Err(ConfigError(
                "give either --wsgi-file or --module, not both".into(),
            ))
        }
        (Some(path), None) => Some(AppSpec::File {
            path: path.clone(),
            callable: args.callable.clone(),
        }),
        (None, Some(m)) => Some(module_spec(m, &args.callable)),
        (None, None) => None,
    };
    if app.is_none() && mounts.is_empty() && args.need_app {
        return Err(ConfigError(
            "no app given: use --wsgi-file FILE, --module pkg.mod:callable or --mount".into(),
        ));
    }
    Ok((app, mounts))
}

/// The logging options, and the log file (`--logto`, or a `--logger file:`).
fn log_setup(args: &Args) -> Result<(crate::log::Options, Option<PathBuf>), ConfigError> {
    let (mut options, logger_file) = args.logging.options()?;
    let logto = args.logto.clone().or(logger_file);
    if let Some(master) = options.master.as_mut() {
        master.file = logto.clone().or_else(|| args.logto2.clone());
    }
    Ok((options, logto))
}

/// What needs a supervisor turns the master on, as a user of these flags expects.
fn needs_master(args: &Args, processes: usize) -> bool {
    args.master
        || processes > 1
        || args.harakiri > 0
        || args.max_requests > 0
        || args.reload_on_rss > 0
        || args.max_worker_lifetime > 0
        || args.stats.is_some()
        || !args.touch_reload.is_empty()
        || args.ops.need_master()
}

impl Config {
    /// Validate flags into a configuration.
    pub fn from_args(args: Args) -> Result<Config, ConfigError> {
        let mut http = http::HttpConfig::from_args(&args.http)?;
        http.first = args.socket.len();
        let mut sockets = args
            .socket
            .iter()
            .map(|s| SocketSpec::parse(s))
            .collect::<Result<Vec<_>, _>>()?;
        sockets.extend(http.sockets.iter().cloned()); // listeners from `http.first` on speak HTTP
                                                      // Socket activation (or a reloading master) may pass the sockets instead.
        let passed = ["LISTEN_FDS", "RWSGI_LISTEN_FDS"]
            .iter()
            .any(|v| std::env::var_os(v).is_some());
        if sockets.is_empty() && !passed {
            return Err(ConfigError(
                "no --socket or --http-socket given: rwsgi needs an address to serve on".into(),
            ));
        }
        let chmod_socket = octal("--chmod-socket", args.chmod_socket.as_deref(), 0o7777)?;
        let umask = octal("--umask", args.umask.as_deref(), 0o777)?;
        let (app, mounts) = apps(&args)?;
        let env = args
            .env
            .iter()
            .map(|kv| env_pair(kv))
            .collect::<Result<_, _>>()?;
        let virtualenv = args
            .virtualenv
            .clone()
            .or_else(|| std::env::var_os("VIRTUAL_ENV").map(PathBuf::from));
        let processes = usize::from(args.processes);
        let master = needs_master(&args, processes);
        let limits = Limits {
            buffer_size: args.buffer_size as usize,
            limit_post: args.limit_post,
            preread: args
                .post_buffering
                .unwrap_or(crate::protocol::decoder::DEFAULT_PREREAD),
        };
        let secs = |s: u64| (s > 0).then(|| Duration::from_secs(s));
        let (log_options, logto) = log_setup(&args)?;
        Ok(Config {
            sockets,
            http,
            listen: args.listen.max(1),
            chmod_socket,
            chown_socket: args.chown_socket,
            vacuum: args.vacuum,
            socket_timeout: Duration::from_secs(args.socket_timeout.max(1)),
            headers_timeout: Duration::from_secs(args.conn_limits.headers_timeout.max(1)),
            max_fd: args.conn_limits.max_fd,
            limits,
            trust_forwarded: args.trust_forwarded_headers,
            app,
            mounts,
            manage_script_name: args.manage_script_name,
            chdir: args.chdir,
            pythonpath: args.pythonpath,
            virtualenv,
            env,
            need_app: args.need_app,
            gc_freeze: args.gc_freeze,
            py_warn_shared_globals: args.py_warn_shared_globals,
            threads: usize::from(args.threads),
            processes,
            // What needs a supervisor turns the master on, as a user of these flags expects.
            master,
            lazy_apps: args.lazy_apps,
            harakiri: secs(args.harakiri),
            harakiri_verbose: args.harakiri_verbose,
            max_requests: args.max_requests,
            max_requests_delta: args.max_requests_delta,
            reload_on_rss_mb: args.reload_on_rss,
            max_worker_lifetime: secs(args.max_worker_lifetime),
            min_worker_lifetime: Duration::from_secs(args.min_worker_lifetime),
            reload_mercy: Duration::from_secs(args.reload_mercy),
            pidfile: args.pidfile,
            uid: args.uid,
            gid: args.gid,
            logto,
            logto2: args.logto2,
            touch_reload: args.touch_reload,
            stats: args.stats,
            stats_http: args.stats_http,
            memory_report: args.memory_report,
            logging: LogRules {
                all: !args.disable_logging,
                status_4xx: args.log_4xx,
                status_5xx: args.log_5xx,
                slower_than_ms: args.log_slow,
                bigger_than: args.log_big,
                empty_body: args.log_zero,
            },
            log_options,
            log_format: args.log_format.as_deref().map(crate::log::LogFormat::parse),
            umask,
            ops: args.ops.validate(processes)?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load_args(args: &[&str]) -> Result<(Config, Vec<String>), clap::Error> {
        load(
            std::iter::once("rwsgi")
                .chain(args.iter().copied())
                .map(OsString::from)
                .collect(),
        )
    }

    #[test]
    fn uwsgi_spellings_parse() {
        let (c, w) = load_args(&[
            "-s",
            "127.0.0.1:3031",
            "--wsgi-file",
            "app.py",
            "--threads",
            "8",
            "--chmod-socket=660",
            "-b",
            "32768",
            "--vacuum",
            "-L",
        ])
        .unwrap();
        assert!(w.is_empty());
        assert_eq!(c.threads, 8);
        assert_eq!(c.chmod_socket, Some(0o660));
        assert_eq!(c.limits.buffer_size, 32768);
        assert!(c.vacuum && !c.logging.any());
        assert_eq!(
            c.app,
            Some(AppSpec::File {
                path: "app.py".into(),
                callable: "application".into()
            })
        );
    }

    #[test]
    fn module_with_callable() {
        let (c, _) = load_args(&["--socket", ":3031", "-w", "mysite.wsgi:app"]).unwrap();
        assert_eq!(
            c.app,
            Some(AppSpec::Module {
                module: "mysite.wsgi".into(),
                callable: "app".into()
            })
        );
        let (c, _) =
            load_args(&["--socket", ":3031", "--module", "m", "--callable", "wsgi"]).unwrap();
        assert_eq!(
            c.app,
            Some(AppSpec::Module {
                module: "m".into(),
                callable: "wsgi".into()
            })
        );
    }

    #[test]
    fn chmod_socket_without_value_is_666() {
        let (c, _) =
            load_args(&["--socket", "/tmp/x.sock", "--chmod-socket", "--module", "m"]).unwrap();
        assert_eq!(c.chmod_socket, Some(0o666));
    }

    #[test]
    fn unknown_options_warn_and_are_dropped() {
        let (c, w) = load_args(&[
            "--socket",
            ":3031",
            "--daemonize",
            "/var/log/app.log",
            "--module",
            "m",
            "--py-tracebacker",
            "/tmp/tb",
            "--threads",
            "2",
        ])
        .unwrap();
        assert_eq!(c.threads, 2);
        assert_eq!(w.len(), 2, "{w:?}");
        assert!(w[0].contains("--daemonize"));
    }

    #[test]
    fn log_rules_pick_requests_when_logging_is_off() {
        let (c, _) = load_args(&[
            "--socket",
            ":1",
            "--module",
            "m",
            "-L",
            "--log-4xx",
            "--log-slow",
            "100",
            "--log-big",
            "1000",
            "--umask",
            "027",
        ])
        .unwrap();
        let rules = c.logging;
        assert!(!rules.all && rules.any());
        assert!(!rules.wants(200, 5, 10));
        assert!(rules.wants(404, 5, 10));
        assert!(!rules.wants(500, 5, 10), "--log-5xx was not given");
        assert!(rules.wants(200, 101, 10) && !rules.wants(200, 100, 10));
        assert!(rules.wants(200, 5, 1001) && !rules.wants(200, 5, 1000));
        assert!(!rules.wants(200, 5, 0), "--log-zero was not given");
        assert_eq!(c.umask, Some(0o027));
        let (c, _) = load_args(&["--socket", ":1", "--module", "m"]).unwrap();
        assert!(c.logging.all && c.logging.wants(200, 0, 0));
        assert!(load_args(&["--socket", ":1", "--module", "m", "--umask", "8"]).is_err());
    }

    #[test]
    fn mounts_take_files_and_modules() {
        let (c, w) = load_args(&[
            "--socket",
            ":1",
            "--mount",
            "/app/=app.py",
            "--mount",
            "/api=pkg.api:make",
            "--mount",
            "/b=/srv/b/wsgi",
            "--manage-script-name",
        ])
        .unwrap();
        assert!(w.is_empty(), "{w:?}");
        assert!(c.app.is_none() && c.manage_script_name);
        let points: Vec<&str> = c.mounts.iter().map(|(p, _)| p.as_str()).collect();
        assert_eq!(points, ["/app", "/api", "/b"]);
        assert!(matches!(&c.mounts[0].1, AppSpec::File { path, callable }
            if path.as_os_str() == "app.py" && callable == "application"));
        assert!(
            matches!(&c.mounts[1].1, AppSpec::Module { module, callable }
            if module == "pkg.api" && callable == "make")
        );
        assert!(matches!(&c.mounts[2].1, AppSpec::File { .. }));
        assert!(load_args(&["--socket", ":1", "--mount", "app=app.py"]).is_err());
        assert!(load_args(&["--socket", ":1", "--mount", "/app"]).is_err());
    }

    #[test]
    fn buffer_size_is_capped() {
        assert!(load_args(&["--socket", ":1", "--module", "m", "-b", "65536"]).is_err());
    }

    #[test]
    fn an_app_is_needed_unless_need_app_is_off() {
        assert!(load_args(&["--socket", ":1"]).is_err());
        assert!(load_args(&["--socket", ":1", "--need-app=false"]).is_ok());
    }

    fn with_env(
        args: &[&str],
        vars: &[(&str, &str)],
    ) -> Result<(Config, Vec<String>), clap::Error> {
        let argv = std::iter::once("rwsgi").chain(args.iter().copied());
        let vars = vars
            .iter()
            .map(|(k, v)| (OsString::from(k), OsString::from(v)));
        load_with_env(
            argv.map(OsString::from).collect(),
            vars.collect::<Vec<_>>().into_iter(),
        )
    }

    #[test]
    fn options_from_the_environment_come_before_the_command_line() {
        let dir = std::env::temp_dir().join(format!("rwsgi-envopt-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let ini = dir.join("a.ini");
        std::fs::write(&ini, "[uwsgi]\nthreads = 5\nmodule = m\n").unwrap();
        let vars = [
            ("UWSGI_SOCKET", ":3031"),
            ("UWSGI_PROCESSES", "2"),
            ("UWSGI_THREADS", "2"),
            ("RWSGI_THREADS", "3"),
            ("UWSGI_MASTER", "1"),
            ("UWSGI_ENV", "A=1"),
            ("UWSGI_HOME_DIR_NOT_AN_OPTION", "x"),
        ];
        let (c, w) =
            with_env(&["--socket", ":3032", "-w", "m", "--processes", "4"], &vars).unwrap();
        assert_eq!(c.sockets.len(), 2, "list options add up");
        assert_eq!(
            (c.processes, c.threads),
            (4, 3),
            "flags win; RWSGI_ wins over UWSGI_"
        );
        assert!(c.master && w.is_empty(), "{w:?}");
        assert_eq!(c.env, [("A".to_string(), "1".to_string())]);
        let ini = ini.to_string_lossy().into_owned();
        let (c, _) = with_env(&["--ini", &ini], &vars).unwrap();
        assert_eq!(c.threads, 5, "an ini key wins over the environment");
        let (c, _) = with_env(&[], &[("UWSGI_INI", &ini), ("UWSGI_SOCKET", ":1")]).unwrap();
        assert_eq!(c.threads, 5, "UWSGI_INI loads a file");
        let (c, _) = with_env(&[&ini], &[("UWSGI_SOCKET", ":1")]).unwrap();
        assert_eq!(c.threads, 5, "a lone ini argument still is one");
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn strict_rejects_every_unknown_option_and_key() {
        let dir = std::env::temp_dir().join(format!("rwsgi-strict-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let ini = dir.join("a.ini");
        std::fs::write(
            &ini,
            "[uwsgi]\nprocesess = 4\nset-ph = base=/srv\nchdir = %(base)\nstrict = true\n\
             daemonize = /x.log\n",
        )
        .unwrap();
        let ini = ini.to_string_lossy().into_owned();
        let args = ["--ini", &ini, "-s", ":1", "-w", "m", "--reload-on-as"];
        let err = with_env(&args, &[("UWSGI_NOT_AN_OPTION", "1")])
            .err()
            .unwrap()
            .to_string();
        assert!(
            err.contains("strict mode: unknown options: --daemonize, --reload-on-as, procesess"),
            "{err}"
        );
        std::fs::write(&ini, "[uwsgi]\nprocesess = 4\n").unwrap();
        let (_, w) = with_env(&["--ini", &ini, "-s", ":1", "-w", "m"], &[]).unwrap();
        assert!(
            w.is_empty(),
            "without strict a custom key is a placeholder: {w:?}"
        );
        assert!(with_env(&["--ini", &ini, "-s", ":1", "-w", "m", "--strict"], &[]).is_err());
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn accepted_uwsgi_options_are_silent() {
        let (c, w) = with_env(
            &[
                "-s",
                ":1",
                "-w",
                "m",
                "--plugin",
                "python3",
                "--plugins=python,python311",
                "--ignore-sigpipe",
                "--ignore-write-errors",
                "--disable-write-exception",
                "--py-call-osafterfork",
                "--enable-threads",
                "--lazy",
                "--strict",
            ],
            &[],
        )
        .unwrap();
        assert!(w.is_empty() && c.lazy_apps, "{w:?}");
        let (_, w) = with_env(&["-s", ":1", "-w", "m", "--plugins", "http,python3"], &[]).unwrap();
        assert_eq!(w.len(), 1, "{w:?}");
        assert!(w[0].contains("plugin http"), "{w:?}");
    }

    #[test]
    fn later_flags_override_earlier_ones() {
        let (c, _) = load_args(&[
            "--socket",
            ":1",
            "-w",
            "m",
            "--threads",
            "2",
            "--threads",
            "4",
        ])
        .unwrap();
        assert_eq!(c.threads, 4);
    }
}
