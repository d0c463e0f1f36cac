use super::*;
use std::os::unix::fs::symlink;

/// A fresh directory tree: root/{a.css, sub/index.html, big.txt, big.txt.gz}, a secret beside it,
/// and a symlink inside pointing at the secret.
fn tree(name: &str) -> (PathBuf, PathBuf) {
    let base = std::env::temp_dir().join(format!("rwsgi-statics-{name}-{}", std::process::id()));
    let _ = fs::remove_dir_all(&base);
    let root = base.join("root");
    fs::create_dir_all(root.join("sub")).unwrap();
    fs::write(root.join("a.css"), "body{}").unwrap();
    fs::write(root.join("sub/index.html"), "<p>").unwrap();
    fs::write(root.join("big.txt"), "0123456789").unwrap();
    fs::write(root.join("big.txt.gz"), "gz").unwrap();
    fs::write(root.join("%2e%2e"), "literal").unwrap();
    fs::write(base.join("secret"), "s").unwrap();
    symlink(base.join("secret"), root.join("link")).unwrap();
    symlink(root.join("a.css"), root.join("inside-link.css")).unwrap();
    (base, root)
}

fn rules(root: &Path, keep_prefix: bool, gzip: bool) -> StaticRules {
    StaticRules::new(
        vec![StaticMap {
            prefix: "/static".into(),
            dir: root.to_path_buf(),
            keep_prefix,
        }],
        vec!["index.html".into()],
        &[],
        vec![ExpiresRule::Type("text/css".into(), 60)],
        gzip,
    )
    .unwrap()
}

fn file(r: Resolution) -> StaticFile {
    match r {
        Resolution::File(f) => f,
        other => panic!("not a file: {other:?}"),
    }
}

#[test]
fn maps_prefix_to_directory() {
    let (_base, root) = tree("map");
    let r = rules(&root, false, false);
    let f = file(r.resolve(b"/static/a.css", false));
    assert_eq!(f.content_type, "text/css");
    assert_eq!(f.expires, Some(60));
    assert_eq!(f.len, 6);
    assert_eq!(file(r.resolve(b"/static/sub/", false)).len, 3, "index file");
    assert_eq!(file(r.resolve(b"/static//./a.css", false)).len, 6);
    assert_eq!(file(r.resolve(b"/static/inside-link.css", false)).len, 6);
    assert_eq!(r.resolve(b"/staticx/a.css", false), Resolution::NotMapped);
    assert_eq!(r.resolve(b"/static/missing", false), Resolution::NotMapped);
    assert_eq!(r.resolve(b"/other", false), Resolution::NotMapped);
}

#[test]
fn never_outside_the_directory() {
    let (_base, root) = tree("escape");
    let r = rules(&root, false, false);
    for bad in [
        &b"/static/../secret"[..],
        b"/static/%2e%2e/secret",
        b"/static/%2E%2E%2fsecret",
        b"/static/sub/../../secret",
        b"/static/link",
    ] {
        match r.resolve(bad, false) {
            Resolution::Refused { status: 403, .. } => {}
            other => panic!("{}: {other:?}", String::from_utf8_lossy(bad)),
        }
    }
    assert!(matches!(
        r.resolve(b"/static/a%00.css", false),
        Resolution::Refused { status: 400, .. }
    ));
    // Decoded once: %252e is the literal file name "%2e".
    assert_eq!(file(r.resolve(b"/static/%252e%252e", false)).len, 7);
}

#[test]
fn static_map2_keeps_the_prefix_and_gzip_is_chosen() {
    let (base, root) = tree("map2");
    fs::create_dir_all(base.join("static")).unwrap();
    fs::write(base.join("static/x.js"), "js").unwrap();
    let r = rules(&base, true, true);
    assert_eq!(
        file(r.resolve(b"/static/x.js", false)).content_type,
        "text/javascript"
    );
    let r = rules(&root, false, true);
    let f = file(r.resolve(b"/static/big.txt", true));
    assert!(f.gzip && f.len == 2 && f.content_type == "text/plain");
    assert!(!file(r.resolve(b"/static/big.txt", false)).gzip);
}

#[test]
fn conditions_and_ranges() {
    let f = StaticFile {
        path: PathBuf::from("/x"),
        len: 10,
        mtime: 784_111_777,
        content_type: "text/plain".into(),
        gzip: false,
        expires: None,
    };
    let etag = f.etag();
    let c = |inm: Option<&'static str>, ims: Option<&'static str>, range: Option<&'static str>| {
        f.answer(&Conditions {
            if_none_match: inm.map(str::as_bytes),
            if_modified_since: ims.map(str::as_bytes),
            range: range.map(str::as_bytes),
            if_range: None,
        })
    };
    let leaked: &'static str = Box::leak(etag.clone().into_boxed_str());
    assert_eq!(c(Some(leaked), None, None), Answer::NotModified);
    assert_eq!(
        c(
            Some("\"other\""),
            Some("Sun, 06 Nov 1994 08:49:37 GMT"),
            None
        ),
        Answer::Full
    );
    assert_eq!(
        c(None, Some("Sun, 06 Nov 1994 08:49:37 GMT"), None),
        Answer::NotModified
    );
    assert_eq!(
        c(None, Some("Sun, 06 Nov 1994 08:49:36 GMT"), None),
        Answer::Full
    );
    assert_eq!(
        c(None, None, Some("bytes=2-4")),
        Answer::Partial { start: 2, end: 5 }
    );
    assert_eq!(
        c(None, None, Some("bytes=7-")),
        Answer::Partial { start: 7, end: 10 }
    );
    assert_eq!(
        c(None, None, Some("bytes=-3")),
        Answer::Partial { start: 7, end: 10 }
    );
    assert_eq!(
        c(None, None, Some("bytes=5-100")),
        Answer::Partial { start: 5, end: 10 }
    );
    assert_eq!(c(None, None, Some("bytes=10-")), Answer::Unsatisfiable);
    assert_eq!(c(None, None, Some("bytes=0-1,3-4")), Answer::Full);
    assert_eq!(c(None, None, Some("items=0-1")), Answer::Full);
    let (status, fields) = f.fields(Answer::Partial { start: 2, end: 5 }, UNIX_EPOCH);
    assert_eq!(status, 206);
    assert!(fields.contains(&("Content-Range", "bytes 2-4/10".into())));
    assert!(fields.contains(&("Last-Modified", "Sun, 06 Nov 1994 08:49:37 GMT".into())));
}
