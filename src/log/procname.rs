//! Process names (`--auto-procname`, `--procname-prefix[-spaced]`, `--procname-append`,
//! `--procname`, `--procname-master`): what `ps` and `top` show, `rwsgi master`, `rwsgi worker 1`,
//! `rwsgi log`, as uWSGI users expect `uWSGI master` / `uWSGI worker 1`.

use crate::sys::process;

/// The naming options; present when any of them is given (each turns the naming on, as in uWSGI).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Procname {
    /// Before every name (`--procname-prefix`, or `--procname-prefix-spaced` with its space).
    pub prefix: String,
    /// After every name.
    pub append: String,
    /// `--procname`: every process's name instead of the role.
    pub all: Option<String>,
    /// `--procname-master`: the master's name.
    pub master: Option<String>,
}

/// Which process is being named.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// The master process (`--procname-master`).
    Master,
    /// Worker process `N` (1-based id).
    Worker(usize),
    /// The log process (`--log-master`).
    Log,
}

impl Procname {
    /// The full name of `role`.
    pub fn title(&self, role: Role) -> String {
        let name = match role {
            Role::Master => self.master.clone().or_else(|| self.all.clone()),
            _ => self.all.clone(),
        };
        let name = name.unwrap_or_else(|| match role {
            Role::Master => "rwsgi master".into(),
            Role::Worker(id) => format!("rwsgi worker {id}"),
            Role::Log => "rwsgi log".into(),
        });
        format!("{}{name}{}", self.prefix, self.append)
    }
}

/// Name this process for `role`, when the options ask for names (a failure is only logged).
pub fn name(role: Role) {
    if let Some(procname) = &super::settings::options().procname {
        if let Err(e) = process::set_title(&procname.title(role)) {
            tracing::warn!("cannot set the process name: {e}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn titles() {
        let p = Procname::default();
        assert_eq!(p.title(Role::Master), "rwsgi master");
        assert_eq!(p.title(Role::Worker(2)), "rwsgi worker 2");
        let p = Procname {
            prefix: "shop ".into(),
            append: " [prod]".into(),
            all: Some("shop-app".into()),
            master: Some("shop-master".into()),
        };
        assert_eq!(p.title(Role::Master), "shop shop-master [prod]");
        assert_eq!(p.title(Role::Worker(1)), "shop shop-app [prod]");
        assert_eq!(p.title(Role::Log), "shop shop-app [prod]");
    }
}
