#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| rwsgi_fuzz::http(data));
