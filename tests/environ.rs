//! The environ rules (PEP 3333 and where rwsgi departs from uWSGI), checked against a live
//! interpreter in this test process.

use pyo3::prelude::*;
use pyo3::types::{PyDict, PyString};
use rwsgi::python::environ::{EnvironTemplate, Routes};
use std::sync::Once;

fn python() {
    static INIT: Once = Once::new();
    INIT.call_once(Python::initialize);
}

/// A template for one process (no file_wrapper needed here).
fn template(py: Python<'_>, multithread: bool, trust: bool, routes: Routes) -> EnvironTemplate {
    EnvironTemplate::new(
        py,
        multithread,
        false,
        trust,
        py.None().into_bound(py),
        routes,
    )
    .unwrap()
}

fn build(trust_forwarded: bool, vars: &[(&[u8], &[u8])]) -> Vec<(String, String)> {
    python();
    Python::attach(|py| {
        let template = template(py, true, trust_forwarded, Routes::default());
        let (environ, _) = template
            .build(py, vars.iter().copied(), py.None().into_bound(py))
            .unwrap();
        let mut out: Vec<(String, String)> = environ
            .iter()
            .filter_map(|(k, v)| {
                let k: String = k.extract().unwrap();
                v.cast::<PyString>()
                    .ok()
                    .map(|s| (k, s.to_cow().unwrap().into_owned()))
            })
            .collect();
        out.sort();
        out
    })
}

fn get<'a>(env: &'a [(String, String)], key: &str) -> Option<&'a str> {
    env.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
}

const NGINX_GET: &[(&[u8], &[u8])] = &[
    (b"QUERY_STRING", b"a=1"),
    (b"REQUEST_METHOD", b"GET"),
    (b"CONTENT_TYPE", b""),
    (b"CONTENT_LENGTH", b""),
    (b"REQUEST_URI", b"/p?a=1"),
    (b"PATH_INFO", b"/p"),
    (b"SERVER_PROTOCOL", b"HTTP/1.1"),
    (b"REQUEST_SCHEME", b"http"),
    (b"REMOTE_ADDR", b"127.0.0.1"),
    (b"SERVER_NAME", b"localhost"),
    (b"SERVER_PORT", b"80"),
    (b"HTTP_HOST", b"localhost"),
];

#[test]
fn every_var_is_a_str_and_script_name_is_present() {
    let env = build(false, NGINX_GET);
    for (k, v) in NGINX_GET {
        let k = std::str::from_utf8(k).unwrap();
        assert_eq!(get(&env, k), Some(std::str::from_utf8(v).unwrap()), "{k}");
    }
    assert_eq!(get(&env, "SCRIPT_NAME"), Some(""));
    assert_eq!(get(&env, "wsgi.url_scheme"), Some("http"));
}

#[test]
fn values_are_latin1() {
    let env = build(
        false,
        &[(b"PATH_INFO", b"/caf\xe9"), (b"HTTP_X_NAME", b"\xff\x00z")],
    );
    assert_eq!(get(&env, "PATH_INFO"), Some("/caf\u{e9}"));
    assert_eq!(get(&env, "HTTP_X_NAME"), Some("\u{ff}\u{0}z"));
}

#[test]
fn script_name_is_stripped_from_path_info() {
    let env = build(
        false,
        &[(b"SCRIPT_NAME", b"/app"), (b"PATH_INFO", b"/app/x/y")],
    );
    assert_eq!(get(&env, "SCRIPT_NAME"), Some("/app"));
    assert_eq!(get(&env, "PATH_INFO"), Some("/x/y"));
    let env = build(
        false,
        &[(b"SCRIPT_NAME", b"/app/"), (b"PATH_INFO", b"/app")],
    );
    assert_eq!(
        (get(&env, "SCRIPT_NAME"), get(&env, "PATH_INFO")),
        (Some("/app"), Some(""))
    );
    // Only at a segment boundary.
    let env = build(
        false,
        &[(b"SCRIPT_NAME", b"/app"), (b"PATH_INFO", b"/application")],
    );
    assert_eq!(get(&env, "PATH_INFO"), Some("/application"));
    // A bare "/" is no prefix (wsgiref.validate refuses SCRIPT_NAME "/").
    let env = build(false, &[(b"SCRIPT_NAME", b"/"), (b"PATH_INFO", b"/x")]);
    assert_eq!(
        (get(&env, "SCRIPT_NAME"), get(&env, "PATH_INFO")),
        (Some(""), Some("/x"))
    );
}

