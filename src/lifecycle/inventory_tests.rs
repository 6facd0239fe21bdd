use k8s_openapi::jiff::Timestamp;

use super::*;
use crate::{
    api::AdoptionPolicy,
    lifecycle::model::{AccountAttributes, NameCase},
};

fn set(items: &[&str]) -> BTreeSet<String> {
    items.iter().map(|s| (*s).to_owned()).collect()
}

fn account(id: &str, username: &str, owner: Option<&str>) -> ObservedAccount {
    ObservedAccount {
        id: id.into(),
        username: username.into(),
        owner: owner.map(str::to_owned),
        active: true,
        attributes: AccountAttributes::default(),
        entitlements: BTreeSet::new(),
        version: None,
    }
}

fn desired(username: &str, entitlements: &[&str]) -> DesiredAccount {
    DesiredAccount {
        username: username.into(),
        kind: Default::default(),
        attributes: AccountAttributes::default(),
        active: true,
        entitlements: set(entitlements),
    }
}

fn policy() -> Policy {
    Policy {
        protected: false,
        adoption: AdoptionPolicy::Never,
        delete_after: None,
        now: Timestamp::UNIX_EPOCH,
        names: NameCase::Exact,
    }
}

#[test]
fn join_fills_entitlements_from_members() {
    let mut accounts = vec![account("1", "ada", None), account("2", "bob", None)];
    join(
        &mut accounts,
        &[
            EntitlementMembers {
                name: "eng".into(),
                members: vec!["1".into(), "2".into()],
            },
            EntitlementMembers {
                name: "ops".into(),
                members: vec!["2".into()],
            },
        ],
    );
    assert_eq!(accounts[0].entitlements, set(&["eng"]));
    assert_eq!(accounts[1].entitlements, set(&["eng", "ops"]));
}

#[test]
fn where_the_app_folds_case_a_case_variant_is_no_stranger() {
    // `Ada` downstream is the account of the Identity whose username is `ada` on an
    // app that folds case; `ROOT` protects `root`. Under Authoritative membership
    // a stranger's groups are revoked, so mistaking either costs someone access.
    let mut ada = account("1", "Ada", None);
    ada.entitlements = set(&["eng"]);
    let mut root = account("2", "root", None);
    root.entitlements = set(&["eng"]);
    let d_ada = desired("ada", &["eng"]);
    let claims = [Claim {
        identity: "ada",
        username: "ada",
        desired: Some(&d_ada),
        ledger: Ledger::default(),
    }];
    let managed = Managed {
        names: set(&["eng"]),
        authoritative: set(&["eng"]),
    };
    let assess_as = |names| {
        assess(
            &[ada.clone(), root.clone()],
            &claims,
            &managed,
            &set(&["ROOT"]),
            &Policy { names, ..policy() },
        )
    };
    let folded = assess_as(NameCase::Folded);
    assert!(folded.strays.is_empty(), "{:?}", folded.strays);
    assert!(
        !folded.drifted.contains_key("ada"),
        "her account exists: {:?}",
        folded.drifted
    );
    let exact = assess_as(NameCase::Exact);
    let strays: Vec<&str> = exact.strays.iter().map(|s| s.username.as_str()).collect();
    assert_eq!(
        strays,
        ["Ada", "root"],
        "an exact-case app has two strangers"
    );
}

