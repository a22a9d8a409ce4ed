//! Fuzzes the pack_header decoder (see `cairn::fuzzing`).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    cairn::fuzzing::pack_header(data);
});
