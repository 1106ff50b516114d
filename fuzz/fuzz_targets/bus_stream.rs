//! The `bus_stream` fuzz target: libFuzzer's inputs through `virnodesuspend::fuzzing::bus_stream`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| virnodesuspend::fuzzing::bus_stream(data));
