//! The `bus_message` fuzz target: libFuzzer's inputs through `virnodesuspend::fuzzing::bus_message`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| virnodesuspend::fuzzing::bus_message(data));
