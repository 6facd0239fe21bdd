//! LDAP, against the real slapd: the connector's three subtrees, each an OU of this
//! test's own inside the containers Roster may write. Found here: a create left its entry
//! behind when the server refused the mail after the entry was added.

use ldap3::{Scope, SearchEntry, dn_escape};
use roster::connector::{
    Connector,
    ldap::{LdapConnector, Settings},
    target::Network,
};

use super::{Diff, Downstream, Snapshot, Tally, desired, only_member_added};
use crate::harness::ldap;

struct Ldap {
    c: LdapConnector,
    bases: [String; 3],
}

impl Ldap {
    fn groups(&self) -> &str {
        &self.bases[1]
    }
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
    ous
}

#[async_trait::async_trait]
impl Downstream for Ldap {
    fn connector(&self) -> &dyn Connector {
        &self.c
    }

    async fn snapshot(&self) -> Snapshot {
        let mut admin = ldap::server().admin().await;
        let mut out = Snapshot::new();
        for base in &self.bases {
            let (entries, _) = admin
                .search(base, Scope::Subtree, "(objectClass=*)", vec!["*"])
                .await
                .expect("search")
                .success()
                .expect("search result");
            for e in entries.into_iter().map(SearchEntry::construct) {
                // Values that are not UTF-8 come back apart, as bytes: keep them too.
                let binary = e.bin_attrs.into_iter().map(|(k, v)| {
                    let v = v.iter().map(|b| format!("{b:02x?}")).collect();
                    (format!("{};binary", k.to_lowercase()), v)
                });
                let attrs = e
                    .attrs
                    .into_iter()
                    .map(|(k, v)| (k.to_lowercase(), v.into_iter().collect()))
                    .chain(binary)
                    .collect();
                out.insert(e.dn.to_lowercase(), attrs);
            }
        }
        out
    }

    async fn make_entitlement(&self, _i: usize, hostile: &str) -> (String, bool) {
        let mut admin = ldap::server().admin().await;
        let dn = format!("cn={},{}", dn_escape(hostile), self.groups());
        let attrs = vec![
            ("objectClass".to_owned(), ["groupOfNames".to_owned()].into()),
            ("cn".to_owned(), [hostile.to_owned()].into()),
            ("member".to_owned(), [String::new()].into()),
        ];
        let made = admin.add(&dn, attrs).await.expect("add").success().is_ok();
        // A name made by an earlier case is there too.
        let there = made || self.snapshot().await.contains_key(&dn.to_lowercase());
        (hostile.to_owned(), there)
    }

    fn is_the_grant(
        &self,
        before: &Snapshot,
        after: &Snapshot,
        account: &str,
        _username: &str,
        entitlement: &str,
    ) -> Result<(), String> {
        let group = format!("cn={},{}", dn_escape(entitlement), self.groups()).to_lowercase();
        let diff = Diff::between(before, after);
        // The member value is the server's spelling of the entry's DN; compare as keys are.
        let member = after
            .get(&group)
            .and_then(|g| g.get("member"))
            .and_then(|m| m.iter().find(|v| v.to_lowercase() == account))
            .ok_or_else(|| format!("{account:?} is not a member of {group:?}: {diff:?}"))?;
        only_member_added(before, after, &group, "member", member)
    }
}

#[tokio::test]
async fn hostile_names_change_only_their_own_entry_in_ldap() {
    let [people, groups, disabled] = containers().await;
    let d = Ldap {
        c: LdapConnector::new(Settings {
            url: ldap::server().url(),
            start_tls: false,
            bind_dn: ldap::ROSTER_DN.into(),
            password: ldap::ROSTER_PASSWORD.into(),
            ca_pem: None,
            users_dn: people.clone(),
            groups_dn: groups.clone(),
            disabled_users_dn: disabled.clone(),
            network: Network::loopback_plaintext(),
        }),
        bases: [people, groups, disabled],
    };
    let Tally { made, granted } = super::run(&d, 32).await;
    // Short hostile names go through; a NUL is refused up front, and slapd refuses
    // over-long uids itself (80, "other", said with the DN's length).
    assert!(
        made >= 8 && granted >= 4,
        "too few hostile names went through to test anything: {made} made, {granted} granted of 32"
    );

    // An address the server refuses (mail is IA5 text) after the entry is added: the
    // create is undone, not left half made.
    let before = d.snapshot().await;
    let refused =
        d.c.create(
            "hostile-id",
            &desired("mail-ée", "Mail", "é@example.com", Default::default()),
            true,
        )
        .await;
    assert!(refused.is_err(), "{refused:?}");
    assert!(
        Diff::between(&before, &d.snapshot().await).is_empty(),
        "a refused create leaves nothing"
    );

    // What slapd says of a DN too long to index is a bare "other"; the error says why.
    let long = "a".repeat(300);
    let err =
        d.c.create(
            "hostile-id",
            &desired(&long, "Long", "l@example.com", Default::default()),
            true,
        )
        .await
        .expect_err("a 300-byte uid");
    assert!(err.to_string().contains("DN is 343 bytes"), "{err}");
}
