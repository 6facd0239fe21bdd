//! Entry points for the fuzz targets in `fuzz/`: each feeds arbitrary input to one of the
//! parsers and escapers that hostile input reaches, and panics only when an invariant
//! breaks. The unit tests below run them over the checked-in corpus, so every `cargo
//! test` replays what the fuzzers found worth keeping.

use crate::{
    api::{Identity, IdentitySpec, Subjects},
    connector::{
        BODY_LIMIT,
        kubernetes::names::{self, Grant},
        ldap::dn,
        scim,
    },
    lifecycle::{source, subjects::SubjectMatcher},
};

/// Two strings from one input, for the targets that take two: split at the first NUL,
/// or the whole input twice.
pub fn halves(data: &[u8]) -> (String, String) {
    let text = String::from_utf8_lossy(data);
    match text.split_once('\0') {
        Some((a, b)) => (a.to_owned(), b.to_owned()),
        None => (text.clone().into_owned(), text.into_owned()),
    }
}

/// A SCIM server's answer: parsed as a page of Users, and shown as an error detail.
/// The detail must be bounded and free of control characters whatever the body.
pub fn scim_answer(body: &[u8]) {
    let (_, detail) = scim::read_answer(body);
    assert!(
        detail.len() <= BODY_LIMIT,
        "detail of {} bytes",
        detail.len()
    );
    assert!(
        !detail.chars().any(char::is_control),
        "control characters in {detail:?}"
    );
}

/// The container every LDAP check puts a user below.
const PEOPLE: &str = "ou=people,dc=example,dc=com";

/// A value escaped into a DN reads back as itself and names an entry directly below its
/// container; escaped into a filter, it cannot open or close a clause. A DN from the
/// server, however malformed, parses without panicking.
pub fn ldap_names(value: &str, server_dn: &str) {
    let user = dn::user_dn(value, PEOPLE);
    let (rdn, parent) = dn::split_rdn(&user);
    assert_eq!(parent, PEOPLE, "{value:?} escaped to {user:?}");
    assert_eq!(
        dn::rdn_value(rdn, "uid").as_deref(),
        Some(value),
        "{value:?} escaped to {user:?}"
    );
    let containers = [dn::normalize(PEOPLE)];
    assert_eq!(
        dn::member_username(&user, &containers).as_deref(),
        Some(value)
    );
    let filter = dn::user_filter(value);
    let opened = filter.matches('(').count();
    let closed = filter.matches(')').count();
    assert_eq!(
        (opened, closed),
        (3, 3),
        "{value:?} made the filter {filter:?}"
    );
    let _ = dn::normalize(server_dn);
    let _ = dn::member_username(server_dn, &containers);
}

/// An entitlement string parses to a grant that prints as the same string, and every
/// binding name Roster derives is a valid object name.
pub fn kubernetes_grant(entitlement: &str, username: &str) {
    if let Some(grant) = Grant::parse(entitlement) {
        assert_eq!(grant.to_string(), entitlement);
        assert!(names::is_object_name(grant.role_name()));
    }
    let connector = names::connector_key(username, entitlement);
    let binding = names::binding_name(&connector, username, entitlement);
    assert!(names::is_object_name(&binding), "binding name {binding:?}");
    assert!(names::is_object_name(&names::record_name(
        &connector, username
    )));
}

/// A subject expression compiles within its limits or is refused; one that compiles
/// evaluates for an identity without panicking.
pub fn cel_subjects(expression: &str) {
    let subjects = Subjects {
        expression: Some(expression.to_owned()),
        ..Subjects::default()
    };
    if let Ok(matcher) = SubjectMatcher::new(&subjects) {
        let _ = matcher.matches(&sample_identity());
    }
}

/// An HR export, as CSV and as JSON, read and planned against Identities the source owns:
/// whatever the file, every Identity written has a name Kubernetes takes and a username
/// its schema takes, and a worker whose row could not be used is never made a leaver.
pub fn hr_export(text: &str) {
    use crate::api::{ExportFormat, FieldMapping, MissingWorker};
    use source::plan::{self, Current};

    let mapping = FieldMapping {
        username: "user".into(),
        hire_date: Some("hired".into()),
        termination_date: Some("left".into()),
        state: Some("status".into()),
        manager: Some("manager".into()),
        attributes: [("department".to_owned(), "dept".to_owned())].into(),
        ..FieldMapping::default()
    };
    let owned = |username: &str| Current {
        spec: IdentitySpec {
            username: username.into(),
            ..sample_identity().spec
        },
        source: Some("hr/fuzz".into()),
        digest: None,
        removed_at: None,
    };
    let existing = [
        ("ada".to_owned(), owned("ada")),
        ("grace".to_owned(), owned("grace")),
    ]
    .into();
    let now = k8s_openapi::jiff::Timestamp::UNIX_EPOCH;
    for format in [ExportFormat::Csv, ExportFormat::Json] {
        let Ok(records) = source::export::parse(text, format) else {
            continue;
        };
        let p = plan::plan(
            "hr/fuzz",
            &records,
            &mapping,
            MissingWorker::Terminate,
            &existing,
            now,
        );
        for w in p.writes.iter().chain(&p.removals) {
            assert!(names::is_object_name(&w.name), "Identity name {:?}", w.name);
            let u = &w.spec.username;
            let ok = u.len() <= 128
                && u.starts_with(|c: char| c.is_ascii_alphanumeric())
                && u.chars()
                    .all(|c| c.is_ascii_alphanumeric() || "._@+-".contains(c));
            assert!(ok, "username {u:?}");
        }
        for problem in &p.problems {
            let named = problem.identity.as_deref();
            assert!(
                !p.removals.iter().any(|w| Some(w.name.as_str()) == named),
                "{named:?} left although its row was unusable"
            );
        }
    }
}

fn sample_identity() -> Identity {
    let spec: Result<IdentitySpec, _> = serde_json::from_value(serde_json::json!({
        "username": "ada.lovelace", "displayName": "Ada Lovelace",
        "emails": ["ada@example.com", "ada@corp.example"],
        "attributes": {"department": "engineering", "title": "Staff Engineer"}
    }));
    let Ok(spec) = spec else {
        unreachable!("the sample identity is valid")
    };
    let mut identity = Identity::new("ada", spec);
    identity.metadata.labels = Some([("team".to_owned(), "platform".to_owned())].into());
    identity
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;

    /// Every file of `fuzz/corpus/<target>`.
    fn corpus(target: &str) -> Vec<Vec<u8>> {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("fuzz/corpus")
            .join(target);
        let mut files: Vec<_> = std::fs::read_dir(&dir)
            .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
            .map(|e| e.unwrap().path())
            .collect();
        files.sort();
        assert!(!files.is_empty(), "{} is empty", dir.display());
        files.iter().map(|f| std::fs::read(f).unwrap()).collect()
    }

    #[test]
    fn the_corpus_replays_without_a_panic() {
        for input in corpus("scim_answer") {
            scim_answer(&input);
        }
        for input in corpus("ldap_names") {
            let (a, b) = halves(&input);
            ldap_names(&a, &b);
        }
        for input in corpus("kubernetes_grant") {
            let (a, b) = halves(&input);
            kubernetes_grant(&a, &b);
        }
        for input in corpus("cel_subjects") {
            cel_subjects(&String::from_utf8_lossy(&input));
        }
        for input in corpus("hr_export") {
            hr_export(&String::from_utf8_lossy(&input));
        }
    }
}
