//! Who a RoleBinding applies to: by name, by label selector, or by a CEL expression over
//! the identity. An identity matching any of the three is a subject.

use std::collections::BTreeMap;

use kube::{
    ResourceExt,
    core::{Selector, SelectorExt},
};
use serde::Serialize;

use super::expression::{self, ExpressionError};
use crate::api::{Identity, Subjects};

/// A binding's subject rule, compiled once and evaluated for many identities.
pub struct SubjectMatcher {
    names: Vec<String>,
    selector: Option<Selector>,
    expression: Option<cel::Program>,
}

/// Why a binding's subjects cannot be evaluated. The binding then grants nothing.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SubjectError {
    /// The label selector is malformed.
    #[error("invalid label selector: {0}")]
    Selector(String),
    /// The CEL expression cannot be used.
    #[error(transparent)]
    Expression(#[from] ExpressionError),
}

impl SubjectError {
    /// A CamelCase reason for conditions.
    pub fn reason(&self) -> &'static str {
        match self {
            Self::Selector(_) => "InvalidSelector",
            Self::Expression(e) => e.reason(),
        }
    }
}

/// The identity as a CEL expression sees it: `identity.username`, `identity.kind`,
/// `identity.state`, `identity.attributes.department`, `identity.labels["team"]`, …
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct IdentityVar<'a> {
    name: String,
    username: &'a str,
    kind: &'static str,
    state: &'static str,
    display_name: &'a str,
    emails: &'a [String],
    attributes: &'a BTreeMap<String, String>,
    labels: &'a BTreeMap<String, String>,
}

impl SubjectMatcher {
    /// Compiles a binding's subjects.
    pub fn new(subjects: &Subjects) -> Result<Self, SubjectError> {
        let selector = subjects
            .selector
            .clone()
            .map(Selector::try_from)
            .transpose()
            .map_err(|e| SubjectError::Selector(e.to_string()))?;
        let expression = subjects
            .expression
            .as_deref()
            .map(expression::compile)
            .transpose()?;
        Ok(Self {
            names: subjects.identities.clone(),
            selector,
            expression,
        })
    }

