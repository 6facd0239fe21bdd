//! A value escaped into DNs and filters, and a DN from the server parsed.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let (value, dn) = roster::fuzzing::halves(data);
    roster::fuzzing::ldap_names(&value, &dn);
});
