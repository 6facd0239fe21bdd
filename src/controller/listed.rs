//! The usernames each Connector's last scan listed, kept as hashes: a joiner's create on
//! an app that refuses duplicates needs no read first when the scan saw no such name.
//!
//! Each joiner used to read the app before its create (`Users?filter=userName eq`), to
//! keep Roster off accounts it does not own. On scim2-server that read was a quarter of
//! a joiner's cost. The scan has just listed every account anyway. A name it did not list
//! gets a create straight away. If someone made the account since, the app refuses the
//! create ([`crate::connector::Connector::refuses_duplicates`]) and nothing is touched;
//! the account's status now holds that failure, so the next pass reads first as before.
//! Hashes keep the memory small (8 bytes a name); two names hashing alike only cost a
//! read.

use std::{
    collections::{HashMap, HashSet},
    hash::{DefaultHasher, Hash, Hasher},
    sync::Mutex,
};

use crate::lifecycle::NameCase;

/// The hash a listed name is kept as, in the app's own comparison of names.
pub fn name_hash(case: NameCase, name: &str) -> u64 {
    let mut h = DefaultHasher::new();
    case.key(name).hash(&mut h);
    h.finish()
}

/// One Connector's last listing: the spec it was made under, and the names.
struct Listing {
    generation: Option<i64>,
    names: HashSet<u64>,
}

/// The last listing of each Connector, by `namespace/name`.
#[derive(Default)]
pub struct Listed(Mutex<HashMap<String, Listing>>);

impl Listed {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Listing>> {
        // Each update is one insert: a panic elsewhere cannot tear the map.
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Records a complete listing of `connector` at `generation`.
    pub fn record(&self, connector: &str, generation: Option<i64>, names: HashSet<u64>) {
        self.lock()
            .insert(connector.to_owned(), Listing { generation, names });
    }

    /// Whether the last complete listing of `connector`, made under the same
    /// `generation` of its spec (another spec may name another app), held no account
    /// named `username`. No listing yet: false.
    pub fn unlisted(
        &self,
        connector: &str,
        generation: Option<i64>,
        case: NameCase,
        username: &str,
    ) -> bool {
        self.lock().get(connector).is_some_and(|l| {
            l.generation == generation && !l.names.contains(&name_hash(case, username))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_name_is_unlisted_only_after_a_listing_of_the_same_spec_without_it() {
        let listed = Listed::default();
        let folded = NameCase::Folded;
        assert!(
            !listed.unlisted("ns/scim", Some(1), folded, "ada"),
            "no scan yet"
        );
        listed.record(
            "ns/scim",
            Some(1),
            [name_hash(folded, "Ada")].into_iter().collect(),
        );
        assert!(
            !listed.unlisted("ns/scim", Some(1), folded, "ada"),
            "listed as Ada"
        );
        assert!(listed.unlisted("ns/scim", Some(1), folded, "bob"));
        assert!(
            !listed.unlisted("ns/scim", Some(2), folded, "bob"),
            "the spec changed since: it may name another app"
        );
        assert!(
            !listed.unlisted("ns/ldap", Some(1), folded, "bob"),
            "another Connector"
        );
    }
}
