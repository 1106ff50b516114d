//! The `kernel_files` fuzz target: libFuzzer's inputs through `virnodesuspend::fuzzing::kernel_files`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| virnodesuspend::fuzzing::kernel_files(data));
