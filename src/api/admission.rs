//! No escalation through Roster, enforced by the apiserver itself: ValidatingAdmission
//! Policies, checked like Kubernetes RBAC's own `bind` and `escalate`, and one that makes
//! the approver of a held removal the apiserver's word.
//!
//! - A RoleBinding's create, or a change of its spec (subjects, Role, time bounds), needs
//!   verb `bind` on the Role it names (`roles.roster.dev`, by name, in its namespace).
//! - A Role's create, or a change of its entitlements, needs verb `grant` on the
//!   Connector of each entitlement it adds or changes (`connectors.roster.dev`, by name),
//!   unless the author holds `escalate` on the Role.
//! - An IdentitySource's create, or a change of its spec, needs `create` and `update` on
//!   `identities.roster.dev` and `get` on the ConfigMap, bind password or push token
//!   Secret it reads: a source writes Identities, and must not let its author mint
//!   people they could not mint by hand.
//! - Writing a `ScimUser` (a user pushed to a source) needs `patch` on
//!   `identities.roster.dev`: only Roster's SCIM endpoint writes them for a pushing system.
//! - Setting or changing a Connector's (or an IdentitySource's) approval annotations
//!   (`roster.dev/approve-removals`, `roster.dev/approve-leavers`,
//!   `roster.dev/approved-by`) needs `roster.dev/approved-by`
//!   to be the requester's own username: audit records name the approver, and no one can
//!   approve in another's name.
//!
//! The policies ask the apiserver's authorizer (`authorizer.…check(verb)`), so no webhook
//! server runs and RBAC stays the one source of who may do what. They are generated from
//! here into `crds/admission.yaml`; a test fails when the checked-in copy is stale.

use k8s_openapi::{
    api::admissionregistration::v1::{
        MatchResources, NamedRuleWithOperations, ValidatingAdmissionPolicy,
        ValidatingAdmissionPolicyBinding, ValidatingAdmissionPolicyBindingSpec,
        ValidatingAdmissionPolicySpec, Validation, Variable,
    },
    apimachinery::pkg::apis::meta::v1::ObjectMeta,
};

use super::{GROUP, RenderError};

/// The verb on `roles.roster.dev` that lets a RoleBinding name a Role.
pub const BIND: &str = "bind";
/// The verb on `roles.roster.dev` that lets a Role grant what its author could not.
pub const ESCALATE: &str = "escalate";
/// The verb on `connectors.roster.dev` that lets a Role grant through a Connector.
pub const GRANT: &str = "grant";

/// The policy guarding RoleBindings.
pub const BIND_POLICY: &str = "roster.dev-bind";
/// The policy guarding Roles.
pub const ESCALATE_POLICY: &str = "roster.dev-escalate";
/// The policy recording who approves a Connector's held removals.
pub const APPROVAL_POLICY: &str = "roster.dev-approval";
/// The policy guarding IdentitySources: a source writes Identities, so its author must
/// be able to write them, and to read the export it names.
pub const SOURCE_POLICY: &str = "roster.dev-source";
/// The policy recording who approves an IdentitySource's held leavers.
pub const SOURCE_APPROVAL_POLICY: &str = "roster.dev-source-approval";
/// The policy guarding pushed SCIM users: each becomes a worker of its source, so writing
/// one takes what writing an Identity takes.
pub const SCIM_USER_POLICY: &str = "roster.dev-scim-user";

/// The Connector annotations an approval consists of; the last names the approver.
const APPROVAL_ANNOTATIONS: [&str; 3] = [
    "roster.dev/approve-removals",
    "roster.dev/approve-leavers",
    "roster.dev/approved-by",
];

/// `authorizer` for `resource` named by the CEL expression `name`, in the object's
/// namespace, asked about `verb`.
fn allowed(resource: &str, name: &str, verb: &str) -> String {
    format!(
        "authorizer.group('{GROUP}').resource('{resource}').namespace(object.metadata.namespace).name({name}).check('{verb}').allowed()"
    )
}

fn variable(name: &str, expression: String) -> Variable {
    Variable {
        name: name.to_owned(),
        expression,
    }
}

fn policy(
    name: &str,
    resource: &str,
    variables: Vec<Variable>,
    validation: Validation,
) -> ValidatingAdmissionPolicy {
    ValidatingAdmissionPolicy {
        metadata: ObjectMeta {
            name: Some(name.to_owned()),
            ..ObjectMeta::default()
        },
        spec: Some(ValidatingAdmissionPolicySpec {
            // An authorizer that cannot answer refuses: a policy that fails open would be
            // no control at all.
            failure_policy: Some("Fail".into()),
            match_constraints: Some(MatchResources {
                resource_rules: Some(vec![NamedRuleWithOperations {
                    api_groups: Some(vec![GROUP.into()]),
                    api_versions: Some(vec!["*".into()]),
                    operations: Some(vec!["CREATE".into(), "UPDATE".into()]),
                    // The main resource only: status writes are the operator's.
                    resources: Some(vec![resource.into()]),
                    ..NamedRuleWithOperations::default()
                }]),
                ..MatchResources::default()
            }),
            variables: Some(variables),
            validations: Some(vec![validation]),
            ..ValidatingAdmissionPolicySpec::default()
        }),
        status: None,
    }
}

