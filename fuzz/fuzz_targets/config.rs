//! Fuzzes the config decoder (see `cairn::fuzzing`).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    cairn::fuzzing::config(data);
});
