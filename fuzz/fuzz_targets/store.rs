//! The store loader: arbitrary bytes as `<out>/.kiln/store`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| kiln::fuzzing::store(data));
