//! An HR export, read as CSV and JSON and planned against Identities the source owns.
#![no_main]

libfuzzer_sys::fuzz_target!(
    |data: &[u8]| roster::fuzzing::hr_export(&String::from_utf8_lossy(data))
);
