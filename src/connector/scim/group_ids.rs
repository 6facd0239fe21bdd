//! The ids of groups looked up by name, kept a few seconds for grants.
//!
//! A grant found its group by `displayName`, then PATCHed it. With 2,000 members,
//! scim2-server took 69 ms for the lookup and 131 ms for the PATCH. The lookup was a
//! third of what a joiner cost the app, and a backlog of joiners asks for the same few
//! groups again and again. So a grant uses an id looked up within [`TTL`], and asks the
//! PATCH to answer with the group's `displayName`. If the group was renamed in between,
//! the answer shows it. The grant then fails with the reason, and the id is forgotten.
//!
//! Revocations always look the group up: a leaver must leave the group that has the name
//! now. A server whose PATCH answers do not carry the group cannot confirm a grant, so
//! that connector stops using remembered ids.

use std::{
    collections::HashMap,
    sync::{
        Mutex,
        atomic::{AtomicBool, Ordering},
    },
    time::{Duration, Instant},
};

/// How long an id found by name is used without looking again. A rename and a new
/// group under the old name would both have to fall inside it to mislead a grant. The
/// PATCH's answer catches that case all the same.
pub const TTL: Duration = Duration::from_secs(5);

/// Group ids by `displayName`, with when each was looked up.
#[derive(Default)]
pub struct GroupIds {
    known: Mutex<HashMap<String, (String, Instant)>>,
    unconfirmable: AtomicBool,
}

impl GroupIds {
    fn known(&self) -> std::sync::MutexGuard<'_, HashMap<String, (String, Instant)>> {
        // Each update is one insert or removal: a panic elsewhere cannot tear the map.
        self.known.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The id of the group `name`, if looked up within [`TTL`] and this server's answers
    /// can confirm a grant.
    pub fn fresh(&self, name: &str) -> Option<String> {
        if self.unconfirmable.load(Ordering::Relaxed) {
            return None;
        }
        self.known()
            .get(name)
            .filter(|(_, at)| at.elapsed() < TTL)
            .map(|(id, _)| id.clone())
    }

    /// Records that the group `name` has the id `id`, as of now.
    pub fn remember(&self, name: &str, id: &str) {
        self.known()
            .insert(name.to_owned(), (id.to_owned(), Instant::now()));
    }

    /// Forgets the id of `name`: the group is gone or renamed.
    pub fn forget(&self, name: &str) {
        self.known().remove(name);
    }

    /// This server answered a PATCH without the group: stop using remembered ids.
    pub fn unconfirmable(&self) {
        self.unconfirmable.store(true, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_id_is_used_until_forgotten_or_the_server_cannot_confirm_it() {
        let ids = GroupIds::default();
        assert_eq!(ids.fresh("staff"), None);
        ids.remember("staff", "g1");
        assert_eq!(ids.fresh("staff").as_deref(), Some("g1"));
        assert_eq!(ids.fresh("Staff"), None, "names are compared exactly");
        ids.forget("staff");
        assert_eq!(ids.fresh("staff"), None);
        ids.remember("staff", "g1");
        ids.unconfirmable();
        assert_eq!(ids.fresh("staff"), None);
    }

    #[test]
    fn an_id_older_than_the_ttl_is_looked_up_again() {
        let ids = GroupIds::default();
        ids.known().insert(
            "staff".into(),
            (
                "g1".into(),
                Instant::now()
                    .checked_sub(TTL + Duration::from_millis(1))
                    .expect("the machine has been up for more than the TTL"),
            ),
        );
        assert_eq!(ids.fresh("staff"), None);
    }
}
