//! Fuzz target `response`: feeds the input to `rwsgi_fuzz::response`, whose oracle is in fuzz/README.md.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| rwsgi_fuzz::response(data));
