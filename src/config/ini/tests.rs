//! The ini loader end to end: files on disk through `expand` (and `config::load`) to flags.

use super::*;
use crate::config::{load, Args};
use clap::CommandFactory;
use std::path::PathBuf;

/// A directory of its own under the system temp dir, removed when the test ends.
struct Dir(PathBuf);

impl Dir {
    fn new(test: &str) -> Dir {
        let dir = std::env::temp_dir().join(format!("rwsgi-ini-{}-{test}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        Dir(dir)
    }
    fn file(&self, name: &str, text: &str) -> String {
        let path = self.0.join(name);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, text).unwrap();
        path.to_string_lossy().into_owned()
    }
}

impl Drop for Dir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn run(args: &[&str]) -> (Vec<String>, Vec<String>) {
    let argv = std::iter::once("rwsgi")
        .chain(args.iter().copied())
        .map(OsString::from);
    let mut warnings = Vec::new();
    let out = expand(argv.collect(), &Args::command(), &mut warnings)
        .unwrap()
        .argv;
    let out = out
        .into_iter()
        .skip(1)
        .map(|a| a.to_string_lossy().into_owned())
        .collect();
    (out, warnings)
}

#[test]
fn default_section_comments_trimming_and_repeats() {
    let d = Dir::new("basic");
    let ini = d.file(
        "a.ini",
        "; comment\n# another\n[other]\nthreads = 9\n[uwsgi]\r\n\
         \t socket = :3031 \t\r\n  socket=/tmp/x.sock\nthreads= 4\n\n[more]\nprocesses = 3\n",
    );
    let (flags, w) = run(&["--ini", &ini]);
    assert_eq!(
        flags,
        ["--socket=:3031", "--socket=/tmp/x.sock", "--threads=4"]
    );
    assert!(w.is_empty(), "{w:?}");
    let (c, _) = load(
        ["rwsgi", "--ini", &ini, "-w", "m"]
            .map(OsString::from)
            .to_vec(),
    )
    .unwrap();
    assert_eq!(c.sockets.len(), 2, "repeated keys accumulate");
}

#[test]
fn named_section_and_missing_section() {
    let d = Dir::new("section");
    let ini = d.file(
        "a.ini",
        "[uwsgi]\nthreads = 2\n[app1]\nthreads = 3\n[empty]\n",
    );
    assert_eq!(run(&[&format!("--ini={ini}:app1")]).0, ["--threads=3"]);
    let (flags, w) = run(&["--ini", &format!("{ini}:empty")]);
    assert!(flags.is_empty());
    assert_eq!(w.len(), 1);
    assert!(w[0].contains("can't find section \"empty\""), "{w:?}");
}

#[test]
fn unknown_keys_are_placeholders_and_uwsgi_options_still_warn() {
    let d = Dir::new("placeholder");
    let ini = d.file(
        "a.ini",
        "[uwsgi]\nbase = /srv/app\nsocket = %(base)/app.sock\nchdir = %(base)\ndaemonize = /var/log/app.log\n",
    );
    let (flags, _) = run(&["--ini", &ini]);
    assert_eq!(
        flags,
        [
            "--socket=/srv/app/app.sock",
            "--chdir=/srv/app",
            "--daemonize=/var/log/app.log"
        ]
    );
    let (c, w) = load(
        ["rwsgi", "--ini", &ini, "-w", "m"]
            .map(OsString::from)
            .to_vec(),
    )
    .unwrap();
    assert_eq!(c.chdir, Some(PathBuf::from("/srv/app")));
    assert_eq!(w.len(), 1, "{w:?}");
    assert!(w[0].contains("--daemonize"), "{w:?}");
}

#[test]
fn set_placeholder_in_files_and_on_the_command_line() {
    let d = Dir::new("setph");
    let ini = d.file(
        "a.ini",
        "[uwsgi]\nset-ph = dir = /var/www\nset-placeholder = name=site\nchdir = %(dir)/%(name)\n\
         pidfile = %(run)/x.pid\n",
    );
    let (flags, w) = run(&["--set-ph", "run=/run", "--ini", &ini]);
    assert_eq!(flags, ["--chdir=/var/www/site", "--pidfile=/run/x.pid"]);
    assert!(w.is_empty(), "{w:?}");
}

#[test]
fn placeholders_name_options_anywhere_in_the_config() {
    let d = Dir::new("order");
    let ini = d.file(
        "a.ini",
        "[uwsgi]\npidfile = %(chdir)/x.pid\nchdir = /srv\nworkers = 3\nthreads = %(workers * 2)\n\
         touch-reload = %(nope)\n",
    );
    let (flags, w) = run(&["--ini", &ini]);
    assert_eq!(
        flags,
        [
            "--pidfile=/srv/x.pid",
            "--chdir=/srv",
            "--workers=3",
            "--threads=6",
            "--touch-reload=%(nope)"
        ]
    );
    assert_eq!(
        w.len(),
        1,
        "an unresolved placeholder in an rwsgi option warns: {w:?}"
    );
}

#[test]
fn booleans() {
    let d = Dir::new("bool");
    let ini = d.file(
        "a.ini",
        "[uwsgi]\nmaster = true\nvacuum = 1\nlazy-apps = yes\nenable-threads = false\n\
         thunder-lock = 0\nsingle-interpreter = no\nmemory-report\nchmod-socket\nneed-app = false\n",
    );
    let (flags, _) = run(&["--ini", &ini]);
    assert_eq!(
        flags,
        [
            "--master",
            "--vacuum",
            "--lazy-apps",
            "--memory-report",
            "--chmod-socket",
            "--need-app=false"
        ]
    );
}

#[test]
fn command_line_after_ini_overrides_it() {
    let d = Dir::new("override");
    let ini = d.file("a.ini", "[uwsgi]\nsocket = :1\nmodule = m\nthreads = 4\n");
    let argv = |a: &[&str]| a.iter().map(OsString::from).collect::<Vec<_>>();
    let (c, _) = load(argv(&["rwsgi", "--ini", &ini, "--threads", "8"])).unwrap();
    assert_eq!(c.threads, 8);
    let (c, _) = load(argv(&["rwsgi", "--threads", "8", "--ini", &ini])).unwrap();
    assert_eq!(c.threads, 4);
}

#[test]
fn environment_and_file_contents() {
    let d = Dir::new("env");
    let secret = d.file("name.txt", "from-file\n");
    std::env::set_var("RWSGI_INI_TEST_SET", "/env");
    std::env::set_var("RWSGI_INI_TEST_EMPTY", "");
    let ini = d.file(
        "a.ini",
        &format!(
            "[uwsgi]\nchdir = $(RWSGI_INI_TEST_SET)/a\npidfile = $(RWSGI_INI_TEST_UNSET:-/d)/p\n\
             env = A=$(RWSGI_INI_TEST_EMPTY-x)\nenv = B=$(RWSGI_INI_TEST_EMPTY:-y)\n\
             env = N=@({secret})\n"
        ),
    );
    let (flags, _) = run(&["--ini", &ini]);
    assert_eq!(
        flags,
        [
            "--chdir=/env/a",
            "--pidfile=/d/p",
            "--env=A=",
            "--env=B=y",
            "--env=N=from-file"
        ]
    );
}

#[test]
fn nested_ini_and_magic_dir_of_each_file() {
    let d = Dir::new("nested");
    d.file(
        "conf/base.ini",
        "[uwsgi]\nchdir = %d\n[extra]\nthreads = 5\n",
    );
    let top = d.file(
        "top.ini",
        "[uwsgi]\nini = %dconf/base.ini\nini = :extra\npidfile = %d%n.pid\n",
    );
    let dir = std::fs::canonicalize(&d.0)
        .unwrap()
        .to_string_lossy()
        .into_owned();
    let (flags, _) = run(&["--ini", &top]);
    assert_eq!(
        flags,
        [
            format!("--chdir={dir}/conf/"),
            "--threads=5".into(),
            format!("--pidfile={dir}/top.pid")
        ]
    );
}

#[test]
fn a_lone_ini_argument_and_errors() {
    let d = Dir::new("lone");
    let ini = d.file("app.ini", "[uwsgi]\nthreads = 2\n");
    assert_eq!(run(&[&ini]).0, ["--threads=2"]);
    let argv = ["rwsgi", "--ini", "/nonexistent/rwsgi.ini"]
        .map(OsString::from)
        .to_vec();
    let err = expand(argv, &Args::command(), &mut Vec::new())
        .err()
        .unwrap();
    assert!(
        err.0.starts_with("--ini /nonexistent/rwsgi.ini: "),
        "{}",
        err.0
    );
    let looping = d.file("loop.ini", "[uwsgi]\nini = %p\n");
    let argv = ["rwsgi", "--ini", &looping].map(OsString::from).to_vec();
    assert!(expand(argv, &Args::command(), &mut Vec::new()).is_err());
}

#[test]
fn log_format_keeps_its_variables() {
    let d = Dir::new("log-format");
    let format =
        r#"%(addr) - %(user) [%(ltime)] "%(method) %(uri) %(proto)" %(status) %(var.HTTP_X_TRACE)"#;
    let ini = d.file(
        "a.ini",
        &format!("[uwsgi]\nsite = shop\nmodule = m\nlog-format = %(site) {format}\n"),
    );
    let (flags, w) = run(&["--ini", &ini]);
    assert!(w.is_empty(), "{w:?}");
    // A placeholder of the same name is substituted, as uWSGI does; the log variables are not.
    assert_eq!(
        flags,
        [
            "--module=m".to_string(),
            format!("--log-format=shop {format}")
        ]
    );
    let (c, w) = load(
        ["rwsgi", "--ini", &ini, "--socket", ":1"]
            .map(OsString::from)
            .to_vec(),
    )
    .unwrap();
    assert!(w.is_empty(), "{w:?}");
    assert_eq!(
        c.log_format,
        Some(crate::log::LogFormat::parse(&format!("shop {format}")))
    );

    let ini = d.file(
        "b.ini",
        "[uwsgi]\nmodule = m\nlog-format = %(bogus) %(status) %(bogus)\n",
    );
    let (_, w) = load(
        ["rwsgi", "--ini", &ini, "--socket", ":1"]
            .map(OsString::from)
            .to_vec(),
    )
    .unwrap();
    assert_eq!(w.len(), 1, "one warning per unknown name: {w:?}");
    assert!(w[0].contains("%(bogus)"), "{w:?}");
}

/// Each file in tests/ini reads as the flags its `; flags:` line gives (`# flags:` in YAML, a
/// top-level "flags" in JSON; see tests/ini/README.md).
#[test]
fn logic_files_read_as_their_flags() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/ini");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| {
            p.extension()
                .is_some_and(|e| e == "ini" || e == "yaml" || e == "json")
        })
        .collect();
    files.sort();
    assert!(files.len() >= 8, "{files:?}");
    let dir_text = format!("{}/", dir.to_string_lossy());
    for file in files {
        let text = std::fs::read_to_string(&file).unwrap();
        let format = file.extension().unwrap().to_string_lossy().into_owned();
        let header = |name: &str| {
            let found = if format == "json" {
                let doc: serde_json::Value = serde_json::from_str(&text).unwrap();
                doc.get(name).and_then(|v| v.as_str()).map(str::to_string)
            } else {
                text.lines().find_map(|l| {
                    let l = l.strip_prefix("; ").or_else(|| l.strip_prefix("# "))?;
                    l.strip_prefix(&format!("{name}:")).map(str::to_string)
                })
            };
            found
                .unwrap_or_else(|| panic!("{}: no {name} header", file.display()))
                .trim()
                .replace("{dir}", &dir_text)
        };
        for pair in header("env").split_whitespace() {
            let (k, v) = pair.split_once('=').unwrap();
            std::env::set_var(k, v);
        }
        let mut flags = vec!["rwsgi".to_string()];
        for piece in header("flags").trim_start_matches("--").split(" --") {
            let (flag, value) = piece.split_once(' ').unwrap_or((piece, ""));
            flags.push(format!("--{flag}"));
            flags.push(value.into());
        }
        flags.extend(["-w", "m", "--socket", ":1"].map(String::from));
        let path = file.to_string_lossy().into_owned();
        let flag = format!("--{format}");
        let from_file = ["rwsgi", &flag, &path, "-w", "m", "--socket", ":1"];
        let (want, _) = load(flags.iter().map(OsString::from).collect()).unwrap();
        let (got, warnings) = load(from_file.iter().map(OsString::from).collect()).unwrap();
        assert_eq!(
            format!("{got:?}"),
            format!("{want:?}"),
            "{} does not read as its flags",
            file.display()
        );
        let unexpected: Vec<_> = warnings
            .iter()
            .filter(|w| !w.contains("unknown placeholder"))
            .collect();
        assert!(unexpected.is_empty(), "{}: {unexpected:?}", file.display());
    }
}

