//! The connector conformance suite: one list of behaviours every backend must show
//! against its real server. A backend supplies a [`Fixture`] that makes things out of
//! band (an entitlement, an account Roster does not own), as an admin of the app would.

use std::collections::BTreeSet;

use roster::{
    connector::{Connector, ConnectorError},
    lifecycle::{AccountAttributes, DesiredAccount, ObservedAccount},
};

/// Out-of-band set-up on the real server.
#[async_trait::async_trait]
pub trait Fixture: Sync {
    /// The entitlement string naming a group or role called `name` on this backend
    /// (most backends use the bare name).
    fn entitlement(&self, name: &str) -> String {
        name.to_owned()
    }
    /// Creates the entitlement (group, role) that `entitlement` names, downstream.
    async fn make_entitlement(&self, entitlement: &str);
    /// Creates an account without Roster's mark.
    async fn make_unowned_account(&self, username: &str);
}

fn desired(username: &str, display: &str) -> DesiredAccount {
    DesiredAccount {
        username: username.to_owned(),
        kind: Default::default(),
        attributes: AccountAttributes {
            display_name: Some(display.to_owned()),
            given_name: Some("Ada".into()),
            family_name: Some("Lovelace".into()),
            emails: vec![format!("{username}@example.com")],
        },
        active: true,
        entitlements: BTreeSet::new(),
    }
}

async fn must_observe(c: &dyn Connector, username: &str) -> ObservedAccount {
    c.observe(username)
        .await
        .expect("observe")
        .unwrap_or_else(|| panic!("{username} not found"))
}

/// Runs every check; `prefix` keeps names unique per run.
pub async fn run(c: &dyn Connector, fixture: &dyn Fixture, prefix: &str) {
    let ada = format!("{prefix}-ada");
    let eng = fixture.entitlement(&format!("{prefix}-eng"));
    let missing = fixture.entitlement(&format!("{prefix}-no-such-entitlement"));
    c.check().await.expect("check");

    // Create, read back, update.
    let d = desired(&ada, "Ada Lovelace");
    let (id, answer) = c.create_answered(&ada, &d, true).await.expect("create");
    let seen = must_observe(c, &ada).await;
    assert_eq!(seen.id, id);
    // A joiner whose create was answered is not read back: the answer must be the read.
    if let Some(answer) = answer {
        assert_eq!(answer, seen, "the create's answer is the account as read");
    }
    // A joiner the last scan did not list is created without a read first: the app must
    // refuse the name it holds, and the refusal must change nothing.
    if c.refuses_duplicates() {
        match c.create(&ada, &desired(&ada, "Someone Else"), false).await {
            Err(ConnectorError::Conflict(_)) => {}
            other => panic!("a second create under {ada:?}: {other:?}"),
        }
        assert_eq!(
            must_observe(c, &ada).await,
            seen,
            "the refused create changed nothing"
        );
    }
    assert_eq!(
        seen.owner.as_deref(),
        Some(ada.as_str()),
        "the ownership mark is read back"
    );
    assert!(seen.active);
    let mut moved = d.attributes.clone();
    moved.display_name = Some("Ada King".into());
    moved.emails = vec![format!("{ada}@example.org")];
    c.update(&seen, &moved).await.expect("update");
    if c.mirrors_attributes() {
        assert_eq!(seen.attributes, d.attributes);
        assert_eq!(must_observe(c, &ada).await.attributes, moved);
    } else {
        assert_eq!(
            seen.attributes,
            AccountAttributes::default(),
            "a backend without attributes reports none"
        );
    }
    let seen = must_observe(c, &ada).await;

    // Disable and enable, each twice.
    for active in [false, false, true, true] {
        c.set_active(&seen, active).await.expect("set_active");
        assert_eq!(must_observe(c, &ada).await.active, active);
    }

    // Grant and revoke: the count goes up by one, then back down; repeats are no-ops.
    fixture.make_entitlement(&eng).await;
    let before = must_observe(c, &ada).await.entitlements.len();
    c.grant(&id, &eng).await.expect("grant");
    c.grant(&id, &eng).await.expect("grant again");
    let granted = must_observe(c, &ada).await.entitlements;
    assert_eq!(granted.len(), before + 1);
    assert!(granted.contains(&eng));
    let listed = all_entitlements(c).await;
    assert!(
        listed
            .iter()
            .any(|(name, members)| *name == eng && members.contains(&id)),
        "{listed:?}"
    );
    c.revoke(&id, &eng).await.expect("revoke");
    c.revoke(&id, &eng).await.expect("revoke again");
    c.revoke(&id, &missing)
        .await
        .expect("revoke of a missing entitlement");
    assert_eq!(must_observe(c, &ada).await.entitlements.len(), before);
    match c.grant(&id, &missing).await {
        Err(ConnectorError::EntitlementNotFound(_)) => {}
        other => panic!("granting a missing entitlement: {other:?}"),
    }

    // An account Roster does not own carries no mark.
    let theirs = format!("{prefix}-theirs");
    fixture.make_unowned_account(&theirs).await;
    assert_eq!(must_observe(c, &theirs).await.owner, None);

    // Injection-shaped usernames are just names that do not exist.
    assert_eq!(
        c.observe(&format!("{prefix}\" or userName pr or \""))
            .await
            .expect("observe"),
        None
    );

    // Paged listing reaches every account.
    let extra = 105;
    for i in 0..extra {
        let name = format!("{prefix}-bulk-{i:03}");
        c.create(&name, &desired(&name, "Bulk"), true)
            .await
            .expect("bulk create");
    }
    let (accounts, pages) = all_accounts(c).await;
    let ours = accounts
        .iter()
        .filter(|a| a.username.starts_with(prefix))
        .count();
    assert_eq!(ours, extra + 2, "every account listed once");
    assert!(pages > 1, "more than one page was needed");

    // Delete, twice.
    c.delete(&seen).await.expect("delete");
    c.delete(&seen).await.expect("delete again");
    assert_eq!(c.observe(&ada).await.expect("observe"), None);
}

async fn all_accounts(c: &dyn Connector) -> (Vec<ObservedAccount>, usize) {
    let (mut out, mut cursor, mut pages) = (Vec::new(), None::<String>, 0);
    loop {
        let page = c
            .list_accounts(cursor.as_deref())
            .await
            .expect("list_accounts");
        pages += 1;
        out.extend(page.items);
        assert!(pages < 1000, "paging does not end");
        match page.next {
            Some(n) => cursor = Some(n),
            None => return (out, pages),
        }
    }
}

async fn all_entitlements(c: &dyn Connector) -> Vec<(String, Vec<String>)> {
    let (mut out, mut cursor, mut pages) = (Vec::new(), None::<String>, 0);
    loop {
        let page = c
            .list_entitlements(cursor.as_deref())
            .await
            .expect("list_entitlements");
        pages += 1;
        out.extend(page.items.into_iter().map(|e| (e.name, e.members)));
        assert!(pages < 1000, "paging does not end");
        match page.next {
            Some(n) => cursor = Some(n),
            None => return out,
        }
    }
}
