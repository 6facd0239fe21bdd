//! What one watch event means for the controllers, once the cache has applied it. Pure:
//! no client required.
//!
//! kube's reflector buffers a listing (`Init` … `InitApply` … `InitDone`) and swaps it
//! into the cache only at `InitDone`. An object forwarded to its controller while the
//! listing is still buffered is not in the cache yet; kube's applier then drops the
//! request (`ObjectNotFound`) and nothing asks again. That is how Identities created
//! while a watch re-listed were never reconciled. So a listing's objects are forwarded
//! only at `InitDone`. A re-list also carries no `Delete` events: objects that vanished
//! while the watch was away are found by comparing the cache before and after.

use std::{collections::HashMap, sync::Arc};

use kube::{Resource, ResourceExt, runtime::watcher};

/// What to do after one event.
#[derive(Debug, PartialEq)]
pub enum Step<K> {
    /// Send to the kind's own controller.
    Reconcile(K),
    /// Tell the other controllers this object changed or went (fan-out).
    Changed(K),
}

/// Follows one watch's listings.
pub struct Relay<K> {
    /// Objects of the listing in progress, held until the cache holds them.
    listing: Vec<K>,
    /// The cache as it was when the listing began, by name and namespace.
    before: HashMap<(Option<String>, String), Arc<K>>,
    /// Whether a first listing has completed (the first one reconciles everything, and
    /// has no "before" to compare with).
    listed: bool,
}

impl<K> Default for Relay<K> {
    fn default() -> Self {
        Self {
            listing: Vec::new(),
            before: HashMap::new(),
            listed: false,
        }
    }
}

fn key<K: Resource>(obj: &K) -> (Option<String>, String) {
    (obj.namespace(), obj.name_any())
}

impl<K: Resource + Clone> Relay<K> {
    /// The steps for `event`. `cached` is the cache's content at this moment (read only
    /// at `Init`, before the new listing replaces it).
    pub fn on_event(
        &mut self,
        event: watcher::Event<K>,
        cached: impl FnOnce() -> Vec<Arc<K>>,
    ) -> Vec<Step<K>> {
        match event {
            watcher::Event::Apply(obj) => vec![Step::Changed(obj.clone()), Step::Reconcile(obj)],
            watcher::Event::Delete(obj) => vec![Step::Changed(obj)],
            watcher::Event::Init => {
                self.listing.clear();
                self.before = if self.listed {
                    cached().into_iter().map(|o| (key(o.as_ref()), o)).collect()
                } else {
                    HashMap::new()
                };
                Vec::new()
            }
            watcher::Event::InitApply(obj) => {
                self.listing.push(obj);
                Vec::new()
            }
            watcher::Event::InitDone => self.listing_done(),
        }
    }

    fn listing_done(&mut self) -> Vec<Step<K>> {
        let listing = std::mem::take(&mut self.listing);
        let mut before = std::mem::take(&mut self.before);
        let first = !std::mem::replace(&mut self.listed, true);
        if first {
            return listing.into_iter().map(Step::Reconcile).collect();
        }
        let mut steps = Vec::new();
        for obj in listing {
            let unchanged = before
                .remove(&key(&obj))
                .is_some_and(|old| old.resource_version() == obj.resource_version());
            if !unchanged {
                steps.push(Step::Changed(obj.clone()));
                steps.push(Step::Reconcile(obj));
            }
        }
        // What is left went away while the watch was not looking.
        let mut gone: Vec<_> = before.into_values().collect();
        gone.sort_by_key(|o| key(o.as_ref()));
        steps.extend(gone.into_iter().map(|o| Step::Changed((*o).clone())));
        steps
    }
}

#[cfg(test)]
mod tests {
    use k8s_openapi::api::core::v1::ConfigMap;
    use kube::api::ObjectMeta;

    use super::*;

    fn cm(name: &str, rv: &str) -> ConfigMap {
        ConfigMap {
            metadata: ObjectMeta {
                name: Some(name.into()),
                namespace: Some("ns".into()),
                resource_version: Some(rv.into()),
                ..Default::default()
            },
            ..Default::default()
        }
    }

    fn names(steps: &[Step<ConfigMap>]) -> Vec<String> {
        steps
            .iter()
            .map(|s| match s {
                Step::Reconcile(o) => format!("reconcile {}", o.name_any()),
                Step::Changed(o) => format!("changed {}", o.name_any()),
            })
            .collect()
    }

    /// Runs `events` through a relay and a real reflector store, checking at every
    /// `Reconcile` that the store already holds the object (kube drops it otherwise).
    fn run(relay: &mut Relay<ConfigMap>, events: Vec<watcher::Event<ConfigMap>>) -> Vec<String> {
        let (reader, mut writer) = kube::runtime::reflector::store::<ConfigMap>();
        run_on(relay, &reader, &mut writer, events)
    }

    fn run_on(
        relay: &mut Relay<ConfigMap>,
        reader: &kube::runtime::reflector::Store<ConfigMap>,
        writer: &mut kube::runtime::reflector::store::Writer<ConfigMap>,
        events: Vec<watcher::Event<ConfigMap>>,
    ) -> Vec<String> {
        let mut out = Vec::new();
        for event in events {
            writer.apply_watcher_event(&event);
            let steps = relay.on_event(event, || reader.state());
            for step in &steps {
                if let Step::Reconcile(obj) = step {
                    assert!(
                        reader
                            .get(&kube::runtime::reflector::ObjectRef::from_obj(obj))
                            .is_some(),
                        "{} was sent to its controller before the cache held it",
                        obj.name_any()
                    );
                }
            }
            out.extend(names(&steps));
        }
        out
    }

    #[test]
    fn a_listing_is_forwarded_only_once_the_cache_holds_it() {
        let mut relay = Relay::default();
        let steps = run(
            &mut relay,
            vec![
                watcher::Event::Init,
                watcher::Event::InitApply(cm("a", "1")),
                watcher::Event::InitApply(cm("b", "1")),
                watcher::Event::InitDone,
                watcher::Event::Apply(cm("c", "2")),
                watcher::Event::Delete(cm("a", "3")),
            ],
        );
        assert_eq!(
            steps,
            [
                "reconcile a",
                "reconcile b",
                "changed c",
                "reconcile c",
                "changed a"
            ]
        );
    }

    #[test]
    fn a_relist_forwards_what_changed_and_reports_what_went() {
        let (reader, mut writer) = kube::runtime::reflector::store::<ConfigMap>();
        let mut relay = Relay::default();
        run_on(
            &mut relay,
            &reader,
            &mut writer,
            vec![
                watcher::Event::Init,
                watcher::Event::InitApply(cm("kept", "1")),
                watcher::Event::InitApply(cm("edited", "1")),
                watcher::Event::InitApply(cm("deleted", "1")),
                watcher::Event::InitDone,
            ],
        );
        // The watch was away; on its return the apiserver lists afresh.
        let steps = run_on(
            &mut relay,
            &reader,
            &mut writer,
            vec![
                watcher::Event::Init,
                watcher::Event::InitApply(cm("kept", "1")),
                watcher::Event::InitApply(cm("edited", "5")),
                watcher::Event::InitApply(cm("created", "6")),
                watcher::Event::InitDone,
            ],
        );
        assert_eq!(
            steps,
            [
                "changed edited",
                "reconcile edited",
                "changed created",
                "reconcile created",
                "changed deleted"
            ]
        );
    }
}
