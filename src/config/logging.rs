//! uWSGI's logging options: `log-date`, `log-x-forwarded-for`, `logformat-strftime`, the encoders,
//! `logger`/`req-logger` (`file:PATH` and `stdio`), and `log-reopen`.

use super::ConfigError;
use crate::log::{master::LogMaster, procname::Procname, Encoder, Options};
use clap::Args;
use std::path::PathBuf;

/// The logging flags.
#[derive(Debug, Clone, Args)]
pub struct LogArgs {
    /// Prefix the server's own lines with the date (ctime's layout), or with FORMAT (strftime),
    /// then " - "; request lines keep their own time, as in uWSGI.
    #[arg(long, visible_alias = "logdate", num_args = 0..=1, default_missing_value = "true",
          value_name = "FORMAT", help_heading = "Monitoring")]
    pub log_date: Option<String>,

    /// With a --log-date FORMAT, write %(ftime) in the request log format in that format.
    #[arg(
        long,
        visible_alias = "log-format-strftime",
        help_heading = "Monitoring"
    )]
    pub logformat_strftime: bool,

    /// Log the X-Forwarded-For header as the request line's address when the request has one.
    #[arg(long, help_heading = "Monitoring")]
    pub log_x_forwarded_for: bool,

    /// Encode the log lines (repeatable, applied in order): `format TEMPLATE` or `json TEMPLATE`
    /// with ${msg}, ${msgnl}, ${unix}, ${micros}, ${millis}, ${strftime:FMT} (json escapes the
    /// values), or `nl`. Every line still ends in one newline.
    #[arg(long, value_name = "ENCODER", help_heading = "Monitoring")]
    pub log_encoder: Vec<String>,

    /// Encode the request lines written to a --req-logger (as --log-encoder).
    #[arg(long, value_name = "ENCODER", help_heading = "Monitoring")]
    pub log_req_encoder: Vec<String>,

    /// Where the log goes: `file:PATH` (as --logto PATH) or `stdio` (stderr, the default).
    #[arg(long, value_name = "LOGGER", help_heading = "Monitoring")]
    pub logger: Vec<String>,

    /// Where the request lines go: `file:PATH` or `stdio` (stderr, the default).
    #[arg(long, value_name = "LOGGER", help_heading = "Monitoring")]
    pub req_logger: Vec<String>,

    /// With --log-master, reopen the log file at a reload (after logrotate moved it, say); without
    /// it, a reload re-executes rwsgi, which opens --logto again anyway.
    #[arg(long, help_heading = "Monitoring")]
    pub log_reopen: bool,

    /// Send every process's output (workers', the app's prints) through one log process, the only
    /// writer of the log: whole lines, and rotation with --log-maxsize.
    #[arg(long, help_heading = "Monitoring")]
    pub log_master: bool,

    /// Rotate the --logto file when it reaches this many bytes (turns on --log-master).
    #[arg(long, value_name = "BYTES", help_heading = "Monitoring")]
    pub log_maxsize: Option<u64>,

    /// The rotated log file's name (each rotation replaces it, as in uWSGI); without it, FILE.TIME
    /// (TIME: the unix time of the rotation), never overwriting an earlier one.
    #[arg(long, value_name = "PATH", help_heading = "Monitoring")]
    pub log_backupname: Option<PathBuf>,

    /// Name the processes `rwsgi master`, `rwsgi worker N` (and `rwsgi log`) in ps and top.
    #[arg(long, help_heading = "Processes")]
    pub auto_procname: bool,

    /// Put PREFIX before every process name (turns on --auto-procname, as each of these does).
    #[arg(long, value_name = "PREFIX", help_heading = "Processes")]
    pub procname_prefix: Option<String>,

    /// Put PREFIX and a space before every process name.
    #[arg(long, value_name = "PREFIX", help_heading = "Processes")]
    pub procname_prefix_spaced: Option<String>,

    /// Put SUFFIX after every process name.
    #[arg(long, value_name = "SUFFIX", help_heading = "Processes")]
    pub procname_append: Option<String>,

    /// Name every process NAME instead of by its role.
    #[arg(long, value_name = "NAME", help_heading = "Processes")]
    pub procname: Option<String>,

    /// Name the master NAME.
    #[arg(long, value_name = "NAME", help_heading = "Processes")]
    pub procname_master: Option<String>,
}

