//! Mount routing: which app a request goes to (`--mount`, `--manage-script-name`), as uWSGI picks.

/// How a request finds its app: by mountpoint (`--mount`), as uWSGI does.
#[derive(Debug, Clone, Default)]
pub struct Routes {
    /// Each app's mountpoint, by app index (`''` for the default app).
    mountpoints: Vec<Vec<u8>>,
    /// The app mounted at `''`.
    default: Option<usize>,
    /// `--manage-script-name`: pick by the longest mountpoint PATH_INFO starts with.
    manage_script_name: bool,
}

impl Routes {
    /// Routes for apps mounted at `mountpoints` (by app index; `''` is the default app).
    pub fn new(mountpoints: impl Iterator<Item = Vec<u8>>, manage_script_name: bool) -> Routes {
        let mountpoints: Vec<Vec<u8>> = mountpoints.collect();
        let default = mountpoints.iter().position(|m| m.is_empty());
        Routes {
            mountpoints,
            default,
            manage_script_name,
        }
    }

    /// The app for a request, and the part of `path_info` that is its mountpoint when
    /// `--manage-script-name` moves it to `SCRIPT_NAME`.
    pub(super) fn route(&self, path_info: &[u8], script_name: &[u8]) -> (Option<usize>, usize) {
        if self.mountpoints.len() <= 1 {
            return (self.default, 0);
        }
        if self.manage_script_name {
            let longest = self
                .mountpoints
                .iter()
                .enumerate()
                .filter(|(_, m)| !m.is_empty() && path_info.starts_with(m))
                .filter(|(_, m)| matches!(path_info.get(m.len()), None | Some(b'/')))
                .max_by_key(|(_, m)| m.len());
            if let Some((i, m)) = longest {
                return (Some(i), m.len());
            }
        }
        // Without it, nginx picks: `uwsgi_param SCRIPT_NAME /app` names the mountpoint.
        let script = trim_trailing_slashes(script_name);
        let named = (!script.is_empty())
            .then(|| self.mountpoints.iter().position(|m| m.as_slice() == script))
            .flatten();
        (named.or(self.default), 0)
    }
}

/// `s` without its trailing slashes (`/app/` is mounted as `/app`, `/` as the default app).
pub(super) fn trim_trailing_slashes(mut s: &[u8]) -> &[u8] {
    while let Some(rest) = s.strip_suffix(b"/") {
        s = rest;
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slashes_trimmed() {
        assert_eq!(trim_trailing_slashes(b"/app/"), b"/app");
        assert_eq!(trim_trailing_slashes(b"/"), b"");
        assert_eq!(trim_trailing_slashes(b""), b"");
    }
}
