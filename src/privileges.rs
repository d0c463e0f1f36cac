//! Who the server runs as and where its output goes: `--uid`/`--gid` (dropped once the sockets are
//! bound and before Python starts, as uWSGI does), `--chown-socket`, and `--logto`/`--logto2`.
//!
//! Unlike uWSGI, `--uid` without `--gid` also switches to the user's primary group (uWSGI keeps the
//! group it started with, usually root), and the supplementary groups are always the user's own.

use crate::sys::fd;
use crate::sys::process::{self, UserKey};
use std::ffi::CString;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

/// A user from the password database, or just a number.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    /// The numeric user id.
    pub uid: libc::uid_t,
    /// The primary group, when the user is in the database.
    pub gid: Option<libc::gid_t>,
    /// The login name, when the user is in the database (for `initgroups(3)`).
    pub name: Option<CString>,
}

/// Look a user up by name or number.
pub fn user(spec: &str) -> Result<User, String> {
    let number = spec.parse::<libc::uid_t>().ok();
    let entry = match number {
        Some(uid) => process::user_entry(UserKey::Id(uid)),
        None => {
            let name = CString::new(spec).map_err(|_| format!("bad user name {spec:?}"))?;
            process::user_entry(UserKey::Name(&name))
        }
    };
    match (entry, number) {
        (Some(pw), _) => Ok(User {
            uid: pw.uid,
            gid: Some(pw.gid),
            name: Some(pw.name),
        }),
        (None, Some(uid)) => Ok(User {
            uid,
            gid: None,
            name: None,
        }),
        (None, None) => Err(format!("no such user: {spec}")),
    }
}

/// Look a group up by name or number.
pub fn group(spec: &str) -> Result<libc::gid_t, String> {
    if let Ok(gid) = spec.parse::<libc::gid_t>() {
        return Ok(gid);
    }
    let name = CString::new(spec).map_err(|_| format!("bad group name {spec:?}"))?;
    process::group_id(&name).ok_or_else(|| format!("no such group: {spec}"))
}

/// `--chown-socket USER[:GROUP]` on a bound unix socket's path.
pub fn chown(path: &Path, spec: &str) -> Result<(), String> {
    let (user_spec, group_spec) = match spec.split_once(':') {
        Some((u, g)) => (u, Some(g)),
        None => (spec, None),
    };
    let uid = user(user_spec)?.uid;
    let gid = match group_spec {
        Some(g) => group(g)?,
        // -1: leave the group as it is.
        None => libc::gid_t::MAX,
    };
    let c_path = CString::new(path.as_os_str().as_bytes())
        .map_err(|_| format!("bad socket path {}", path.display()))?;
    process::chown(&c_path, uid, gid)
        .map_err(|e| format!("--chown-socket {spec} on {}: {e}", path.display()))
}

/// Switch to `uid`/`gid` (either may be absent) for good: group, supplementary groups, then user.
/// Already running as them (a reload re-executed the dropped master) is fine; anything else
/// without root is an error.
pub fn drop_to(uid: Option<&str>, gid: Option<&str>) -> Result<(), String> {
    if uid.is_none() && gid.is_none() {
        return Ok(());
    }
    let user = uid
        .map(user)
        .transpose()
        .map_err(|e| format!("--uid: {e}"))?;
    let gid = match gid {
        Some(g) => Some(group(g).map_err(|e| format!("--gid: {e}"))?),
        None => user.as_ref().and_then(|u| u.gid),
    };
    let (euid, egid) = process::effective_ids();
    if euid != 0 {
        let same = user.as_ref().is_none_or(|u| u.uid == euid) && gid.is_none_or(|g| g == egid);
        return if same {
            Ok(())
        } else {
            Err(format!(
                "--uid/--gid need root to switch identity; running as uid {euid} gid {egid}"
            ))
        };
    }
    if let Some(gid) = gid {
        process::set_gid(gid).map_err(|e| format!("setgid({gid}): {e}"))?;
        let name = user.as_ref().and_then(|u| u.name.as_deref());
        process::set_groups(name, gid)
            .map_err(|e| format!("cannot set the supplementary groups: {e}"))?;
        tracing::info!("setgid() to {gid}");
    }
    if let Some(user) = &user {
        process::set_uid(user.uid).map_err(|e| format!("setuid({}): {e}", user.uid))?;
        // Succeeding here would mean the drop did not stick.
        if user.uid != 0 && process::set_uid(0).is_ok() {
            return Err("the process could become root again after setuid".into());
        }
        tracing::info!("setuid() to {}", user.uid);
    }
    Ok(())
}

/// Send stdout and stderr (the log, the request lines, the app's prints and tracebacks) to the end
/// of `path`, created with mode 0640 if missing.
pub fn log_to(path: &Path) -> Result<(), String> {
    let file = std::fs::OpenOptions::new()
        .append(true)
        .create(true)
        .mode(0o640)
        .open(path)
        .map_err(|e| format!("--logto {}: {e}", path.display()))?;
    for target in [libc::STDOUT_FILENO, libc::STDERR_FILENO] {
        fd::redirect(&file, target).map_err(|e| format!("--logto {}: {e}", path.display()))?;
    }
    Ok(())
}
