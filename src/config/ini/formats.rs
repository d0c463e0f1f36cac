//! The other config formats uWSGI reads, `--yaml` and `--json`, turned into the same numbered
//! `key = value` pairs an ini section gives, so the logic, placeholders and magic variables apply
//! alike.
//!
//! YAML is read the way uWSGI's own parser reads it (the one PyPI builds use, `core/yaml.c`):
//! line by line, a top-level `section:` and the indented `key: value` lines under it, a key may
//! repeat (`socket` twice binds both; `if-env` … `endif` blocks work). That is why no YAML crate
//! reads it: a YAML mapping cannot hold a key twice, and uWSGI files rely on it. Where rwsgi goes
//! further: a list under a key (`- item` lines, or `[a, b]`) gives the key once per item (uWSGI's
//! parser stops reading at a list), and quotes around a value are removed.
//!
//! JSON is read by serde_json, keeping the keys' order: strings as they are, `true`/`false` as
//! `1`/`0` (`null` is `0`), numbers in decimal, an array as the key once per item, as uWSGI does.

use super::super::ConfigError;

/// A numbered `key = value`.
pub(super) type Pair = (usize, String, String);

/// The pairs of `section` in a YAML file; `None` when the file has no such section.
pub(super) fn yaml(text: &str, section: &str) -> Option<Vec<Pair>> {
    let mut pairs = Vec::new();
    let mut found = false;
    let mut inside = false;
    // The key a `- item` line belongs to, and the line that key was on.
    let mut list_key: Option<(String, usize)> = None;
    for (number, raw) in text.lines().enumerate() {
        let line = strip_comment(raw).trim_end();
        let content = line.trim_start();
        if content.is_empty() || content == "---" {
            continue;
        }
        let top_level = line.len() == content.len();
        if top_level {
            inside = content.strip_suffix(':').map(str::trim_end) == Some(section);
            found |= inside;
            list_key = None;
            continue;
        }
        if !inside {
            continue;
        }
        if let Some(item) = content.strip_prefix('-') {
            if let Some((key, key_line)) = &list_key {
                // The key's own line said nothing: the items are its values.
                if pairs.last().is_some_and(|p: &Pair| p.0 == *key_line) {
                    pairs.pop();
                }
                pairs.push((number + 1, key.clone(), unquote(item.trim())));
            }
            continue;
        }
        let (key, value) = match content.split_once(':') {
            Some((k, v)) => (k.trim(), v.trim()),
            None => (content, ""),
        };
        list_key = value.is_empty().then(|| (key.to_string(), number + 1));
        match value.strip_prefix('[').and_then(|v| v.strip_suffix(']')) {
            Some(items) => {
                for item in items.split(',').map(str::trim).filter(|i| !i.is_empty()) {
                    pairs.push((number + 1, key.into(), unquote(item)));
                }
            }
            None => pairs.push((number + 1, key.into(), unquote(value))),
        }
    }
    found.then_some(pairs)
}

/// `text` without a `#` comment (a `#` at the start or after a blank, outside quotes).
fn strip_comment(text: &str) -> &str {
    let mut quote = None;
    let mut previous = ' ';
    for (i, c) in text.char_indices() {
        match (quote, c) {
            (None, '"' | '\'') => quote = Some(c),
            (Some(q), c) if c == q => quote = None,
            (None, '#') if previous.is_whitespace() => return &text[..i],
            _ => {}
        }
        previous = c;
    }
    text
}

fn unquote(value: &str) -> String {
    let quoted = |q: char| value.len() >= 2 && value.starts_with(q) && value.ends_with(q);
    if quoted('"') || quoted('\'') {
        value[1..value.len() - 1].to_string()
    } else {
        value.to_string()
    }
}

/// The pairs of `section` in a JSON file (numbered by their order); `None` when the file has no
/// such object.
pub(super) fn json(
    text: &str,
    section: &str,
    path: &str,
) -> Result<Option<Vec<Pair>>, ConfigError> {
    let document: serde_json::Value =
        serde_json::from_str(text).map_err(|e| ConfigError(format!("--json {path}: {e}")))?;
    let Some(object) = document.get(section).and_then(|s| s.as_object()) else {
        return Ok(None);
    };
    let scalar = |v: &serde_json::Value| match v {
        serde_json::Value::String(s) => Some(s.clone()),
        serde_json::Value::Bool(b) => Some(if *b { "1" } else { "0" }.into()),
        serde_json::Value::Null => Some("0".into()),
        serde_json::Value::Number(n) => Some(n.to_string()),
        _ => None,
    };
    let mut pairs = Vec::new();
    for (key, value) in object {
        let values: Vec<String> = match value {
            serde_json::Value::Array(items) => items.iter().filter_map(scalar).collect(),
            other => scalar(other).into_iter().collect(),
        };
        for v in values {
            pairs.push((pairs.len() + 1, key.clone(), v));
        }
    }
    Ok(Some(pairs))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kv(pairs: Option<Vec<Pair>>) -> Vec<String> {
        pairs
            .unwrap()
            .into_iter()
            .map(|(_, k, v)| format!("{k}={v}"))
            .collect()
    }

    #[test]
    fn yaml_as_uwsgi_reads_it_and_lists() {
        let text = "# site\nother:\n  threads: 9\nuwsgi:\n  socket: :3031\n  socket: '/tmp/a.sock' # the unix one\n\
                    \n  master: true\n  env:\n    - A=1\n    - \"B=2 # not a comment\"\n  pythonpath: [/a, /b]\n  \
                    if-env: HOME\n  threads: 2\n  endif:\nlater:\n  processes: 3\n";
        assert_eq!(
            kv(yaml(text, "uwsgi")),
            [
                "socket=:3031",
                "socket=/tmp/a.sock",
                "master=true",
                "env=A=1",
                "env=B=2 # not a comment",
                "pythonpath=/a",
                "pythonpath=/b",
                "if-env=HOME",
                "threads=2",
                "endif="
            ]
        );
        assert_eq!(kv(yaml(text, "later")), ["processes=3"]);
        assert!(yaml(text, "missing").is_none());
    }

    #[test]
    fn json_as_uwsgi_reads_it() {
        let text = r#"{"uwsgi": {"socket": [":3031", "/tmp/a.sock"], "master": true, "vacuum": false,
                       "processes": 4, "chdir": null, "nested": {"x": 1}, "module": "app:wsgi"}}"#;
        assert_eq!(
            kv(json(text, "uwsgi", "x.json").unwrap()),
            [
                "socket=:3031",
                "socket=/tmp/a.sock",
                "master=1",
                "vacuum=0",
                "processes=4",
                "chdir=0",
                "module=app:wsgi"
            ]
        );
        assert!(json(text, "other", "x.json").unwrap().is_none());
        assert!(json("{", "uwsgi", "x.json").is_err());
    }
}
