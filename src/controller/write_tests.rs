//! The one write path: Observe mode writes nothing, the breakers hold what does not fit
//! before execute sees it, and whatever passes reaches the backend in order.

use std::sync::Mutex;

use async_trait::async_trait;
use k8s_openapi::jiff::Timestamp;

use super::{
    hold::Removing,
    write::{Subject, Write, write},
    *,
};
use crate::{
    api::{ConnectorMode, ConnectorSpec},
    connector::{Capabilities, Connector as Backend, ConnectorError, EntitlementMembers, Page},
    lifecycle::{
        AccountAttributes, ConnectorKey, DesiredAccount, ObservedAccount,
        budget::{Cause, Feeds},
        plan::Change,
    },
};

/// Records every write it is asked for; reads find nothing.
#[derive(Default)]
struct Recording {
    calls: Mutex<Vec<String>>,
}

impl Recording {
    fn record(&self, call: String) -> Result<(), ConnectorError> {
        self.calls
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(call);
        Ok(())
    }

    fn calls(&self) -> Vec<String> {
        self.calls.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }
}

#[async_trait]
impl Backend for Recording {
    async fn check(&self) -> Result<Capabilities, ConnectorError> {
        Ok(Capabilities::default())
    }
    async fn observe(&self, _: &str) -> Result<Option<ObservedAccount>, ConnectorError> {
        Ok(None)
    }
    async fn list_accounts(
        &self,
        _: Option<&str>,
    ) -> Result<Page<ObservedAccount>, ConnectorError> {
        Ok(Page {
            items: Vec::new(),
            next: None,
        })
    }
    async fn list_entitlements(
        &self,
        _: Option<&str>,
    ) -> Result<Page<EntitlementMembers>, ConnectorError> {
        Ok(Page::default())
    }
    async fn create(
        &self,
        who: &str,
        _: &DesiredAccount,
        _: bool,
    ) -> Result<String, ConnectorError> {
        self.record(format!("create {who}"))
            .map(|()| who.to_owned())
    }
    async fn adopt(&self, a: &ObservedAccount, _: &str) -> Result<(), ConnectorError> {
        self.record(format!("adopt {}", a.id))
    }
    async fn update(
        &self,
        a: &ObservedAccount,
        _: &AccountAttributes,
    ) -> Result<(), ConnectorError> {
        self.record(format!("update {}", a.id))
    }
    async fn set_active(&self, a: &ObservedAccount, on: bool) -> Result<(), ConnectorError> {
        self.record(format!("active={on} {}", a.id))
    }
    async fn delete(&self, a: &ObservedAccount) -> Result<(), ConnectorError> {
        self.record(format!("delete {}", a.id))
    }
    async fn grant(&self, id: &str, e: &str) -> Result<(), ConnectorError> {
        self.record(format!("grant {e} {id}"))
    }
    async fn revoke(&self, id: &str, e: &str) -> Result<(), ConnectorError> {
        self.record(format!("revoke {e} {id}"))
    }
    fn knows_privilege(&self) -> bool {
        true
    }
    async fn privilege(&self, e: &str) -> Result<Option<String>, ConnectorError> {
        Ok(e.starts_with("admin")
            .then(|| format!("{e:?} is an admin role")))
    }
}

fn connector(mode: ConnectorMode, allowed: &[&str]) -> Connector {
    let spec: ConnectorSpec = serde_json::from_value(serde_json::json!({
        "mode": mode,
        "allowedEntitlements": allowed,
        "scim": {"baseUrl": "http://127.0.0.1:9/v2", "tokenSecretRef": {"name": "t", "key": "t"}},
    }))
    .expect("a Connector spec");
    let mut c = Connector::new("app", spec);
    c.metadata.namespace = Some("ns".into());
    c
}

fn account() -> ObservedAccount {
    ObservedAccount {
        id: "u1".into(),
        username: "ada".into(),
        owner: Some("ada".into()),
        active: true,
        attributes: Default::default(),
        entitlements: ["staff".to_owned()].into(),
        version: None,
    }
}

