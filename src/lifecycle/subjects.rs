//! Who a RoleBinding applies to: by name, by label selector, or by a CEL expression over
//! the identity. An identity matching any of the three is a subject.

use std::collections::BTreeMap;

use kube::{
    ResourceExt,
    core::{Selector, SelectorExt},
};
use serde::Serialize;

use super::cel_cost;
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
    /// The CEL expression does not parse.
    #[error("invalid CEL expression: {0}")]
    Expression(String),
    /// The CEL expression is longer than [`cel_cost::MAX_BYTES`].
    #[error("the CEL expression is {0} bytes long; the limit is {max}", max = cel_cost::MAX_BYTES)]
    ExpressionTooLarge(usize),
    /// The CEL expression could take more than [`cel_cost::MAX_COST`] steps per identity.
    #[error(
        "the CEL expression could take {0} steps per identity; the limit is {max} \
         (nested comprehensions over lists of unknown size cost the most)",
        max = cel_cost::MAX_COST
    )]
    ExpressionTooCostly(u64),
    /// The CEL expression nests brackets deeper than [`cel_cost::MAX_NESTING`], or its
    /// parsed tree is deeper than [`cel_cost::MAX_DEPTH`].
    #[error(
        "the CEL expression nests {0} levels deep; the limits are {nesting} brackets and \
         {depth} levels of operators",
        nesting = cel_cost::MAX_NESTING,
        depth = cel_cost::MAX_DEPTH
    )]
    ExpressionTooDeep(usize),
}

impl SubjectError {
    /// A CamelCase reason for conditions.
    pub fn reason(&self) -> &'static str {
        match self {
            Self::Selector(_) => "InvalidSelector",
            Self::Expression(_) => "InvalidExpression",
            Self::ExpressionTooLarge(_) => "ExpressionTooLarge",
            Self::ExpressionTooCostly(_) => "ExpressionTooCostly",
            Self::ExpressionTooDeep(_) => "ExpressionTooDeep",
        }
    }
}

/// Below this size and nesting an expression parses on any thread's stack (a debug
/// build parses ten levels or a 250-operator chain in 2 MiB).
const INLINE_BYTES: usize = 256;
const INLINE_NESTING: usize = 4;
/// The stack a larger expression is parsed on: enough for [`cel_cost::MAX_BYTES`] at
/// [`cel_cost::MAX_NESTING`], in a debug build, with room to spare.
const PARSE_STACK: usize = 32 << 20;

/// Parses `source`, on a thread of its own with a large stack unless it is small: the
/// parser recurses, and a stack overflow would abort the operator.
fn parse(source: &str) -> Result<cel::Program, SubjectError> {
    let compile =
        |s: &str| cel::Program::compile(s).map_err(|e| SubjectError::Expression(e.to_string()));
    if source.len() <= INLINE_BYTES && cel_cost::nesting(source) <= INLINE_NESTING {
        return compile(source);
    }
    let owned = source.to_owned();
    std::thread::Builder::new()
        .name("cel-parse".into())
        .stack_size(PARSE_STACK)
        .spawn(move || compile(&owned))
        .map_err(|e| SubjectError::Expression(format!("cannot start the parser: {e}")))?
        .join()
        .unwrap_or_else(|_| Err(SubjectError::Expression("the parser failed".into())))
}

/// Compiles a subject expression within the size and cost limits.
fn compile(source: &str) -> Result<cel::Program, SubjectError> {
    if source.len() > cel_cost::MAX_BYTES {
        return Err(SubjectError::ExpressionTooLarge(source.len()));
    }
    let nesting = cel_cost::nesting(source);
    if nesting > cel_cost::MAX_NESTING {
        return Err(SubjectError::ExpressionTooDeep(nesting));
    }
    let program = parse(source)?;
    let depth = cel_cost::depth(&program.expression().expr);
    if depth > cel_cost::MAX_DEPTH {
        return Err(SubjectError::ExpressionTooDeep(depth));
    }
    let cost = cel_cost::estimate(&program.expression().expr);
    if cost > cel_cost::MAX_COST {
        return Err(SubjectError::ExpressionTooCostly(cost));
    }
    Ok(program)
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
        let expression = subjects.expression.as_deref().map(compile).transpose()?;
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
        assert!(matches!(bad, Err(SubjectError::Expression(_))));
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
        assert!(matches!(costly, Err(SubjectError::ExpressionTooCostly(_))));
        let long = format!("identity.username == \"{}\"", "a".repeat(5000));
        let large = SubjectMatcher::new(&subjects(serde_json::json!({"expression": long})));
        assert!(matches!(large, Err(SubjectError::ExpressionTooLarge(_))));
        // Both would overflow the stack: the first parsing, the second evaluating.
        for deep in [
            format!("{}true{}", "(".repeat(90), ")".repeat(90)),
            format!("size(identity.username){} > 0", " + 1".repeat(200)),
        ] {
            let refused = SubjectMatcher::new(&subjects(serde_json::json!({"expression": deep})));
            assert!(
                matches!(refused, Err(SubjectError::ExpressionTooDeep(_))),
                "{:?}",
                refused.err()
            );
        }
    }
}