/// RoleBindings: `bind` on the Role named, whenever the spec is new or changed.
fn bind_policy() -> ValidatingAdmissionPolicy {
    let changed = "request.operation == 'CREATE' || object.spec != oldObject.spec".to_owned();
    policy(
        BIND_POLICY,
        "rolebindings",
        vec![variable("changed", changed)],
        Validation {
            expression: format!(
                "!variables.changed || {}",
                allowed("roles", "object.spec.role", BIND)
            ),
            message_expression: Some(format!(
                "request.userInfo.username + ' may not bind Role ' + object.spec.role + ': that needs verb {BIND} on roles.{GROUP} ' + object.spec.role + ' in namespace ' + object.metadata.namespace"
            )),
            reason: Some("Forbidden".into()),
            ..Validation::default()
        },
    )
}

/// Roles: `grant` on the Connector of every entitlement added or changed, or `escalate`
/// on the Role.
fn escalate_policy() -> ValidatingAdmissionPolicy {
    // An entitlement whose membership authority changed is a change: Authoritative
    // removes members Roster did not add.
    let added = "object.spec.entitlements.filter(e, request.operation == 'CREATE' || !(e in oldObject.spec.entitlements))".to_owned();
    let escalate = allowed("roles", "object.metadata.name", ESCALATE);
    let denied = format!(
        "variables.added.filter(e, !variables.escalate && !{})",
        allowed("connectors", "e.connector", GRANT)
    );
    policy(
        ESCALATE_POLICY,
        "roles",
        vec![
            variable("added", added),
            variable("escalate", escalate),
            variable("denied", denied),
        ],
        Validation {
            expression: "size(variables.denied) == 0".into(),
            // A message may not call the authorizer, so it cannot say which of the added
            // entitlements were refused: it names them all.
            message_expression: Some(format!(
                "request.userInfo.username + ' may not grant ' + variables.added.map(e, e.connector + '/' + e.name).join(', ') + ' through Role ' + object.metadata.name + ': each needs verb {GRANT} on its Connector (connectors.{GROUP} ' + variables.added.map(e, e.connector).join(', ') + ') in namespace ' + object.metadata.namespace + ', or verb {ESCALATE} on roles.{GROUP} ' + object.metadata.name"
            )),
            reason: Some("Forbidden".into()),
            ..Validation::default()
        },
    )
}

/// Connectors and IdentitySources (`resource`, under policy `name`): an approval set or
/// changed names its requester in `roster.dev/approved-by`.
fn approval_policy(name: &str, resource: &str, kind: &str) -> ValidatingAdmissionPolicy {
    // An annotation's value, '' when absent; `o` is `object` or `oldObject`.
    let value = |o: &str, k: &str| {
        format!(
            "(has({o}.metadata.annotations) && {k} in {o}.metadata.annotations ? {o}.metadata.annotations[{k}] : '')"
        )
    };
    let keys = APPROVAL_ANNOTATIONS
        .iter()
        .map(|k| format!("'{k}'"))
        .collect::<Vec<_>>()
        .join(", ");
    // Clearing an approval needs no name: it releases nothing.
    let changed = format!(
        "[{keys}].exists(k, {new} != '' && (request.operation == 'CREATE' || {new} != {old}))",
        new = value("object", "k"),
        old = value("oldObject", "k"),
    );
    let by = APPROVAL_ANNOTATIONS[2];
    policy(
        name,
        resource,
        vec![variable("changed", changed)],
        Validation {
            expression: format!(
                "!variables.changed || {} == request.userInfo.username",
                value("object", &format!("'{by}'"))
            ),
            message_expression: Some(format!(
                "request.userInfo.username + ' may approve removals on {kind} ' + object.metadata.name + ' only in their own name: set the annotation {by}=' + request.userInfo.username + ' with the approval'"
            )),
            reason: Some("Forbidden".into()),
            ..Validation::default()
        },
    )
}