async fn run(
    mode: ConnectorMode,
    feeds: Feeds,
    changes: Vec<Change>,
) -> (write::Written, Vec<String>) {
    run_within(&[], mode, feeds, changes).await
}

async fn run_within(
    allowed: &[&str],
    mode: ConnectorMode,
    feeds: Feeds,
    changes: Vec<Change>,
) -> (write::Written, Vec<String>) {
    let (ctx, backend, account) = (empty_test_context(), Recording::default(), account());
    let connector = connector(mode, allowed);
    let key = ConnectorKey::new("ns", "app");
    let w = Write {
        connector: &connector,
        key: &key,
        backend: &backend,
        subject: Subject::Member { username: "ada" },
        removing: Removing {
            who: "ada",
            cause: Cause::Policy,
            feeds,
            marked: 10,
        },
        desired: None,
        observed: Some(&account),
        grounds: None,
        now: Timestamp::now(),
    };
    let written = write(&ctx, &w, changes).await;
    (written, backend.calls())
}

const FED: Feeds = Feeds {
    roles: 1,
    bindings: 1,
    claimants: None,
};

#[tokio::test]
async fn observe_mode_writes_nothing() {
    let changes = vec![Change::Revoke("staff".into()), Change::Disable];
    let (written, calls) = run(ConnectorMode::Observe, FED, changes).await;
    assert!(calls.is_empty(), "{calls:?}");
    assert!(!written.tried && written.applied.is_empty() && written.held.is_none());
}

#[tokio::test]
async fn what_passes_the_breakers_reaches_the_backend_in_order() {
    let changes = vec![Change::Grant("eng".into()), Change::Revoke("staff".into())];
    let (written, calls) = run(ConnectorMode::Enforce, FED, changes).await;
    assert_eq!(calls, ["grant eng u1", "revoke staff u1"]);
    assert_eq!(written.applied.len(), 2);
    assert!(written.tried && written.held.is_none() && written.failed.is_none());
}

#[tokio::test]
async fn a_removal_the_breakers_hold_never_reaches_the_backend() {
    // No Role feeds the connector while ten accounts are Roster's: an empty source.
    let empty = Feeds { roles: 0, ..FED };
    let changes = vec![Change::Revoke("staff".into()), Change::Disable];
    let (written, calls) = run(ConnectorMode::Enforce, empty, changes).await;
    assert!(calls.is_empty(), "held removals were written: {calls:?}");
    let held = written.held.expect("held");
    assert!(held.contains("no Role names an entitlement"), "{held}");
    // A grant in the same pass is no removal: it still goes.
    let changes = vec![Change::Grant("eng".into()), Change::Revoke("staff".into())];
    let (_, calls) = run(ConnectorMode::Enforce, empty, changes).await;
    assert_eq!(calls, ["grant eng u1"]);
}

#[tokio::test]
async fn grants_outside_the_bounds_or_privileged_and_unnamed_are_refused() {
    let grants = |names: &[&str]| names.iter().map(|n| Change::Grant((*n).into())).collect();
    let allowed = ["app_*", "admin_ops"];
    let (written, calls) = run_within(
        &allowed,
        ConnectorMode::Enforce,
        FED,
        grants(&["app_read", "postgres", "admin_ops", "app_x"]),
    )
    .await;
    assert_eq!(
        calls,
        ["grant app_read u1", "grant admin_ops u1", "grant app_x u1"]
    );
    let why = written.refused.expect("refused");
    assert!(
        why.contains("\"postgres\" is outside allowedEntitlements"),
        "{why}"
    );
    // A pattern is not a name: a privileged entitlement it matches is still refused.
    let (written, calls) = run_within(
        &["admin*"],
        ConnectorMode::Enforce,
        FED,
        grants(&["admin_all"]),
    )
    .await;
    assert!(calls.is_empty(), "{calls:?}");
    let why = written.refused.expect("refused");
    assert!(
        why.contains("privileged") && why.contains("by name"),
        "{why}"
    );
    // No bounds at all: anything ordinary goes, the privileged still needs naming.
    let (_, calls) = run(ConnectorMode::Enforce, FED, grants(&["eng", "admin"])).await;
    assert_eq!(calls, ["grant eng u1"]);
}
