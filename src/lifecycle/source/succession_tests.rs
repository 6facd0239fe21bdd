use serde_json::json;

use super::*;

const KEY: &str = "hr/workday";

fn now() -> Timestamp {
    "2027-03-01T12:00:00Z".parse().unwrap()
}

fn identity(name: &str, spec: serde_json::Value, source: Option<&str>) -> Identity {
    let mut i = Identity::new(name, serde_json::from_value(spec).expect("a spec"));
    if let Some(s) = source {
        i.annotations_mut()
            .insert(SOURCE_ANNOTATION.into(), s.into());
    }
    i
}

fn worker(name: &str, state: &str, manager: Option<&str>) -> Identity {
    let mut spec = json!({"username": name, "state": state});
    if let Some(m) = manager {
        spec["attributes"] = json!({"manager": m});
    }
    identity(name, spec, Some(KEY))
}

fn service(name: &str, owner: &str) -> Identity {
    identity(
        name,
        json!({"username": name, "kind": "Service", "owner": owner}),
        None,
    )
}

fn decide(all: &[Identity]) -> Succession {
    let by_name = all.iter().map(|i| (i.name_any(), i)).collect();
    succession(KEY, &by_name, now())
}

#[test]
fn a_leavers_services_go_to_their_manager() {
    let s = decide(&[
        worker("ada", "Terminated", Some("Grace")),
        worker("grace", "Active", None),
        service("ci-bot", "ada"),
        service("backup-bot", "grace"),
    ]);
    assert_eq!(
        s.handovers,
        vec![Handover {
            service: "ci-bot".into(),
            from: "ada".into(),
            to: "grace".into()
        }]
    );
    assert!(s.stranded.is_empty(), "{:?}", s.stranded);
}

#[test]
fn only_this_sources_leavers_are_handed_over() {
    let mut by_hand = worker("ada", "Terminated", Some("grace"));
    by_hand.annotations_mut().remove(SOURCE_ANNOTATION);
    let mut elsewhere = worker("bob", "Terminated", Some("grace"));
    elsewhere
        .annotations_mut()
        .insert(SOURCE_ANNOTATION.into(), "hr/other".into());
    let s = decide(&[
        by_hand,
        elsewhere,
        worker("cy", "Suspended", Some("grace")),
        worker("grace", "Active", None),
        service("a-bot", "ada"),
        service("b-bot", "bob"),
        service("c-bot", "cy"),
        service("d-bot", "nobody"),
    ]);
    assert_eq!(s, Succession::default(), "a suspended owner may come back");
}

#[test]
fn a_manager_who_cannot_own_it_strands_the_service_with_why() {
    let mut bot_manager = service("mgr-bot", "grace");
    bot_manager.spec.username = "mgr-bot".into();
    for (manager, identities, words) in [
        (None, vec![], "no manager attribute"),
        (Some("zed"), vec![], "has no Identity"),
        (
            Some("gone"),
            vec![worker("gone", "Terminated", None)],
            "not active",
        ),
        (
            Some("away"),
            vec![worker("away", "Suspended", None)],
            "not active",
        ),
        (Some("mgr-bot"), vec![bot_manager.clone()], "not a Person"),
        (Some("ci-bot"), vec![], "is the service or its owner"),
    ] {
        let mut all = vec![
            worker("ada", "Terminated", manager),
            service("ci-bot", "ada"),
        ];
        all.extend(identities);
        let s = decide(&all);
        assert!(s.handovers.is_empty(), "{words}: {:?}", s.handovers);
        assert_eq!(s.stranded.len(), 1, "{words}");
        assert!(s.stranded[0].why.contains(words), "{}", s.stranded[0].why);
    }
}

/// Put back after a handover (Git reverting it): left alone, so the operator never
/// fights whoever keeps `spec.owner`.
#[test]
fn a_service_put_back_is_not_handed_over_again() {
    let mut put_back = service("ci-bot", "ada");
    put_back
        .annotations_mut()
        .insert(REASSIGNED_FROM_ANNOTATION.into(), "ada".into());
    let s = decide(&[
        worker("ada", "Terminated", Some("grace")),
        worker("grace", "Active", None),
        put_back,
    ]);
    assert!(s.handovers.is_empty());
    assert!(s.stranded[0].why.contains("once"), "{:?}", s.stranded);
}