/// IdentitySources: whoever creates one or changes its spec could write Identities
/// (`create` and `update` on `identities.roster.dev`) and read the ConfigMap, the bind
/// password Secret, the download credentials or the push token Secret it names, so a source never lets its author mint people they could not mint by hand. One
/// validation per check: each authorizer call is costly enough that three in one
/// expression exceed the apiserver's per-expression cost limit.
fn source_policy() -> ValidatingAdmissionPolicy {
    let changed = "request.operation == 'CREATE' || object.spec != oldObject.spec".to_owned();
    let needs = |check: String, what: &str| Validation {
        expression: format!("!variables.changed || {check}"),
        message_expression: Some(format!(
            "request.userInfo.username + ' may not write IdentitySource ' + object.metadata.name + ' in namespace ' + object.metadata.namespace + ': that needs {what}'"
        )),
        reason: Some("Forbidden".into()),
        ..Validation::default()
    };
    let identities = |verb: &str| {
        needs(
            format!("authorizer.group('{GROUP}').resource('identities').check('{verb}').allowed()"),
            &format!("verb {verb} on identities.{GROUP}"),
        )
    };
    let export = needs(
        "!has(object.spec.hrExport) || !has(object.spec.hrExport.configMap) || authorizer.group('').resource('configmaps').namespace(object.metadata.namespace).name(object.spec.hrExport.configMap.name).check('get').allowed()".into(),
        "verb get on the ConfigMap it reads",
    );
    let download_token = needs(
        "!has(object.spec.hrExport) || !has(object.spec.hrExport.http) || !has(object.spec.hrExport.http.tokenSecretRef) || authorizer.group('').resource('secrets').namespace(object.metadata.namespace).name(object.spec.hrExport.http.tokenSecretRef.name).check('get').allowed()".into(),
        "verb get on the Secret holding its download token",
    );
    let download_password = needs(
        "!has(object.spec.hrExport) || !has(object.spec.hrExport.http) || !has(object.spec.hrExport.http.basicAuth) || authorizer.group('').resource('secrets').namespace(object.metadata.namespace).name(object.spec.hrExport.http.basicAuth.passwordSecretRef.name).check('get').allowed()".into(),
        "verb get on the Secret holding its download password",
    );
    let password = needs(
        "!has(object.spec.ldap) || authorizer.group('').resource('secrets').namespace(object.metadata.namespace).name(object.spec.ldap.bindPasswordSecretRef.name).check('get').allowed()".into(),
        "verb get on the Secret holding its bind password",
    );
    let token = needs(
        "!has(object.spec.scim) || authorizer.group('').resource('secrets').namespace(object.metadata.namespace).name(object.spec.scim.tokenSecretRef.name).check('get').allowed()".into(),
        "verb get on the Secret holding its push token",
    );
    let mut p = policy(
        SOURCE_POLICY,
        "identitysources",
        vec![variable("changed", changed)],
        identities("create"),
    );
    if let Some(spec) = p.spec.as_mut() {
        spec.validations.get_or_insert_with(Vec::new).extend([
            identities("update"),
            export,
            download_token,
            download_password,
            password,
            token,
        ]);
    }
    p
}

/// ScimUsers: Roster's SCIM endpoint writes them for a pushing system it has checked the
/// token of; anyone else writing one by hand would mint a worker through the source, so
/// it needs `patch` on `identities.roster.dev`, as writing the Identity itself would.
fn scim_user_policy() -> ValidatingAdmissionPolicy {
    policy(
        SCIM_USER_POLICY,
        "scimusers",
        Vec::new(),
        Validation {
            expression: format!(
                "authorizer.group('{GROUP}').resource('identities').check('patch').allowed()"
            ),
            message_expression: Some(format!(
                "request.userInfo.username + ' may not write a ScimUser in namespace ' + object.metadata.namespace + ': a pushed user becomes an Identity, so that needs verb patch on identities.{GROUP} (HR systems push through the SCIM endpoint)'"
            )),
            reason: Some("Forbidden".into()),
            ..Validation::default()
        },
    )
}

/// Every policy.
pub fn policies() -> Vec<ValidatingAdmissionPolicy> {
    vec![
        bind_policy(),
        escalate_policy(),
        approval_policy(APPROVAL_POLICY, "connectors", "Connector"),
        source_policy(),
        approval_policy(SOURCE_APPROVAL_POLICY, "identitysources", "IdentitySource"),
        scim_user_policy(),
    ]
}

/// A binding per policy, denying in every namespace.
pub fn bindings() -> Vec<ValidatingAdmissionPolicyBinding> {
    policies()
        .iter()
        .filter_map(|p| p.metadata.name.clone())
        .map(|name| ValidatingAdmissionPolicyBinding {
            metadata: ObjectMeta {
                name: Some(name.clone()),
                ..ObjectMeta::default()
            },
            spec: ValidatingAdmissionPolicyBindingSpec {
                policy_name: name,
                validation_actions: vec!["Deny".into()],
                ..ValidatingAdmissionPolicyBindingSpec::default()
            },
        })
        .collect()
}

/// The policies and their bindings as one multi-document YAML stream.
pub fn admission_yaml() -> Result<String, RenderError> {
    let mut out = String::new();
    let docs = policies()
        .into_iter()
        .map(|p| (p.metadata.name.clone(), serde_yaml_ng::to_string(&p)))
        .chain(
            bindings()
                .into_iter()
                .map(|b| (b.metadata.name.clone(), serde_yaml_ng::to_string(&b))),
        );
    for (name, doc) in docs {
        let doc = doc.map_err(|source| RenderError::Yaml {
            name: name.unwrap_or_default(),
            source,
        })?;
        out.push_str("---\n");
        out.push_str(&doc);
    }
    Ok(out)
}