    /// Whether `identity` is a subject. An expression that fails for this identity (a
    /// missing attribute, a non-boolean result) does not match it; the error is returned
    /// so the binding can report it.
    pub fn matches(&self, identity: &Identity) -> Result<bool, String> {
        let name = identity.name_any();
        if self.names.contains(&name) {
            return Ok(true);
        }
        if self
            .selector
            .as_ref()
            .is_some_and(|s| s.matches(identity.labels()))
        {
            return Ok(true);
        }
        let Some(program) = &self.expression else {
            return Ok(false);
        };
        let var = IdentityVar {
            name,
            username: &identity.spec.username,
            kind: match identity.spec.kind {
                crate::api::IdentityKind::Person => "Person",
                crate::api::IdentityKind::Service => "Service",
            },
            state: match identity.spec.state {
                crate::api::LifecycleState::Active => "Active",
                crate::api::LifecycleState::Suspended => "Suspended",
                crate::api::LifecycleState::Terminated => "Terminated",
            },
            display_name: identity.spec.display_name.as_deref().unwrap_or(""),
            emails: &identity.spec.emails,
            attributes: &identity.spec.attributes,
            labels: identity.labels(),
        };
        let mut ctx = cel::Context::default();
        ctx.add_variable("identity", var)
            .map_err(|e| e.to_string())?;
        match program.execute(&ctx) {
            Ok(cel::Value::Bool(b)) => Ok(b),
            Ok(other) => Err(format!("expression gave {other:?}, not a boolean")),
            Err(e) => Err(e.to_string()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::{IdentitySpec, LifecycleState};

    fn identity(name: &str, dept: Option<&str>, labels: &[(&str, &str)]) -> Identity {
        let mut spec: IdentitySpec =
            serde_json::from_value(serde_json::json!({"username": name})).unwrap();
        if let Some(d) = dept {
            spec.attributes.insert("department".into(), d.into());
        }
        let mut i = Identity::new(name, spec);
        i.metadata.labels = Some(
            labels
                .iter()
                .map(|(k, v)| ((*k).into(), (*v).into()))
                .collect(),
        );
        i
    }

    fn subjects(v: serde_json::Value) -> Subjects {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn by_name_label_or_expression() {
        let m = SubjectMatcher::new(&subjects(serde_json::json!({
            "identities": ["bob"],
            "selector": {"matchLabels": {"team": "platform"}},
            "expression": "identity.attributes.department == \"engineering\""
        })))
        .unwrap();
        assert_eq!(m.matches(&identity("bob", None, &[])), Ok(true));
        assert_eq!(
            m.matches(&identity("carol", Some("sales"), &[("team", "platform")])),
            Ok(true)
        );
        assert_eq!(
            m.matches(&identity("ada", Some("engineering"), &[])),
            Ok(true)
        );
        assert_eq!(
            m.matches(&identity("dave", Some("sales"), &[("team", "ops")])),
            Ok(false)
        );
    }

    #[test]
    fn expression_sees_kind_state_and_labels() {
        let m = SubjectMatcher::new(&subjects(serde_json::json!({
            "expression": "identity.kind == \"Person\" && identity.state == \"Active\" && identity.labels[\"team\"] == \"x\""
        })))
        .unwrap();
        assert_eq!(m.matches(&identity("a", None, &[("team", "x")])), Ok(true));
        let mut suspended = identity("b", None, &[("team", "x")]);
        suspended.spec.state = LifecycleState::Suspended;
        assert_eq!(m.matches(&suspended), Ok(false));
    }

    #[test]
    fn a_missing_attribute_is_no_match_with_a_reason() {
        let m = SubjectMatcher::new(&subjects(serde_json::json!({
            "expression": "identity.attributes.department == \"engineering\""
        })))
        .unwrap();
        assert!(m.matches(&identity("a", None, &[])).is_err());
        let guarded = SubjectMatcher::new(&subjects(serde_json::json!({
            "expression": "has(identity.attributes.department) && identity.attributes.department == \"engineering\""
        })))
        .unwrap();
        assert_eq!(guarded.matches(&identity("a", None, &[])), Ok(false));
    }

    #[test]
    fn bad_input_is_an_error_not_a_panic() {
        let bad = SubjectMatcher::new(&subjects(
            serde_json::json!({"expression": "identity.attributes.("}),
        ));
        assert!(matches!(
            bad,
            Err(SubjectError::Expression(ExpressionError::Invalid(_)))
        ));
        let not_bool = SubjectMatcher::new(&subjects(
            serde_json::json!({"expression": "identity.username"}),
        ))
        .unwrap();
        assert!(not_bool.matches(&identity("a", None, &[])).is_err());
        let bad_selector = SubjectMatcher::new(&subjects(serde_json::json!({
            "selector": {"matchExpressions": [{"key": "team", "operator": "Bogus"}]}
        })));
        assert!(matches!(bad_selector, Err(SubjectError::Selector(_))));
        let costly = SubjectMatcher::new(&subjects(serde_json::json!({
            "expression": "identity.labels.all(a, identity.labels.all(b, a != b))"
        })));
        assert!(matches!(
            costly,
            Err(SubjectError::Expression(ExpressionError::TooCostly(_)))
        ));
        let long = format!("identity.username == \"{}\"", "a".repeat(5000));
        let large = SubjectMatcher::new(&subjects(serde_json::json!({"expression": long})));
        assert!(matches!(
            large,
            Err(SubjectError::Expression(ExpressionError::TooLarge(_)))
        ));
        // Both would overflow the stack: the first parsing, the second evaluating.
        for deep in [
            format!("{}true{}", "(".repeat(90), ")".repeat(90)),
            format!("size(identity.username){} > 0", " + 1".repeat(200)),
        ] {
            let refused = SubjectMatcher::new(&subjects(serde_json::json!({"expression": deep})));
            assert!(
                matches!(
                    refused,
                    Err(SubjectError::Expression(ExpressionError::TooDeep(_)))
                ),
                "{:?}",
                refused.err()
            );
        }
    }
}
