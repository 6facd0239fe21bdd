//! Hostile names through every connector, against the real servers: generated usernames,
//! display names and entitlement names full of what DNs, LDAP and SCIM filters, SQL
//! identifiers and URL paths treat specially (`,+"\<>;=#*()/`, NUL, quotes, spaces at
//! either end, look-alike and bidi characters, over-long values).
//!
//! Each case reads the connector's whole downstream before and after every step — its
//! LDAP subtrees, its own SCIM tenant, a PostgreSQL server of its own, its Kubernetes
//! namespace and cluster-wide bindings — and diffs: a create adds exactly one account, a
//! grant adds exactly the one membership (or binding) and a revoke takes exactly it away,
//! a refused step changes nothing, a grant of a name the app does not hold never
//! succeeds, and a delete restores the downstream as it was.

mod kubernetes;
mod ldap;
mod postgres;
mod scim;

use std::collections::{BTreeMap, BTreeSet};

use proptest::{
    prelude::*,
    strategy::{Strategy, ValueTree},
    test_runner::TestRunner,
};
use roster::{
    api::IdentityKind,
    connector::Connector,
    lifecycle::{AccountAttributes, DesiredAccount},
};

/// Object key → attribute → values: a downstream as a test reads it.
pub type Snapshot = BTreeMap<String, BTreeMap<String, BTreeSet<String>>>;

/// The keys that differ between two snapshots.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Diff {
    pub added: Vec<String>,
    pub changed: Vec<String>,
    pub removed: Vec<String>,
}

impl Diff {
    pub fn between(before: &Snapshot, after: &Snapshot) -> Self {
        Self {
            added: keys_not_in(after, before),
            removed: keys_not_in(before, after),
            changed: before
                .iter()
                .filter(|(k, v)| after.get(*k).is_some_and(|now| now != *v))
                .map(|(k, _)| k.clone())
                .collect(),
        }
    }

    pub fn is_empty(&self) -> bool {
        *self == Self::default()
    }
}

fn keys_not_in(a: &Snapshot, b: &Snapshot) -> Vec<String> {
    a.keys().filter(|k| !b.contains_key(*k)).cloned().collect()
}

/// Whether the only change from `before` to `after` is `member` joining `attr` of the
/// object `group`.
pub fn only_member_added(
    before: &Snapshot,
    after: &Snapshot,
    group: &str,
    attr: &str,
    member: &str,
) -> Result<(), String> {
    let diff = Diff::between(before, after);
    if !diff.added.is_empty() || !diff.removed.is_empty() || diff.changed != [group] {
        return Err(format!("{group:?} should be all that changed: {diff:?}"));
    }
    let members = |s: &Snapshot| {
        s.get(group)
            .and_then(|g| g.get(attr))
            .cloned()
            .unwrap_or_default()
    };
    let mut expected = members(before);
    expected.insert(member.to_owned());
    let mut rest = after[group].clone();
    let got = rest.remove(attr).unwrap_or_default();
    let mut was = before[group].clone();
    was.remove(attr);
    if got != expected || rest != was {
        return Err(format!(
            "{group:?} should have gained {member:?} and nothing else: {:?} → {:?}",
            before[group], after[group]
        ));
    }
    Ok(())
}

/// Strings made of what names and queries treat specially, and of what merely looks
/// alike; now and then one far longer than any app takes.
pub fn hostile() -> impl Strategy<Value = String> {
    let chars = prop::sample::select(vec![
        'a', 'z', '0', '*', '(', ')', '\\', ',', '+', '"', '<', '>', ';', '=', '#', ' ', '\'',
        '\0', '/', '%', '?', '&', '.', 'é', 'ａ', '\u{202e}', '\u{0430}', '\u{200b}',
    ]);
    prop_oneof![
        4 => prop::collection::vec(chars.clone(), 1..16)
            .prop_map(|c| c.into_iter().collect::<String>()),
        1 => prop::collection::vec(chars, 1..4)
            .prop_map(|c| c.into_iter().collect::<String>().repeat(200)),
    ]
}

/// One generated case.
pub struct Case {
    pub username: String,
    pub display: String,
    pub entitlement: String,
}

/// Injections written out, where a random string would rarely land its quotes: a second
/// statement in SQL, a filter that matches everyone in LDAP and SCIM, a DN that names
/// another container.
const CLASSICS: [[&str; 3]; 4] = [
    [
        r#"hx" LOGIN; CREATE ROLE "hy"#,
        "Robert'); DROP TABLE students;--",
        r#"hg" or displayName pr or displayName eq "hh"#,
    ],
    ["*)(uid=*))(|(uid=*", "*", "*)(cn=*"],
    [
        r#"u" or userName pr or userName eq "v"#,
        "x,ou=groups,dc=roster,dc=test",
        "staff,ou=people",
    ],
    [" lead and trail ", r"\5c\2a", r"\2a"],
];

/// The classics, then `n` generated cases, the same on every run: a failure names its
/// case and reproduces.
pub fn cases(n: usize) -> Vec<Case> {
    let mut runner = TestRunner::deterministic();
    let strategy = (hostile(), hostile(), hostile());
    let generated = (0..n).map(|_| strategy.new_tree(&mut runner).expect("a case").current());
    CLASSICS
        .iter()
        .map(|c| c.map(str::to_owned).into())
        .chain(generated)
        .map(|(username, display, entitlement)| Case {
            username,
            display,
            entitlement,
        })
        .collect()
}

