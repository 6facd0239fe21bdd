//! A SCIM server's answer, parsed as a page of Users and shown as an error detail.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| roster::fuzzing::scim_answer(data));
