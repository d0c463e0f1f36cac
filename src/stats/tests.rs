//! The stats document parsed back (by a strict little JSON reader) and checked field by field.

use super::*;
use std::collections::BTreeMap;

/// Just enough JSON to check the renderer: a strict parser that fails on anything malformed.
#[derive(Debug, PartialEq)]
enum J {
    Num(i64),
    Str(String),
    Arr(Vec<J>),
    Obj(BTreeMap<String, J>),
}

impl J {
    fn get(&self, key: &str) -> &J {
        match self {
            J::Obj(map) => map.get(key).unwrap_or_else(|| panic!("no key {key:?}")),
            other => panic!("{other:?} is not an object"),
        }
    }
    fn num(&self) -> i64 {
        match self {
            J::Num(n) => *n,
            other => panic!("{other:?} is not a number"),
        }
    }
    fn str(&self) -> &str {
        match self {
            J::Str(s) => s,
            other => panic!("{other:?} is not a string"),
        }
    }
    fn arr(&self) -> &[J] {
        match self {
            J::Arr(items) => items,
            other => panic!("{other:?} is not an array"),
        }
    }
}

fn parse(text: &str) -> J {
    let mut chars = text.trim_end().chars().peekable();
    let value = value(&mut chars);
    assert_eq!(chars.next(), None, "trailing text");
    value
}

type Chars<'a> = std::iter::Peekable<std::str::Chars<'a>>;

fn skip_ws(c: &mut Chars<'_>) {
    while c.next_if(|ch| ch.is_ascii_whitespace()).is_some() {}
}

fn value(c: &mut Chars<'_>) -> J {
    skip_ws(c);
    let v = match c.peek().copied() {
        Some('{') => {
            c.next();
            let mut map = BTreeMap::new();
            skip_ws(c);
            if c.next_if_eq(&'}').is_none() {
                loop {
                    let J::Str(key) = value(c) else {
                        panic!("object key is not a string")
                    };
                    skip_ws(c);
                    assert_eq!(c.next(), Some(':'));
                    assert!(map.insert(key, value(c)).is_none(), "duplicate key");
                    skip_ws(c);
                    match c.next() {
                        Some(',') => continue,
                        Some('}') => break,
                        other => panic!("unexpected {other:?} in object"),
                    }
                }
            }
            J::Obj(map)
        }
        Some('[') => {
            c.next();
            let mut items = Vec::new();
            skip_ws(c);
            if c.next_if_eq(&']').is_none() {
                loop {
                    items.push(value(c));
                    skip_ws(c);
                    match c.next() {
                        Some(',') => continue,
                        Some(']') => break,
                        other => panic!("unexpected {other:?} in array"),
                    }
                }
            }
            J::Arr(items)
        }
        Some('"') => {
            c.next();
            let mut s = String::new();
            loop {
                match c.next().expect("unterminated string") {
                    '"' => break,
                    '\\' => match c.next().expect("dangling escape") {
                        'n' => s.push('\n'),
                        'r' => s.push('\r'),
                        't' => s.push('\t'),
                        'u' => {
                            let hex: String = c.by_ref().take(4).collect();
                            let n = u32::from_str_radix(&hex, 16).expect("bad \\u escape");
                            s.push(char::from_u32(n).expect("bad code point"));
                        }
                        e @ ('"' | '\\' | '/') => s.push(e),
                        e => panic!("bad escape \\{e}"),
                    },
                    ch => {
                        assert!(u32::from(ch) >= 0x20, "raw control character in string");
                        s.push(ch)
                    }
                }
            }
            J::Str(s)
        }
        _ => {
            let mut digits = String::new();
            while let Some(ch) = c.next_if(|ch| ch.is_ascii_digit() || *ch == '-') {
                digits.push(ch);
            }
            J::Num(digits.parse().expect("not a JSON value"))
        }
    };
    skip_ws(c);
    v
}

fn snapshot(board: &Scoreboard, sockets: Vec<SocketInfo>) -> Snapshot<'_> {
    Snapshot {
        board,
        sockets,
        master_pid: 4242,
        cwd: "/srv/\"app\"\\x\n\u{1}".into(),
        memory_report: false,
    }
}

