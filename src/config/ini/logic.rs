//! uWSGI's configuration logic: `if-env`, `if-opt`, `if-exists`, `if-file`, `if-dir` (and their
//! `if-not-` forms), `if-hostname`, `for`, `for-glob`, `for-readline`, `for-times`, closed by
//! `endif`/`endfor`/`end`. Inside a body, `%(_)` is the value the condition found or the current item.
//!
//! The lines of a file (or of a command line) become a tree of blocks first, so an unclosed block
//! is an error naming where it opened, then the tree runs, handing each applied line to a [`Sink`].
//!
//! Where rwsgi differs from uWSGI 2.0: blocks nest (uWSGI stops with "recursive logic in options is
//! not supported" when a condition inside a true block is met, and lets the first `endif` in a false
//! block close the outer one), and a block left open at the end of a file is an error (uWSGI lets it
//! run on into the next file and the command line).

use super::super::ConfigError;
use std::path::Path;

/// One `key = value` and where it was written (`file:line`, or `command line`).
#[derive(Debug, Clone)]
pub(in crate::config) struct Line {
    pub key: String,
    pub value: String,
    pub at: String,
}

/// What the running configuration offers a block: a place for applied lines, and for `if-opt`
/// the value of an option set so far.
pub(in crate::config) trait Sink {
    fn apply(&mut self, line: Line) -> Result<(), ConfigError>;
    fn option(&self, name: &str) -> Option<String>;
}

/// The keys that open a block.
const OPENERS: &[&str] = &[
    "if-env",
    "ifenv",
    "if-not-env",
    "if-opt",
    "if-not-opt",
    "if-exists",
    "ifexists",
    "if-not-exists",
    "if-file",
    "if-not-file",
    "if-dir",
    "ifdir",
    "if-not-dir",
    "if-hostname",
    "if-not-hostname",
    "for",
    "for-glob",
    "for-readline",
    "for-times",
];

/// The keys that close one.
const CLOSERS: &[&str] = &["endif", "end-if", "endfor", "end-for", "end"];

/// Whether `key` opens a block.
pub(in crate::config) fn opens(key: &str) -> bool {
    OPENERS.contains(&key)
}

/// Whether `key` closes a block.
pub(in crate::config) fn closes(key: &str) -> bool {
    CLOSERS.contains(&key)
}

enum Node {
    Line(Line),
    Block { open: Line, body: Vec<Node> },
}

/// Group `lines` into blocks. A closer with no open block is only warned about (uWSGI ignores it).
fn tree(lines: Vec<Line>, warnings: &mut Vec<String>) -> Result<Vec<Node>, ConfigError> {
    let mut stack: Vec<(Line, Vec<Node>)> = Vec::new();
    let mut top = Vec::new();
    for line in lines {
        if opens(&line.key) {
            stack.push((line, Vec::new()));
        } else if closes(&line.key) {
            match stack.pop() {
                Some((open, body)) => {
                    let node = Node::Block { open, body };
                    match stack.last_mut() {
                        Some((_, outer)) => outer.push(node),
                        None => top.push(node),
                    }
                }
                None => warnings.push(format!(
                    "{}: {} without a block to close",
                    line.at, line.key
                )),
            }
        } else {
            match stack.last_mut() {
                Some((_, body)) => body.push(Node::Line(line)),
                None => top.push(Node::Line(line)),
            }
        }
    }
    match stack.pop() {
        Some((open, _)) => Err(ConfigError(format!(
            "{}: {} = {} is never closed (endif/endfor)",
            open.at, open.key, open.value
        ))),
        None => Ok(top),
    }
}

/// Run `lines` through the logic, giving each line that applies to `sink` in order.
pub(in crate::config) fn run(
    lines: Vec<Line>,
    sink: &mut dyn Sink,
    warnings: &mut Vec<String>,
) -> Result<(), ConfigError> {
    let nodes = tree(lines, warnings)?;
    run_nodes(nodes, None, sink)
}