#[test]
fn finds_drift_orphans_strays_and_missing_accounts() {
    let mut ada = account("1", "ada", Some("ada"));
    ada.entitlements = set(&[]); // lost "eng" out of band
    let mut mallory = account("2", "mallory", None);
    mallory.entitlements = set(&["eng", "book-club"]);
    let mut admin = account("3", "break-glass", None);
    admin.entitlements = set(&["eng"]);
    let ghost = account("4", "ghost", Some("gone"));
    let (d_ada, d_bob) = (desired("ada", &["eng"]), desired("bob", &["eng"]));
    let claims = [
        Claim {
            identity: "ada",
            username: "ada",
            desired: Some(&d_ada),
            ledger: Ledger::default(),
        },
        Claim {
            identity: "bob",
            username: "bob",
            desired: Some(&d_bob),
            ledger: Ledger::default(),
        },
    ];
    let a = assess(
        &[ada, mallory.clone(), admin.clone(), ghost.clone()],
        &claims,
        &Managed {
            names: set(&["eng"]),
            authoritative: set(&["eng"]),
        },
        &set(&["break-glass"]),
        &policy(),
    );
    assert_eq!(a.managed, 1);
    assert_eq!(
        a.drifted.get("ada").map(String::as_str),
        Some("lacks \"eng\"")
    );
    assert_eq!(
        a.drifted.get("bob").map(String::as_str),
        Some("account does not exist")
    );
    assert_eq!(a.absent, set(&["bob"]), "only bob's account is missing");
    assert_eq!(a.orphaned, ["ghost"]);
    assert_eq!(a.unmanaged, 2);
    assert_eq!(
        a.strays,
        [Stray {
            account_id: "2".into(),
            username: "mallory".into(),
            entitlement: "eng".into()
        }],
        "the protected account and the unmanaged group are left alone"
    );
    assert!(a.unowned_members.is_empty());

    // Under additive membership the same stranger is reported, not removed.
    let additive = assess(
        &[mallory, admin, ghost],
        &claims,
        &Managed {
            names: set(&["eng"]),
            authoritative: set(&[]),
        },
        &set(&["break-glass"]),
        &policy(),
    );
    assert!(additive.strays.is_empty());
    assert_eq!(
        additive
            .unowned_members
            .iter()
            .map(|m| (m.username.as_str(), m.entitlement.as_str()))
            .collect::<Vec<_>>(),
        [("mallory", "eng")]
    );
}

#[test]
fn an_identitys_own_unmarked_account_is_not_a_stray() {
    let mut carol = account("1", "carol", None);
    carol.entitlements = set(&["eng"]);
    let d = desired("carol", &["eng"]);
    let claims = [Claim {
        identity: "carol",
        username: "carol",
        desired: Some(&d),
        ledger: Ledger::default(),
    }];
    let managed = Managed {
        names: set(&["eng"]),
        authoritative: set(&["eng"]),
    };
    let a = assess(&[carol], &claims, &managed, &set(&[]), &policy());
    assert!(a.strays.is_empty());
    assert!(
        a.drifted.is_empty(),
        "the conflict is reported on the identity, not fixed here"
    );
}

#[test]
fn an_account_listed_twice_is_assessed_once() {
    // SCIM pages by index (RFC 7644 §3.4.2.4): an account created before the cursor
    // while the scan pages pushes the rest down one, so the last account of a page
    // comes again at the top of the next. The scan folds memberships in first and
    // hands each account its groups once; the second copy must not read as an account
    // that lost them (a false drift), nor count or strip a stranger twice.
    let mut held = Held::default();
    held.add(&EntitlementMembers {
        name: "eng".into(),
        members: vec!["1".into(), "2".into()],
    });
    let d_ada = desired("ada", &["eng"]);
    let claims = [Claim {
        identity: "ada",
        username: "ada",
        desired: Some(&d_ada),
        ledger: Ledger {
            granted: set(&["eng"]),
            disabled_at: None,
        },
    }];
    let managed = Managed {
        names: set(&["eng"]),
        authoritative: set(&["eng"]),
    };
    let policy = policy();
    let mut assessor = Assessor::new(&claims, &managed, &BTreeSet::new(), &policy);
    let pages = [
        [
            account("1", "ada", Some("ada")),
            account("2", "mallory", None),
        ],
        [
            account("2", "mallory", None),
            account("1", "ada", Some("ada")),
        ],
    ];
    for page in pages {
        for mut a in page {
            held.fill(&mut a);
            assessor.add(&a);
        }
    }
    let accounts = assessor.accounts();
    let a = assessor.finish();
    assert!(a.drifted.is_empty(), "{:?}", a.drifted);
    assert_eq!(accounts, 2, "two accounts, each listed twice");
    assert_eq!((a.managed, a.unmanaged), (1, 1));
    assert_eq!(a.strays.len(), 1, "one stray membership: {:?}", a.strays);
}
