//! An entitlement string parsed as a Kubernetes grant, and the names derived from it.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let (entitlement, username) = roster::fuzzing::halves(data);
    roster::fuzzing::kubernetes_grant(&entitlement, &username);
});