/// `%(_)` in `value` replaced with `current`, when there is one.
fn underscore(value: &str, current: Option<&str>) -> String {
    match current {
        Some(u) => value.replace("%(_)", u),
        None => value.to_string(),
    }
}

fn run_nodes(
    nodes: Vec<Node>,
    current: Option<&str>,
    sink: &mut dyn Sink,
) -> Result<(), ConfigError> {
    for node in nodes {
        match node {
            Node::Line(mut line) => {
                line.value = underscore(&line.value, current);
                sink.apply(line)?;
            }
            Node::Block { open, body } => {
                let arg = underscore(&open.value, current);
                for item in items(&open, &arg, &*sink)? {
                    run_nodes(clone_nodes(&body), item.as_deref(), sink)?;
                }
            }
        }
    }
    Ok(())
}

fn clone_nodes(nodes: &[Node]) -> Vec<Node> {
    nodes
        .iter()
        .map(|n| match n {
            Node::Line(l) => Node::Line(l.clone()),
            Node::Block { open, body } => Node::Block {
                open: open.clone(),
                body: clone_nodes(body),
            },
        })
        .collect()
}

/// How many times a block's body runs, each with its `%(_)` (`None`: left as written, as uWSGI
/// does for an `if-not-env` whose variable is unset). A false condition runs it no time.
fn items(open: &Line, arg: &str, sink: &dyn Sink) -> Result<Vec<Option<String>>, ConfigError> {
    let once = |cond: bool, value: Option<String>| if cond { vec![value] } else { Vec::new() };
    let path = Path::new(arg);
    Ok(match open.key.as_str() {
        "if-env" | "ifenv" => {
            let found = compare(arg, |name| std::env::var(name).ok());
            once(found.is_some(), found)
        }
        "if-not-env" => negated(arg, |name| std::env::var(name).ok()),
        "if-opt" => {
            let found = compare(arg, |name| sink.option(name));
            once(found.is_some(), found)
        }
        "if-not-opt" => negated(arg, |name| sink.option(name)),
        "if-exists" | "ifexists" => once(path.exists(), Some(arg.into())),
        "if-not-exists" => once(!path.exists(), Some(arg.into())),
        "if-file" => once(path.is_file(), Some(arg.into())),
        "if-not-file" => once(!path.is_file(), Some(arg.into())),
        "if-dir" | "ifdir" => once(path.is_dir(), Some(arg.into())),
        "if-not-dir" => once(!path.is_dir(), Some(arg.into())),
        "if-hostname" => once(super::magic::hostname() == arg, Some(arg.into())),
        "if-not-hostname" => once(super::magic::hostname() != arg, Some(arg.into())),
        "for" => arg
            .split(' ')
            .filter(|t| !t.is_empty())
            .map(|t| Some(t.into()))
            .collect(),
        "for-times" => {
            let n: u32 = arg.trim().parse().unwrap_or(0);
            (1..=n).map(|i| Some(i.to_string())).collect()
        }
        "for-glob" => glob_items(arg).into_iter().map(Some).collect(),
        "for-readline" => std::fs::read_to_string(arg)
            .map_err(|e| ConfigError(format!("{}: for-readline = {arg}: {e}", open.at)))?
            .lines()
            .map(|l| Some(l.trim_end_matches('\r').to_string()))
            .collect(),
        other => unreachable!("{other} is not a block opener"),
    })
}

/// `NAME` or `NAME=VALUE` against `lookup`: the value found when NAME is set (and equals VALUE).
fn compare(arg: &str, lookup: impl Fn(&str) -> Option<String>) -> Option<String> {
    let (name, wanted) = match arg.split_once('=') {
        Some((name, wanted)) => (name, Some(wanted)),
        None => (arg, None),
    };
    lookup(name).filter(|v| wanted.is_none_or(|w| w == v))
}

