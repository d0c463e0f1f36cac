//! Link against the libpython that `PYO3_PYTHON` (or `python3`) names, and record its directory as an
//! rpath so the binary loads that library rather than an older system copy of the same soname.
fn main() {
    pyo3_build_config::add_libpython_rpath_link_args();
    // cfg(Py_3_12) and friends: code for newer CPythons only (dict watchers).
    pyo3_build_config::use_pyo3_cfgs();
    println!("cargo:rerun-if-env-changed=PYO3_PYTHON");
}
