//! Hostile names through the LDAP connector, against the real slapd: generated usernames
//! and display names full of DN and filter metacharacters (`,+"\<>;=#*()`, NUL, quotes,
//! spaces at either end, look-alike and bidi characters, over-long values). For each,
//! the whole of the connector's subtrees is read before and after: creating and granting
//! adds exactly the one entry and the one membership, deleting restores the directory as
//! it was, and a name the server refuses changes nothing — nor does an email it refuses
//! after the entry was added (found here: the create left its entry behind the error).

use std::collections::{BTreeMap, BTreeSet};

use ldap3::{Scope, SearchEntry};
use proptest::{
    prelude::*,
    strategy::{Strategy, ValueTree},
    test_runner::TestRunner,
};
use roster::{
    api::IdentityKind,
    connector::{
        Connector,
        ldap::{LdapConnector, Settings},
        target::Network,
    },
    lifecycle::{AccountAttributes, DesiredAccount},
};

use crate::harness::ldap;

/// dn → attribute → values.
type Snapshot = BTreeMap<String, BTreeMap<String, BTreeSet<String>>>;

/// Every entry under `bases`, with its user attributes.
async fn snapshot(bases: &[String]) -> Snapshot {
    let mut admin = ldap::server().admin().await;
    let mut out = Snapshot::new();
    for base in bases {
        let (entries, _) = admin
            .search(base, Scope::Subtree, "(objectClass=*)", vec!["*"])
            .await
            .expect("search")
            .success()
            .expect("search result");
        for e in entries.into_iter().map(SearchEntry::construct) {
            let attrs = e
                .attrs
                .into_iter()
                .map(|(k, v)| (k.to_lowercase(), v.into_iter().collect()))
                .collect();
            out.insert(e.dn.to_lowercase(), attrs);
        }
    }
    out
}

/// Containers of this test's own, inside the ones Roster may write.
async fn containers() -> [String; 3] {
    let mut admin = ldap::server().admin().await;
    let ous =
        [ldap::PEOPLE, ldap::GROUPS, ldap::DISABLED].map(|parent| format!("ou=hostile,{parent}"));
    for dn in &ous {
        let attrs = vec![
            (
                "objectClass".to_owned(),
                ["organizationalUnit".to_owned()].into(),
            ),
            ("ou".to_owned(), ["hostile".to_owned()].into()),
        ];
        admin
            .add(dn, attrs)
            .await
            .expect("add")
            .success()
            .expect("OU");
    }
    let group = format!("cn=staff,{}", ous[1]);
    let attrs = vec![
        ("objectClass".to_owned(), ["groupOfNames".to_owned()].into()),
        ("cn".to_owned(), ["staff".to_owned()].into()),
        ("member".to_owned(), [String::new()].into()),
    ];
    admin
        .add(&group, attrs)
        .await
        .expect("add")
        .success()
        .expect("group");
    ous
}

/// Names made of what DNs and filters treat specially, and of what merely looks alike.
fn hostile() -> impl Strategy<Value = String> {
    let chars = prop::sample::select(vec![
        'a', 'z', '0', '*', '(', ')', '\\', ',', '+', '"', '<', '>', ';', '=', '#', ' ', '\'',
        '\0', '/', 'é', 'ａ', '\u{202e}', '\u{0430}', '\u{200b}',
    ]);
    prop_oneof![
        prop::collection::vec(chars.clone(), 1..16).prop_map(|c| c.into_iter().collect::<String>()),
        prop::collection::vec(chars, 1..4)
            .prop_map(|c| c.into_iter().collect::<String>().repeat(200)),
    ]
}

fn desired(username: &str, display: &str, email: &str) -> DesiredAccount {
    DesiredAccount {
        username: username.to_owned(),
        kind: IdentityKind::Person,
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

#[tokio::test]
async fn hostile_names_change_only_their_own_entry() {
    let [people, groups, disabled] = containers().await;
    let bases = [people.clone(), groups.clone(), disabled.clone()];
    let c = LdapConnector::new(Settings {
        url: ldap::server().url(),
        start_tls: false,
        bind_dn: ldap::ROSTER_DN.into(),
        password: ldap::ROSTER_PASSWORD.into(),
        ca_pem: None,
        users_dn: people,
        groups_dn: groups.clone(),
        disabled_users_dn: disabled,
        network: Network::loopback_plaintext(),
    });
    let group_dn = format!("cn=staff,{groups}").to_lowercase();
    let mut runner = TestRunner::deterministic();
    let names = (hostile(), hostile());
    let mut made = 0;
    for case in 0..24 {
        let (username, display) = names.new_tree(&mut runner).expect("a case").current();
        let before = snapshot(&bases).await;
        let what = format!("case {case}: username {username:?}, display name {display:?}");
        if let Err(e) = c
            .create(
                "hostile-id",
                &desired(&username, &display, "someone@example.com"),
                true,
            )
            .await
        {
            let now = snapshot(&bases).await;
            let added: Vec<&String> = now.keys().filter(|dn| !before.contains_key(*dn)).collect();
            assert!(
                now == before,
                "{what}: refused ({e}), yet changed: added {added:?}"
            );
            continue;
        }
        made += 1;
        c.grant(&username, "staff")
            .await
            .unwrap_or_else(|e| panic!("{what}: grant: {e}"));
        let after = snapshot(&bases).await;
        let added: Vec<&String> = after
            .keys()
            .filter(|dn| !before.contains_key(*dn))
            .collect();
        assert_eq!(added.len(), 1, "{what}: one entry added, not {added:?}");
        let changed: Vec<&String> = before
            .iter()
            .filter(|(dn, attrs)| after.get(*dn) != Some(attrs))
            .map(|(dn, _)| dn)
            .collect();
        assert_eq!(changed, [&group_dn], "{what}: only the group changed");
        let members = &after[&group_dn]["member"];
        assert!(
            members.iter().any(|m| m.to_lowercase() == *added[0]),
            "{what}: the new entry is the member added: {members:?}"
        );
        let seen = c.observe(&username).await.expect("observe").expect("found");
        assert_eq!(seen.username, username, "{what}: read back as given");
        assert!(seen.entitlements.contains("staff"), "{what}");
        c.delete(&seen)
            .await
            .unwrap_or_else(|e| panic!("{what}: delete: {e}"));
        assert_eq!(snapshot(&bases).await, before, "{what}: delete restores it");
    }
    // Short hostile names go through; a NUL is refused up front, and slapd refuses
    // over-long uids itself (80, "other").
    assert!(
        made >= 5,
        "too few hostile names went through to test anything: {made} of 24"
    );

    // An address the server refuses (mail is IA5 text) after the entry is added: the
    // create is undone, not left half made.
    let before = snapshot(&bases).await;
    let refused = c
        .create(
            "hostile-id",
            &desired("mail-ée", "Mail", "é@example.com"),
            true,
        )
        .await;
    assert!(refused.is_err(), "{refused:?}");
    assert_eq!(
        snapshot(&bases).await,
        before,
        "a refused create leaves nothing"
    );
}