/// A logger spec: the file it names, `None` for stderr.
fn logger(flag: &str, specs: &[String]) -> Result<Option<PathBuf>, ConfigError> {
    let mut file = None;
    for spec in specs {
        // uWSGI's `logger = NAME plugin:args` form names a logger; rwsgi needs no name.
        let target = spec.rsplit(' ').next().unwrap_or(spec);
        match target.split_once(':') {
            _ if target == "stdio" => {}
            Some(("file", path)) if !path.is_empty() && file.is_none() => file = Some(path.into()),
            Some(("file", _)) => {
                return Err(ConfigError(format!(
                    "--{flag} {spec:?}: rwsgi writes to one file (and needs its path)"
                )))
            }
            _ => {
                return Err(ConfigError(format!(
                    "--{flag} {spec:?}: rwsgi has the file:PATH and stdio loggers"
                )))
            }
        }
    }
    Ok(file)
}

impl LogArgs {
    /// The process naming options, when any is given.
    fn procname(&self) -> Option<Procname> {
        let prefix = match (&self.procname_prefix_spaced, &self.procname_prefix) {
            (Some(spaced), _) => format!("{spaced} "),
            (None, Some(prefix)) => prefix.clone(),
            (None, None) => String::new(),
        };
        let on = self.auto_procname
            || !prefix.is_empty()
            || self.procname_append.is_some()
            || self.procname.is_some()
            || self.procname_master.is_some();
        on.then(|| Procname {
            prefix,
            append: self.procname_append.clone().unwrap_or_default(),
            all: self.procname.clone(),
            master: self.procname_master.clone(),
        })
    }

    /// The log options, and the file `--logger` names (the caller treats it as `--logto`).
    pub fn options(&self) -> Result<(Options, Option<PathBuf>), ConfigError> {
        let encoders = |specs: &[String]| {
            specs
                .iter()
                .map(|s| Encoder::parse(s).map_err(ConfigError))
                .collect::<Result<Vec<_>, _>>()
        };
        let date = self.log_date.as_ref().map(|v| {
            let on = super::args::parse_bool(v).is_ok_and(|b| b) || v.is_empty();
            (!on).then(|| v.clone())
        });
        let ftime = match &date {
            Some(Some(format)) if self.logformat_strftime => Some(format.clone()),
            _ => None,
        };
        let options = Options {
            date,
            x_forwarded_for: self.log_x_forwarded_for,
            ftime,
            encoders: encoders(&self.log_encoder)?,
            req_encoders: encoders(&self.log_req_encoder)?,
            req_file: logger("req-logger", &self.req_logger)?,
            master: (self.log_master || self.log_maxsize.is_some()).then(|| LogMaster {
                file: None,
                maxsize: self.log_maxsize.filter(|&m| m > 0),
                backupname: self.log_backupname.clone(),
                reopen: self.log_reopen,
            }),
            procname: self.procname(),
        };
        Ok((options, logger("logger", &self.logger)?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Args;
    use clap::Parser;

    fn options(args: &[&str]) -> Result<(Options, Option<PathBuf>), ConfigError> {
        let argv = ["rwsgi"].iter().chain(args).copied();
        Args::try_parse_from(argv).unwrap().logging.options()
    }

    #[test]
    fn dates_encoders_and_loggers() {
        let (o, logto) = options(&[]).unwrap();
        assert_eq!((o, logto), (Options::default(), None));
        let (o, _) = options(&["--log-date"]).unwrap();
        assert_eq!(o.date, Some(None));
        let (o, _) = options(&["--logdate=true"]).unwrap();
        assert_eq!(o.date, Some(None));
        let (o, _) = options(&["--log-date=%Y-%m-%d", "--logformat-strftime"]).unwrap();
        assert_eq!(o.date, Some(Some("%Y-%m-%d".into())));
        assert_eq!(o.ftime.as_deref(), Some("%Y-%m-%d"));
        let (o, logto) = options(&[
            "--logger=file:/var/log/app.log",
            "--req-logger",
            "stdio",
            "--req-logger=reqs file:/var/log/req.log",
            "--log-req-encoder=json {\"m\":\"${msg}\"}",
            "--log-req-encoder=nl",
        ])
        .unwrap();
        assert_eq!(logto, Some("/var/log/app.log".into()));
        assert_eq!(o.req_file, Some("/var/log/req.log".into()));
        assert_eq!(o.req_encoders.len(), 2);
        assert!(options(&["--logger=syslog:app"]).is_err());
        assert!(options(&["--log-encoder=msgpack x"]).is_err());
        assert!(options(&["--req-logger=file:/a", "--req-logger=file:/b"]).is_err());
    }
}