#[test]
fn repeated_vars_are_joined_like_a_proxy_joins_headers() {
    let env = build(
        false,
        &[
            (b"HTTP_COOKIE", b"a=1"),
            (b"HTTP_X_DUP", b"one"),
            (b"HTTP_COOKIE", b"b=2"),
            (b"HTTP_X_DUP", b"two"),
            (b"HTTP_ACCEPT", b"text/html"),
            (b"HTTP_ACCEPT", b"*/*"),
        ],
    );
    assert_eq!(get(&env, "HTTP_COOKIE"), Some("a=1; b=2"));
    assert_eq!(get(&env, "HTTP_X_DUP"), Some("one, two"));
    assert_eq!(get(&env, "HTTP_ACCEPT"), Some("text/html, */*"));
}

#[test]
fn a_repeated_server_var_is_overridden_not_joined() {
    // `include uwsgi_params;` then `uwsgi_param SERVER_NAME example.com;`: nginx sends both.
    let env = build(
        false,
        &[
            (b"SERVER_NAME", b"localhost"),
            (b"REQUEST_METHOD", b"GET"),
            (b"SERVER_NAME", b"example.com"),
            (b"REQUEST_METHOD", b"GET"),
            (b"X_CUSTOM", b"a"),
            (b"X_CUSTOM", b"b"),
        ],
    );
    assert_eq!(get(&env, "SERVER_NAME"), Some("example.com"));
    assert_eq!(get(&env, "REQUEST_METHOD"), Some("GET"));
    assert_eq!(get(&env, "X_CUSTOM"), Some("b"));
}

#[test]
fn forbidden_and_server_owned_keys_are_dropped() {
    let env = build(
        false,
        &[
            (b"HTTP_CONTENT_TYPE", b"text/plain"),
            (b"HTTP_CONTENT_LENGTH", b"5"),
            (b"CONTENT_TYPE", b"text/plain"),
            (b"wsgi.url_scheme", b"gopher"),
        ],
    );
    assert_eq!(get(&env, "HTTP_CONTENT_TYPE"), None);
    assert_eq!(get(&env, "HTTP_CONTENT_LENGTH"), None);
    assert_eq!(get(&env, "CONTENT_TYPE"), Some("text/plain"));
    assert_eq!(get(&env, "wsgi.url_scheme"), Some("http"));
}

#[test]
fn url_scheme_rules() {
    let scheme = |trust, vars: &[(&[u8], &[u8])]| {
        get(&build(trust, vars), "wsgi.url_scheme").map(str::to_string)
    };
    assert_eq!(
        scheme(false, &[(b"HTTPS", b"on")]).as_deref(),
        Some("https")
    );
    assert_eq!(scheme(false, &[(b"HTTPS", b"1")]).as_deref(), Some("https"));
    assert_eq!(
        scheme(false, &[(b"HTTPS", b"off")]).as_deref(),
        Some("http")
    );
    assert_eq!(
        scheme(false, &[(b"REQUEST_SCHEME", b"https")]).as_deref(),
        Some("https")
    );
    assert_eq!(
        scheme(false, &[(b"UWSGI_SCHEME", b"https"), (b"HTTPS", b"")]).as_deref(),
        Some("https")
    );
    assert_eq!(
        scheme(false, &[(b"UWSGI_SCHEME", b"ws")]).as_deref(),
        Some("ws")
    );
    // Any client can send X-Forwarded-Proto: ignored unless the proxy is trusted.
    let forwarded: &[(&[u8], &[u8])] = &[
        (b"REQUEST_SCHEME", b"http"),
        (b"HTTP_X_FORWARDED_PROTO", b"https"),
    ];
    assert_eq!(scheme(false, forwarded).as_deref(), Some("http"));
    assert_eq!(scheme(true, forwarded).as_deref(), Some("https"));
    assert_eq!(
        scheme(true, &[(b"HTTP_X_FORWARDED_SSL", b"on")]).as_deref(),
        Some("https")
    );
}

