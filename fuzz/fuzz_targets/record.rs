//! The `record` fuzz target: libFuzzer's inputs through `virnodesuspend::fuzzing::record`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| virnodesuspend::fuzzing::record(data));
