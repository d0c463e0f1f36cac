//! The `rwsgi` command: the standalone binary, which embeds libpython and starts the interpreter
//! itself. Everything after start-up is shared with the pip-installed entry: see `rwsgi::start`.

use std::ffi::OsString;
use std::process::ExitCode;

fn main() -> ExitCode {
    let argv: Vec<OsString> = std::env::args_os().collect();
    // A reload re-executes this binary; resolved now, so a binary replaced on disk since start-up
    // (renamed over) is still found by its path.
    let program = std::env::current_exe()
        .map(OsString::from)
        .unwrap_or_else(|_| argv[0].clone());
    let reexec = std::iter::once(program)
        .chain(argv.iter().skip(1).cloned())
        .collect();
    ExitCode::from(rwsgi::start::main(argv, reexec))
}
