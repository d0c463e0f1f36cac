//! The substitutions made once every ini file is read: `$(ENV)`, `@(file)` and `%(placeholder)`
//! with uWSGI's left-to-right placeholder math.

use super::super::ConfigError;

/// How deep `%(a)` may lead through placeholders holding placeholders; stops reference cycles.
const MAX_PLACEHOLDER_DEPTH: usize = 16;

/// Replace each `<sigil>(inner)` in `text` with `resolve(inner)`; `None` keeps it as written.
pub(super) fn substitute(
    text: &str,
    sigil: char,
    mut resolve: impl FnMut(&str) -> Result<Option<String>, ConfigError>,
) -> Result<String, ConfigError> {
    let open = format!("{sigil}(");
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(start) = rest.find(&open) {
        let inner_start = start + open.len();
        let Some(len) = rest[inner_start..].find(')') else {
            break;
        };
        let end = inner_start + len + 1;
        out.push_str(&rest[..start]);
        match resolve(&rest[inner_start..end - 1])? {
            Some(value) => out.push_str(&value),
            None => out.push_str(&rest[start..end]),
        }
        rest = &rest[end..];
    }
    out.push_str(rest);
    Ok(out)
}

/// `$(NAME)`, `$(NAME:-DEFAULT)` (default when unset or empty), `$(NAME-DEFAULT)` (when unset).
pub(super) fn env_value(spec: &str) -> String {
    let var = |name: &str| std::env::var(name).ok();
    if let Some((name, default)) = spec.split_once(":-") {
        var(name)
            .filter(|v| !v.is_empty())
            .unwrap_or_else(|| default.into())
    } else if let Some((name, default)) = spec.split_once('-') {
        var(name).unwrap_or_else(|| default.into())
    } else {
        var(spec).unwrap_or_default()
    }
}

/// `@(path)`: the file's content without its final newline.
pub(super) fn read_included(path: &str) -> Result<String, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|e| ConfigError(format!("@({path}): {e}")))?;
    let text = text.strip_suffix('\n').unwrap_or(&text);
    Ok(text.strip_suffix('\r').unwrap_or(text).to_string())
}

/// Expand `%(name)` and uWSGI's pipeline math `%(a + b * 2)` (left to right; adjacent items
/// concatenate); what cannot be resolved stays as written.
pub(super) fn placeholders(text: &str, table: &[(String, String)], depth: usize) -> String {
    let lookup = |name: &str| {
        let value = table
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())?;
        Some(if depth < MAX_PLACEHOLDER_DEPTH && value.contains("%(") {
            placeholders(value, table, depth + 1)
        } else {
            value.to_string()
        })
    };
    let resolve = |inner: &str| {
        if !inner.contains(' ') {
            return Ok(lookup(inner));
        }
        let mut current: Option<String> = None;
        let mut op = "";
        for token in inner.split(' ').filter(|t| !t.is_empty()) {
            let number = |s: &str| s.parse::<i64>().unwrap_or(0);
            match token {
                "+" | "-" | "*" | "/" => op = token,
                "++" | "--" => {
                    let step = if token == "++" { 1 } else { -1 };
                    current = current.map(|c| (number(&c) + step).to_string());
                    op = "";
                }
                _ => {
                    let value = match token.parse::<i64>() {
                        Ok(_) => token.to_string(),
                        Err(_) => match lookup(token) {
                            Some(v) => v,
                            None => return Ok(None),
                        },
                    };
                    let (a, b) = (current.as_deref().map(number).unwrap_or(0), number(&value));
                    current = Some(match (current.take(), op) {
                        (None, _) => value,
                        (Some(c), "") => c + &value,
                        (Some(_), "+") => (a + b).to_string(),
                        (Some(_), "-") => (a - b).to_string(),
                        (Some(_), "*") => (a * b).to_string(),
                        (Some(_), _) => a.checked_div(b).unwrap_or(0).to_string(),
                    });
                    op = "";
                }
            }
        }
        Ok(current)
    };
    substitute(text, '%', resolve).unwrap_or_else(|_| text.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn first_definition_wins_and_unknown_stays() {
        let t = table(&[("a", "1"), ("a", "2"), ("b", "%(a)x")]);
        assert_eq!(placeholders("%(a)/%(b)/%(c)/%(", &t, 0), "1/1x/%(c)/%(");
    }

    #[test]
    fn math_is_a_left_to_right_pipeline() {
        let t = table(&[("foo", "17"), ("bar", "30"), ("two", "2"), ("nine", "9")]);
        assert_eq!(placeholders("%(foo + bar + 3)", &t, 0), "50");
        assert_eq!(placeholders("%(foo + bar + 3 * 2)", &t, 0), "100");
        assert_eq!(placeholders("%(foo ++)", &t, 0), "18");
        assert_eq!(
            placeholders("%(two nine ++)", &t, 0),
            "30",
            "adjacent items concatenate"
        );
        assert_eq!(placeholders("%(foo / 0)", &t, 0), "0");
        assert_eq!(placeholders("%(foo + missing)", &t, 0), "%(foo + missing)");
    }

    #[test]
    fn cycles_stop() {
        let t = table(&[("a", "%(b)"), ("b", "%(a)")]);
        assert!(placeholders("%(a)", &t, 0).contains("%("));
    }

    #[test]
    fn environment_defaults() {
        std::env::set_var("RWSGI_SUBST_TEST", "v");
        assert_eq!(env_value("RWSGI_SUBST_TEST"), "v");
        assert_eq!(env_value("RWSGI_SUBST_TEST_UNSET"), "");
        assert_eq!(env_value("RWSGI_SUBST_TEST_UNSET:-d"), "d");
        assert_eq!(env_value("RWSGI_SUBST_TEST_UNSET-d"), "d");
        let got = substitute("a$(RWSGI_SUBST_TEST)b$(x", '$', |n| Ok(Some(env_value(n))));
        assert_eq!(got.unwrap(), "avb$(x", "an unclosed reference stays");
    }

    #[test]
    fn missing_included_file_is_an_error() {
        let err = read_included("/nonexistent/rwsgi-include").err().unwrap();
        assert!(
            err.0.starts_with("@(/nonexistent/rwsgi-include): "),
            "{}",
            err.0
        );
    }
}
