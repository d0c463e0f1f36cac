//! Fuzz target `vars`: feeds the input to `rwsgi_fuzz::vars`, whose oracle is in fuzz/README.md.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| rwsgi_fuzz::vars(data));
