//! One [`Catalog`] shared by every reconcile until a Role, RoleBinding or Connector spec
//! changes. Building it compiles every binding's CEL expression; at 10,000 identities a
//! catalog per reconcile was 10,000 compilations of the same expressions.
//!
//! The catalog is keyed by a fingerprint of the specs it reads, taken from the caches at
//! each call, so it can never be staler than the caches themselves: no invalidation
//! hook to miss, no ordering between a watch event and a reconcile to get wrong.

use std::{
    hash::{DefaultHasher, Hash, Hasher},
    sync::{Arc, Mutex},
};

use kube::{Resource, ResourceExt};
use serde::Serialize;

use crate::{
    api::{Connector, Role, RoleBinding},
    lifecycle::resolve::Catalog,
};

/// The current catalog and the fingerprint it was built for.
#[derive(Default)]
pub struct SharedCatalog {
    current: Mutex<Option<(u64, Arc<Catalog>)>>,
}

impl SharedCatalog {
    /// The catalog for these caches' contents: the shared one while the specs are
    /// unchanged, otherwise a new one, which is then shared.
    pub fn get(
        &self,
        roles: &[Arc<Role>],
        bindings: &[Arc<RoleBinding>],
        connectors: &[Arc<Connector>],
    ) -> Arc<Catalog> {
        let print = fingerprint(roles, bindings, connectors);
        if let Some((p, catalog)) = self.lock().as_ref()
            && *p == print
        {
            return catalog.clone();
        }
        // Built outside the lock: other reconciles keep the old one meanwhile. Two
        // builds of the same fingerprint at once are harmless, one wins.
        let built = Arc::new(Catalog::new(roles, bindings, connectors));
        *self.lock() = Some((print, built.clone()));
        built
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Option<(u64, Arc<Catalog>)>> {
        // The guarded value is replaced whole, so a panic elsewhere cannot leave it torn.
        self.current.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// Identifies the specs a catalog is built from, in any order of the caches: each object
/// by kind, uid, namespace, name and generation (which the apiserver raises on every spec
/// change and never on a status write). An object without a generation — built in
/// memory, never stored — is identified by its spec itself.
pub fn fingerprint(
    roles: &[Arc<Role>],
    bindings: &[Arc<RoleBinding>],
    connectors: &[Arc<Connector>],
) -> u64 {
    let mut each: Vec<u64> = roles
        .iter()
        .map(|r| object_print("Role", r.as_ref(), &r.spec))
        .chain(
            bindings
                .iter()
                .map(|b| object_print("RoleBinding", b.as_ref(), &b.spec)),
        )
        .chain(
            connectors
                .iter()
                .map(|c| object_print("Connector", c.as_ref(), &c.spec)),
        )
        .collect();
    each.sort_unstable();
    let mut h = DefaultHasher::new();
    each.hash(&mut h);
    h.finish()
}

fn object_print<K: Resource, S: Serialize>(kind: &str, obj: &K, spec: &S) -> u64 {
    let mut h = DefaultHasher::new();
    kind.hash(&mut h);
    obj.meta().uid.hash(&mut h);
    obj.namespace().hash(&mut h);
    obj.name_any().hash(&mut h);
    match obj.meta().generation {
        Some(g) => g.hash(&mut h),
        // Serializing a derived spec does not fail; were it to, the empty text still
        // differs from any real spec's, so the catalog is rebuilt rather than reused.
        None => serde_json::to_string(spec).unwrap_or_default().hash(&mut h),
    }
    h.finish()
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn binding(name: &str, generation: Option<i64>, who: &str) -> Arc<RoleBinding> {
        let mut b = RoleBinding::new(
            name,
            serde_json::from_value(json!({"role": "r", "subjects": {"identities": [who]}}))
                .unwrap(),
        );
        b.metadata.namespace = Some("acme".into());
        b.metadata.generation = generation;
        Arc::new(b)
    }

    #[test]
    fn the_fingerprint_ignores_cache_order_and_follows_spec_changes() {
        let (a, b) = (binding("a", Some(1), "ada"), binding("b", Some(1), "bob"));
        let one = fingerprint(&[], &[a.clone(), b.clone()], &[]);
        assert_eq!(one, fingerprint(&[], &[b.clone(), a.clone()], &[]));
        let a2 = binding("a", Some(2), "ada");
        assert_ne!(
            one,
            fingerprint(&[], &[a2, b.clone()], &[]),
            "a spec change"
        );
        assert_ne!(
            one,
            fingerprint(&[], std::slice::from_ref(&a), &[]),
            "a binding gone"
        );
        // A status write leaves the generation alone.
        let mut a_status = (*a).clone();
        a_status.metadata.resource_version = Some("99".into());
        assert_eq!(one, fingerprint(&[], &[Arc::new(a_status), b], &[]));
        // Without a generation, the spec itself counts.
        let (x, y) = (binding("x", None, "ada"), binding("x", None, "bob"));
        assert_ne!(fingerprint(&[], &[x], &[]), fingerprint(&[], &[y], &[]));
    }

    #[test]
    fn one_catalog_is_shared_until_the_specs_change() {
        let shared = SharedCatalog::default();
        let a = binding("a", Some(1), "ada");
        let first = shared.get(&[], std::slice::from_ref(&a), &[]);
        let again = shared.get(&[], &[a], &[]);
        assert!(Arc::ptr_eq(&first, &again));
        let changed = shared.get(&[], &[binding("a", Some(2), "bob")], &[]);
        assert!(!Arc::ptr_eq(&first, &changed));
    }
}
