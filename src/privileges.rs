//! Who the server runs as and where its output goes: `--uid`/`--gid` (dropped once the sockets are
//! bound and before Python starts, as uWSGI does), `--chown-socket`, and `--logto`/`--logto2`.
//!
//! Unlike uWSGI, `--uid` without `--gid` also switches to the user's primary group (uWSGI keeps the
//! group it started with, usually root), and the supplementary groups are always the user's own.

use std::ffi::{CStr, CString};
use std::os::fd::AsRawFd;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

/// A user from the password database, or just a number.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    pub uid: libc::uid_t,
    /// The primary group, when the user is in the database.
    pub gid: Option<libc::gid_t>,
    pub name: Option<CString>,
}

/// Buffer size for the reentrant database lookups.
const LOOKUP_BUFFER: usize = 16 << 10;

/// Look a user up by name or number.
pub fn user(spec: &str) -> Result<User, String> {
    let mut pw: libc::passwd = unsafe { std::mem::zeroed() };
    let mut found: *mut libc::passwd = std::ptr::null_mut();
    let mut buf = vec![0 as libc::c_char; LOOKUP_BUFFER];
    let number = spec.parse::<libc::uid_t>().ok();
    let r = match number {
        // SAFETY: valid out-pointers and a buffer of the length given.
        Some(uid) => unsafe {
            libc::getpwuid_r(uid, &mut pw, buf.as_mut_ptr(), buf.len(), &mut found)
        },
        None => {
            let name = CString::new(spec).map_err(|_| format!("bad user name {spec:?}"))?;
            // SAFETY: as above, with a NUL-terminated name.
            unsafe {
                libc::getpwnam_r(
                    name.as_ptr(),
                    &mut pw,
                    buf.as_mut_ptr(),
                    buf.len(),
                    &mut found,
                )
            }
        }
    };
    if r != 0 || found.is_null() {
        return match number {
            Some(uid) => Ok(User {
                uid,
                gid: None,
                name: None,
            }),
            None => Err(format!("no such user: {spec}")),
        };
    }
    // SAFETY: getpwnam_r filled `pw`, whose name points into `buf`, still alive here.
    let name = unsafe { CStr::from_ptr(pw.pw_name) }.to_owned();
    Ok(User {
        uid: pw.pw_uid,
        gid: Some(pw.pw_gid),
        name: Some(name),
    })
}

/// Look a group up by name or number.
pub fn group(spec: &str) -> Result<libc::gid_t, String> {
    if let Ok(gid) = spec.parse::<libc::gid_t>() {
        return Ok(gid);
    }
    let name = CString::new(spec).map_err(|_| format!("bad group name {spec:?}"))?;
    let mut gr: libc::group = unsafe { std::mem::zeroed() };
    let mut found: *mut libc::group = std::ptr::null_mut();
    let mut buf = vec![0 as libc::c_char; LOOKUP_BUFFER];
    // SAFETY: valid out-pointers, a NUL-terminated name and a buffer of the length given.
    let r = unsafe {
        libc::getgrnam_r(
            name.as_ptr(),
            &mut gr,
            buf.as_mut_ptr(),
            buf.len(),
            &mut found,
        )
    };
    if r != 0 || found.is_null() {
        return Err(format!("no such group: {spec}"));
    }
    Ok(gr.gr_gid)
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
    // SAFETY: a NUL-terminated path.
    if unsafe { libc::chown(c_path.as_ptr(), uid, gid) } != 0 {
        return Err(format!(
            "--chown-socket {spec} on {}: {}",
            path.display(),
            std::io::Error::last_os_error()
        ));
    }
    Ok(())
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
    // SAFETY: these getters have no preconditions.
    let (euid, egid) = unsafe { (libc::geteuid(), libc::getegid()) };
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
        // SAFETY: plain syscalls with valid arguments.
        if unsafe { libc::setgid(gid) } != 0 {
            return Err(format!(
                "setgid({gid}): {}",
                std::io::Error::last_os_error()
            ));
        }
        let groups = match user.as_ref().and_then(|u| u.name.as_ref()) {
            // SAFETY: a NUL-terminated user name.
            Some(name) => unsafe { libc::initgroups(name.as_ptr(), gid) },
            // SAFETY: one valid gid.
            None => unsafe { libc::setgroups(1, &gid) },
        };
        if groups != 0 {
            return Err(format!(
                "cannot set the supplementary groups: {}",
                std::io::Error::last_os_error()
            ));
        }
        tracing::info!("setgid() to {gid}");
    }
    if let Some(user) = &user {
        // SAFETY: a plain syscall.
        if unsafe { libc::setuid(user.uid) } != 0 {
            return Err(format!(
                "setuid({}): {}",
                user.uid,
                std::io::Error::last_os_error()
            ));
        }
        // SAFETY: as above; succeeding here would mean the drop did not stick.
        if user.uid != 0 && unsafe { libc::setuid(0) } == 0 {
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
        // SAFETY: dup2 from an open descriptor onto a standard one.
        if unsafe { libc::dup2(file.as_raw_fd(), target) } < 0 {
            return Err(format!(
                "--logto {}: {}",
                path.display(),
                std::io::Error::last_os_error()
            ));
        }
    }
    Ok(())
}
