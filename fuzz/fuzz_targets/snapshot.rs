//! Fuzzes the snapshot decoder (see `cairn::fuzzing`).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    cairn::fuzzing::snapshot(data);
});