#[test]
fn logic_on_the_command_line() {
    std::env::set_var("RWSGI_INI_CLI_LOGIC", "on");
    let (flags, w) = run(&[
        "--if-env",
        "RWSGI_INI_CLI_LOGIC",
        "--env",
        "A=%(_)",
        "-p",
        "2",
        "--master",
        "--endif",
        "--if-env=RWSGI_INI_CLI_LOGIC_UNSET",
        "--threads",
        "9",
        "--endif",
        "--for",
        "x y",
        "--socket",
        "/tmp/%(_).sock",
        "--endfor",
        "--threads",
        "3",
    ]);
    assert_eq!(
        flags,
        [
            "--env=A=on",
            "--processes=2",
            "--master",
            "--socket=/tmp/x.sock",
            "--socket=/tmp/y.sock",
            "--threads",
            "3"
        ]
    );
    assert!(w.is_empty(), "{w:?}");
}

#[test]
fn an_unclosed_block_names_its_file_and_line() {
    let d = Dir::new("unclosed");
    let ini = d.file(
        "a.ini",
        "[uwsgi]\nsocket = :1\n\nif-env = HOME\nmaster = true\n",
    );
    let argv = ["rwsgi", "--ini", &ini].map(OsString::from).to_vec();
    let err = expand(argv, &Args::command(), &mut Vec::new())
        .err()
        .unwrap();
    assert_eq!(
        err.0,
        format!("{ini}:4: if-env = HOME is never closed (endif/endfor)")
    );
}
