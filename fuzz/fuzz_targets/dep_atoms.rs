#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| ramboot::fuzzing::dep_atoms(data));
