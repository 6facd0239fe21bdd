//! A RoleBinding's CEL subject expression compiled within its limits and evaluated.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    roster::fuzzing::cel_subjects(&String::from_utf8_lossy(data));
});