#[test]
fn renders_uwsgi_fields_with_uwsgi_units() {
    let board = Scoreboard::new(2, 2).unwrap();
    board.spawned(1, 100);
    let w = board.worker(1);
    w.requests.store(4, Relaxed);
    w.delta_requests.store(3, Relaxed);
    w.exceptions.store(1, Relaxed);
    w.running_time.store(1000, Relaxed);
    w.tx.store(2720, Relaxed);
    w.rss.store(1 << 20, Relaxed);
    board.core(1, 1).requests.store(4, Relaxed);
    board
        .core(1, 1)
        .request_start
        .store(1_700_000_000_250_000, Relaxed);
    let sockets = vec![SocketInfo {
        name: "127.0.0.1:3031".into(),
        queue: 3,
        max_queue: 100,
    }];
    let doc = parse(&render(&snapshot(&board, sockets)));

    assert_eq!(doc.get("version").str(), VERSION);
    assert_eq!(doc.get("pid").num(), 4242);
    assert_eq!(doc.get("listen_queue").num(), 3);
    assert_eq!(doc.get("load").num(), 1);
    assert_eq!(doc.get("cwd").str(), "/srv/\"app\"\\x\n\u{1}");
    doc.get("uid").num();
    doc.get("gid").num();
    assert_eq!(doc.get("locks").arr().len(), LOCKS.len());
    let sock = &doc.get("sockets").arr()[0];
    assert_eq!(sock.get("name").str(), "127.0.0.1:3031");
    assert_eq!(sock.get("proto").str(), "uwsgi");
    assert_eq!(sock.get("max_queue").num(), 100);

    let workers = doc.get("workers").arr();
    assert_eq!(workers.len(), 2);
    let w1 = &workers[0];
    assert_eq!(w1.get("id").num(), 1);
    assert_eq!(w1.get("pid").num(), 100);
    assert_eq!(w1.get("status").str(), "busy");
    assert_eq!(w1.get("requests").num(), 4);
    assert_eq!(w1.get("delta_requests").num(), 3);
    assert_eq!(w1.get("avg_rt").num(), 250);
    assert_eq!(w1.get("rss").num(), 0, "rss is 0 without --memory-report");
    assert_eq!(w1.get("tx").num(), 2720);
    assert!(w1.get("last_spawn").num() > 1_600_000_000, "epoch seconds");
    assert_eq!(w1.get("apps").arr()[0].get("requests").num(), 3);
    let cores = w1.get("cores").arr();
    assert_eq!(cores.len(), 2);
    assert_eq!(cores[0].get("in_request").num(), 0);
    assert_eq!(cores[0].get("req_info"), &J::Obj(BTreeMap::new()));
    assert_eq!(cores[1].get("id").num(), 1);
    assert_eq!(cores[1].get("in_request").num(), 1);
    assert_eq!(
        cores[1].get("req_info").get("request_start").num(),
        1_700_000_000
    );
    assert_eq!(cores[1].get("vars").arr().len(), 0);

    let w2 = &workers[1];
    assert_eq!(w2.get("status").str(), "cheap", "a slot with no process");
    assert_eq!(w2.get("avg_rt").num(), 0, "no requests, no division");
}

#[test]
fn idle_worker_and_memory_report() {
    let board = Scoreboard::new(1, 1).unwrap();
    board.spawned(1, 7);
    board.worker(1).rss.store(123, Relaxed);
    let mut snap = snapshot(&board, Vec::new());
    snap.memory_report = true;
    let doc = parse(&render(&snap));
    let w = &doc.get("workers").arr()[0];
    assert_eq!(w.get("status").str(), "idle");
    assert_eq!(w.get("rss").num(), 123);
    assert_eq!(doc.get("listen_queue").num(), 0);
    assert_eq!(doc.get("sockets").arr().len(), 0);
}

#[test]
fn strings_are_escaped() {
    let mut out = String::new();
    push_str(&mut out, "a\"b\\c\td\u{0}\u{1f}é");
    assert_eq!(out, r#""a\"b\\c\td\u0000\u001fé""#);
    assert_eq!(parse(&out), J::Str("a\"b\\c\td\u{0}\u{1f}é".into()));
}

#[test]
fn http_wrap_frames_the_document() {
    let wrapped = http_wrap("{}\n");
    assert!(wrapped.starts_with("HTTP/1.0 200 OK\r\n"));
    assert!(wrapped.contains("Content-Type: application/json\r\n"));
    assert!(wrapped.ends_with("Content-Length: 3\r\n\r\n{}\n"));
}
