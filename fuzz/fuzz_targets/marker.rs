//! Fuzzes the prune marker decoders (see `cairn::fuzzing`).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    cairn::fuzzing::marker(data);
});