#[test]
fn request_vars_never_change_the_process() {
    let env = build(
        false,
        &[
            (b"UWSGI_SETENV", b"RWSGI_TEST_INJECTED=1"),
            (b"UWSGI_FILE", b"/tmp/evil.py"),
        ],
    );
    assert_eq!(get(&env, "UWSGI_SETENV"), Some("RWSGI_TEST_INJECTED=1"));
    assert!(std::env::var_os("RWSGI_TEST_INJECTED").is_none());
    Python::attach(|py| {
        let os_environ = py.import("os").unwrap().getattr("environ").unwrap();
        assert!(!os_environ.contains("RWSGI_TEST_INJECTED").unwrap());
        let modules = py.import("sys").unwrap().getattr("modules").unwrap();
        assert!(!modules
            .cast::<PyDict>()
            .unwrap()
            .keys()
            .iter()
            .any(|k| k.to_string().contains("evil")));
    });
}

#[test]
fn each_request_gets_its_own_dict() {
    python();
    Python::attach(|py| {
        let template = template(py, false, false, Routes::default());
        let (first, _) = template
            .build(py, NGINX_GET.iter().copied(), py.None().into_bound(py))
            .unwrap();
        first.set_item("mine", 1).unwrap();
        first.set_item("wsgi.version", "changed").unwrap();
        let (second, _) = template
            .build(py, NGINX_GET.iter().copied(), py.None().into_bound(py))
            .unwrap();
        assert!(!second.contains("mine").unwrap());
        assert_eq!(
            second
                .get_item("wsgi.version")
                .unwrap()
                .unwrap()
                .to_string(),
            "(1, 0)"
        );
        assert!(!second
            .get_item("wsgi.multithread")
            .unwrap()
            .unwrap()
            .extract::<bool>()
            .unwrap());
    });
}

/// (app, SCRIPT_NAME, PATH_INFO) for a request with these path vars, under `routes`.
fn routed(routes: &Routes, script_name: &str, path_info: &str) -> (Option<usize>, String, String) {
    python();
    Python::attach(|py| {
        let template = template(py, false, false, routes.clone());
        let mut vars: Vec<(&[u8], &[u8])> = vec![
            (b"REQUEST_METHOD", b"GET"),
            (b"PATH_INFO", path_info.as_bytes()),
        ];
        if !script_name.is_empty() {
            vars.push((b"SCRIPT_NAME", script_name.as_bytes()));
        }
        let (environ, seen) = template
            .build(py, vars.into_iter(), py.None().into_bound(py))
            .unwrap();
        let get = |k: &str| environ.get_item(k).unwrap().unwrap().to_string();
        (seen.app, get("SCRIPT_NAME"), get("PATH_INFO"))
    })
}

fn mounts(points: &[&str], manage_script_name: bool) -> Routes {
    Routes::new(
        points.iter().map(|p| p.as_bytes().to_vec()),
        manage_script_name,
    )
}

#[test]
fn manage_script_name_picks_the_longest_mountpoint_on_a_slash_boundary() {
    let routes = mounts(&["", "/app", "/app/admin", "/blog"], true);
    let r = |path| routed(&routes, "", path);
    assert_eq!(r("/app/x"), (Some(1), "/app".into(), "/x".into()));
    assert_eq!(r("/app"), (Some(1), "/app".into(), "".into()));
    assert_eq!(
        r("/app/admin/users"),
        (Some(2), "/app/admin".into(), "/users".into())
    );
    assert_eq!(
        r("/application"),
        (Some(0), "".into(), "/application".into())
    );
    assert_eq!(r("/blog/"), (Some(3), "/blog".into(), "/".into()));
    assert_eq!(r("/"), (Some(0), "".into(), "/".into()));
    // Without a default app, an unmatched path has no app.
    let routes = mounts(&["/app", "/blog"], true);
    assert_eq!(
        routed(&routes, "", "/other"),
        (None, "".into(), "/other".into())
    );
}

#[test]
fn without_manage_script_name_the_proxys_script_name_picks_the_app() {
    let routes = mounts(&["", "/app"], false);
    assert_eq!(
        routed(&routes, "/app", "/app/x"),
        (Some(1), "/app".into(), "/x".into())
    );
    // PATH_INFO alone does not pick a mounted app.
    assert_eq!(
        routed(&routes, "", "/app/x"),
        (Some(0), "".into(), "/app/x".into())
    );
    // One app: it takes every request, whatever the path.
    let one = mounts(&[""], true);
    assert_eq!(
        routed(&one, "", "/app/x"),
        (Some(0), "".into(), "/app/x".into())
    );
}