pub fn desired(username: &str, display: &str, email: &str, kind: IdentityKind) -> DesiredAccount {
    DesiredAccount {
        username: username.to_owned(),
        kind,
        attributes: AccountAttributes {
            display_name: Some(display.to_owned()),
            given_name: Some(display.to_owned()),
            family_name: Some(display.to_owned()),
            emails: vec![email.to_owned()],
        },
        active: true,
        entitlements: Default::default(),
    }
}

/// A downstream as the hostile cases see it.
#[async_trait::async_trait]
pub trait Downstream: Sync {
    fn connector(&self) -> &dyn Connector;
    /// The kind of identity case `i` is.
    fn kind(&self, _i: usize) -> IdentityKind {
        IdentityKind::Person
    }
    /// The whole of what the connector may touch.
    async fn snapshot(&self) -> Snapshot;
    /// Makes an entitlement out of band for `hostile`, as an admin would; returns the
    /// entitlement string to grant and whether the app now holds one by exactly that
    /// name.
    async fn make_entitlement(&self, i: usize, hostile: &str) -> (String, bool);
    /// Whether the change from `before` to `after` is the grant of `entitlement` to the
    /// account `account` (its snapshot key, `username` its name) and nothing more.
    fn is_the_grant(
        &self,
        before: &Snapshot,
        after: &Snapshot,
        account: &str,
        username: &str,
        entitlement: &str,
    ) -> Result<(), String>;
}

/// What the cases came to.
#[derive(Debug, Default)]
pub struct Tally {
    /// Accounts created.
    pub made: usize,
    /// Entitlements granted.
    pub granted: usize,
}

/// Runs the classics and `n` generated cases through `d`, asserting the diffs after each
/// step.
pub async fn run(d: &impl Downstream, n: usize) -> Tally {
    let c = d.connector();
    let mut tally = Tally::default();
    for (i, case) in cases(n).into_iter().enumerate() {
        let (entitlement, exists) = d.make_entitlement(i, &case.entitlement).await;
        let what = format!(
            "case {i}: username {:?}, display name {:?}, entitlement {entitlement:?}",
            case.username, case.display
        );
        let before = d.snapshot().await;
        let desired = desired(
            &case.username,
            &case.display,
            "someone@example.com",
            d.kind(i),
        );
        let id = match c.create("hostile-id", &desired, true).await {
            Ok(id) => id,
            Err(e) => {
                let diff = Diff::between(&before, &d.snapshot().await);
                assert!(
                    diff.is_empty(),
                    "{what}: refused ({e}), yet changed {diff:?}"
                );
                // A short printable name is one any app holds: refusing it is a quoting
                // bug, however safely it failed.
                let plain = i < CLASSICS.len() && d.kind(i) == IdentityKind::Person;
                assert!(!plain, "{what}: refused: {e}");
                continue;
            }
        };
        tally.made += 1;
        let created = d.snapshot().await;
        let diff = Diff::between(&before, &created);
        assert!(
            diff.added.len() == 1 && diff.changed.is_empty() && diff.removed.is_empty(),
            "{what}: a create adds one object and changes nothing else: {diff:?}"
        );
        let account = &diff.added[0];
        match c.grant(&id, &entitlement).await {
            Ok(()) => {
                assert!(exists, "{what}: granted what the app does not hold");
                let after = d.snapshot().await;
                d.is_the_grant(&created, &after, account, &case.username, &entitlement)
                    .unwrap_or_else(|e| panic!("{what}: {e}"));
                tally.granted += 1;
                // As a leaver's plan does: revoke, then delete (an app may keep a deleted
                // user's memberships; scim2-server does).
                c.revoke(&id, &entitlement)
                    .await
                    .unwrap_or_else(|e| panic!("{what}: revoke: {e}"));
                let diff = Diff::between(&created, &d.snapshot().await);
                assert!(diff.is_empty(), "{what}: revoke undoes the grant: {diff:?}");
            }
            Err(e) => {
                assert!(
                    !exists,
                    "{what}: the app holds it, yet the grant was refused: {e}"
                );
                let diff = Diff::between(&created, &d.snapshot().await);
                assert!(
                    diff.is_empty(),
                    "{what}: grant refused ({e}), yet changed {diff:?}"
                );
            }
        }
        let seen = c
            .observe(&case.username)
            .await
            .unwrap_or_else(|e| panic!("{what}: observe: {e}"))
            .unwrap_or_else(|| panic!("{what}: not found by its name"));
        assert_eq!(seen.username, case.username, "{what}: read back as given");
        assert_eq!(seen.owner.as_deref(), Some("hostile-id"), "{what}: marked");
        c.delete(&seen)
            .await
            .unwrap_or_else(|e| panic!("{what}: delete: {e}"));
        let diff = Diff::between(&before, &d.snapshot().await);
        assert!(diff.is_empty(), "{what}: delete restores it: {diff:?}");
    }
    tally
}
