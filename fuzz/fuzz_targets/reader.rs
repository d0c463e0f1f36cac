//! Fuzz target `reader`: feeds the input to `rwsgi_fuzz::reader`, whose oracle is in fuzz/README.md.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| rwsgi_fuzz::reader(data));
