//! `--uid`/`--gid`/`--chown-socket` against the real user database. Switching identity needs
//! root: those tests are `#[ignore]`d with that reason, so a plain `cargo test` as a user lists them
//! as ignored; scripts/test.sh runs them as root with `--include-ignored` (and fails if they fail).
//! The switch itself happens in a fresh copy of this test binary, so the test runner keeps its own
//! identity.

use rwsgi::privileges::{chown, drop_to, group, user};
use std::os::unix::fs::MetadataExt;
use std::process::Command;

const CHILD: &str = "RWSGI_PRIVILEGES_CHILD";

fn require_root() {
    // SAFETY: no preconditions.
    let euid = unsafe { libc::geteuid() };
    assert_eq!(
        euid, 0,
        "these tests switch identity and need root (running as uid {euid})"
    );
}

/// Run test `name` alone in a fresh copy of this binary, as the child; its stdout.
fn run_child(name: &str) -> String {
    let out = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            name,
            "--include-ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD, "1")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "child failed: {stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

/// The child's report: from `marker` to the end of its line (the test runner may print its own
/// progress on the same line).
fn after<'a>(stdout: &'a str, marker: &str) -> &'a str {
    stdout
        .lines()
        .find_map(|l| l.find(marker).map(|i| &l[i..]))
        .unwrap_or_else(|| panic!("no {marker:?} in the child's output:\n{stdout}"))
}

fn nobody() -> (u32, u32) {
    let u = user("nobody").expect("a `nobody` user");
    (u.uid, group("nogroup").expect("a `nogroup` group"))
}

#[test]
fn lookups_take_names_and_numbers() {
    let root = user("root").unwrap();
    assert_eq!((root.uid, root.gid), (0, Some(0)));
    assert_eq!(root.name.unwrap().to_str().unwrap(), "root");
    assert_eq!(user("0").unwrap().uid, 0);
    let unknown = user("4000000").unwrap();
    assert_eq!(
        (unknown.uid, unknown.gid, unknown.name),
        (4000000, None, None)
    );
    assert!(user("no-such-user-rwsgi")
        .unwrap_err()
        .contains("no such user"));
    assert_eq!(group("0").unwrap(), 0);
    assert_eq!(group("root").unwrap(), 0);
    assert!(group("no-such-group-rwsgi")
        .unwrap_err()
        .contains("no such group"));
}

#[test]
#[ignore = "switches identity: needs root (scripts/test.sh runs it as root)"]
fn drop_to_nobody_changes_every_id_for_good() {
    if std::env::var_os(CHILD).is_some() {
        drop_to(Some("nobody"), Some("nogroup")).expect("drop to nobody");
        let mut groups = [0 as libc::gid_t; 64];
        // SAFETY: getters and a buffer of the length given.
        let (uid, euid, gid, egid, n) = unsafe {
            (
                libc::getuid(),
                libc::geteuid(),
                libc::getgid(),
                libc::getegid(),
                libc::getgroups(64, groups.as_mut_ptr()),
            )
        };
        let again = drop_to(Some("root"), None).unwrap_err();
        println!(
            "IDS {uid} {euid} {gid} {egid} {:?} | {again}",
            &groups[..n.max(0) as usize]
        );
        return;
    }
    require_root();
    let stdout = run_child("drop_to_nobody_changes_every_id_for_good");
    let line = after(&stdout, "IDS ");
    let (uid, gid) = nobody();
    assert!(
        line.starts_with(&format!("IDS {uid} {uid} {gid} {gid} [{gid}] |")),
        "expected nobody:nogroup with only nogroup as supplementary group, got {line}"
    );
    assert!(
        line.contains("need root"),
        "switching back must be refused: {line}"
    );
}

#[test]
#[ignore = "switches identity: needs root (scripts/test.sh runs it as root)"]
fn without_root_only_the_current_identity_is_accepted() {
    if std::env::var_os(CHILD).is_some() {
        drop_to(Some("nobody"), Some("nogroup")).expect("drop to nobody");
        // What a reloading master re-executed as nobody does: asks again for the same ids.
        let same = drop_to(Some("nobody"), Some("nogroup"));
        let other = drop_to(Some("nobody"), Some("root"));
        println!("SAME {same:?} OTHER {other:?}");
        return;
    }
    require_root();
    let stdout = run_child("without_root_only_the_current_identity_is_accepted");
    let line = after(&stdout, "SAME ");
    assert!(line.starts_with("SAME Ok(()) OTHER Err("), "{line}");
    assert!(line.contains("need root"), "{line}");
}

#[test]
#[ignore = "switches identity: needs root (scripts/test.sh runs it as root)"]
fn chown_socket_sets_user_and_group() {
    require_root();
    let dir = std::env::temp_dir().join(format!("rwsgi-chown-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("app.sock");
    let _ = std::fs::remove_file(&path);
    let _listener = std::os::unix::net::UnixListener::bind(&path).unwrap();
    let (uid, gid) = nobody();
    chown(&path, "nobody:nogroup").unwrap();
    let meta = std::fs::metadata(&path).unwrap();
    assert_eq!((meta.uid(), meta.gid()), (uid, gid));
    // USER alone leaves the group as it is.
    chown(&path, "root").unwrap();
    let meta = std::fs::metadata(&path).unwrap();
    assert_eq!((meta.uid(), meta.gid()), (0, gid));
    assert!(chown(&path, "no-such-user-rwsgi").is_err());
    std::fs::remove_dir_all(&dir).unwrap();
}
