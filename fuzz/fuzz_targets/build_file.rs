//! The build-file front end: parsing, validation and expansion of arbitrary bytes as build.toml.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| kiln::fuzzing::build_file(data));