/// `if-not-env`/`if-not-opt`: true when NAME is unset, or set to something other than VALUE.
fn negated(arg: &str, lookup: impl Fn(&str) -> Option<String>) -> Vec<Option<String>> {
    let (name, wanted) = match arg.split_once('=') {
        Some((name, wanted)) => (name, Some(wanted)),
        None => (arg, None),
    };
    match (lookup(name), wanted) {
        (None, _) => vec![None],
        (Some(v), Some(w)) if v != w => vec![Some(v)],
        _ => Vec::new(),
    }
}

/// The paths `pattern` matches, sorted, directories with a trailing `/`; the pattern itself when
/// nothing matches (glob(3) with `GLOB_MARK | GLOB_NOCHECK`, as uWSGI calls it).
fn glob_items(pattern: &str) -> Vec<String> {
    let mut found: Vec<String> = glob::glob(pattern)
        .map(|paths| {
            paths
                .filter_map(Result::ok)
                .map(|p| {
                    let mut s = p.to_string_lossy().into_owned();
                    if p.is_dir() && !s.ends_with('/') {
                        s.push('/');
                    }
                    s
                })
                .collect()
        })
        .unwrap_or_default();
    if found.is_empty() {
        found.push(pattern.into());
    }
    found.sort();
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Default)]
    struct Collect(Vec<(String, String)>);

    impl Sink for Collect {
        fn apply(&mut self, line: Line) -> Result<(), ConfigError> {
            self.0.push((line.key, line.value));
            Ok(())
        }
        fn option(&self, name: &str) -> Option<String> {
            self.0
                .iter()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.clone())
        }
    }

    fn lines(text: &str) -> Vec<Line> {
        text.lines()
            .enumerate()
            .map(|(i, l)| {
                let (k, v) = l.split_once('=').unwrap_or((l, ""));
                Line {
                    key: k.trim().into(),
                    value: v.trim().into(),
                    at: format!("t.ini:{}", i + 1),
                }
            })
            .collect()
    }

    fn eval(text: &str) -> Result<(Vec<String>, Vec<String>), ConfigError> {
        let mut sink = Collect::default();
        let mut warnings = Vec::new();
        run(lines(text), &mut sink, &mut warnings)?;
        Ok((
            sink.0
                .into_iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect(),
            warnings,
        ))
    }

    #[test]
    fn conditions_on_the_environment() {
        std::env::set_var("RWSGI_LOGIC_SET", "abc");
        std::env::set_var("RWSGI_LOGIC_EMPTY", "");
        let (out, _) = eval(
            "if-env = RWSGI_LOGIC_SET\nenv = A=%(_)\nendif\n\
             if-env = RWSGI_LOGIC_EMPTY\nenv = E=[%(_)]\nendif\n\
             if-env = RWSGI_LOGIC_UNSET\nenv = NO\nendif\n\
             if-env = RWSGI_LOGIC_SET=abc\nenv = EQ\nendif\n\
             if-env = RWSGI_LOGIC_SET=abd\nenv = NO\nendif\n\
             if-not-env = RWSGI_LOGIC_UNSET\nenv = N=%(_)\nendif\n\
             if-not-env = RWSGI_LOGIC_SET\nenv = NO\nendif\n\
             if-not-env = RWSGI_LOGIC_SET=x\nenv = NE=%(_)\nend\n",
        )
        .unwrap();
        assert_eq!(
            out,
            [
                "env=A=abc",
                "env=E=[]",
                "env=EQ",
                "env=N=%(_)",
                "env=NE=abc"
            ]
        );
    }

    #[test]
    fn if_opt_sees_only_earlier_options() {
        let (out, _) = eval(
            "socket = :1\nif-opt = socket\nenv = S=%(_)\nendif\nif-opt = later\nenv = NO\nendif\n\
             later = 1\nif-not-opt = socket=:2\nenv = NS\nendif\nif-opt = socket=:1\nenv = EQ\nendif\n",
        )
        .unwrap();
        assert_eq!(
            out,
            ["socket=:1", "env=S=:1", "later=1", "env=NS", "env=EQ"]
        );
    }

    #[test]
    fn paths() {
        let dir = std::env::temp_dir();
        let d = dir.to_string_lossy();
        let text = format!(
            "if-exists = {d}\na = %(_)\nendif\nif-dir = {d}\nb\nendif\nif-file = {d}\nno\nendif\n\
             if-not-file = {d}\nc\nendif\nif-not-exists = /nonexistent/x\nd = %(_)\nendif\n\
             if-not-dir = {d}\nno\nendif\n"
        );
        let (out, _) = eval(&text).unwrap();
        assert_eq!(
            out,
            [
                format!("a={d}"),
                "b=".into(),
                "c=".into(),
                "d=/nonexistent/x".into()
            ]
        );
    }

    #[test]
    fn loops_repeat_every_body_line() {
        let (out, _) = eval("for = a  b c\nsocket = /tmp/%(_).sock\nenv = X=%(_)\nendfor\nfor-times = 2\nn = %(_)\nendfor").unwrap();
        assert_eq!(
            out,
            [
                "socket=/tmp/a.sock",
                "env=X=a",
                "socket=/tmp/b.sock",
                "env=X=b",
                "socket=/tmp/c.sock",
                "env=X=c",
                "n=1",
                "n=2"
            ]
        );
    }

    #[test]
    fn blocks_nest_and_false_bodies_never_apply() {
        std::env::set_var("RWSGI_LOGIC_NEST", "1");
        let (out, _) = eval(
            "for = x y\nif-env = RWSGI_LOGIC_NEST\nenv = %(_)\nendif\nitem = %(_)\nendfor\n\
             if-env = RWSGI_LOGIC_UNSET2\nif-env = RWSGI_LOGIC_NEST\nenv = NO1\nendif\nenv = NO2\nendif\n\
             for = p q\nif-not-env = RWSGI_LOGIC_UNSET3\nv = %(_)\nendif\nendfor\n",
        )
        .unwrap();
        assert_eq!(
            out,
            ["env=1", "item=x", "env=1", "item=y", "v=%(_)", "v=%(_)"],
            "the innermost block's %(_) wins"
        );
    }

    #[test]
    fn unclosed_blocks_fail_and_stray_closers_warn() {
        let err = eval("a = 1\nfor = x\nb = %(_)\n").err().unwrap();
        assert_eq!(err.0, "t.ini:2: for = x is never closed (endif/endfor)");
        let (out, w) = eval("endif\na = 1\n").unwrap();
        assert_eq!(out, ["a=1"]);
        assert_eq!(w, ["t.ini:1: endif without a block to close"]);
    }

    #[test]
    fn glob_and_readline() {
        let dir = std::env::temp_dir().join(format!("rwsgi-logic-{}", std::process::id()));
        std::fs::create_dir_all(dir.join("sub")).unwrap();
        std::fs::write(dir.join("b.conf"), "one\ntwo\r\n\nthree").unwrap();
        std::fs::write(dir.join("a.conf"), "").unwrap();
        let d = dir.to_string_lossy();
        let (out, _) = eval(&format!(
            "for-glob = {d}/*\ng = %(_)\nendfor\nfor-glob = {d}/*.none\nn = %(_)\nendfor\n\
             for-readline = {d}/b.conf\nl = %(_)\nendfor\n"
        ))
        .unwrap();
        assert_eq!(
            out,
            [
                format!("g={d}/a.conf"),
                format!("g={d}/b.conf"),
                format!("g={d}/sub/"),
                format!("n={d}/*.none"),
                "l=one".into(),
                "l=two".into(),
                "l=".into(),
                "l=three".into()
            ]
        );
        assert!(eval("for-readline = /nonexistent/x\na\nendfor").is_err());
        std::fs::remove_dir_all(dir).unwrap();
    }
}
