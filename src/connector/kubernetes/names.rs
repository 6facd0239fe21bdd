//! What entitlement strings mean on a cluster, and the names and labels Roster gives the
//! objects it owns there. Names are derived with FNV-1a (stable across builds and
//! releases, unlike `std`'s hasher), so the same account and entitlement always map to
//! the same binding and a restart never duplicates one.

use std::fmt;

/// The label on every object Roster creates on a cluster; bindings without it are never
/// read as Roster's, changed or deleted.
pub const MANAGED_BY: (&str, &str) = ("app.kubernetes.io/managed-by", "roster");
/// The label naming the Connector that made an object (see [`connector_key`]). Two
/// Connectors on one cluster never read, change or delete each other's objects.
pub const CONNECTOR_LABEL: &str = "roster.dev/connector";
/// The label tying a binding or record to one account (a hash of the username: label
/// values are short and restricted).
pub const ACCOUNT_LABEL: &str = "roster.dev/account";
/// The label marking a person's account record.
pub const RECORD_LABEL: &str = "roster.dev/account-record";
/// Annotation: the Identity that owns the object (the ownership mark).
pub const IDENTITY_ANNOTATION: &str = "roster.dev/identity";
/// Annotation: the account's username, as given.
pub const USERNAME_ANNOTATION: &str = "roster.dev/username";
/// Annotation: the entitlement string a binding grants.
pub const ENTITLEMENT_ANNOTATION: &str = "roster.dev/entitlement";
/// Annotation on a record: `false` while the account is disabled.
pub const ACTIVE_ANNOTATION: &str = "roster.dev/active";

/// 64-bit FNV-1a.
fn fnv1a(parts: &[&str]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for (i, part) in parts.iter().enumerate() {
        if i > 0 {
            // A separator no name contains, so ("ab","c") and ("a","bc") differ.
            h ^= 0xff;
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
        for b in part.bytes() {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
    }
    h
}

/// The value of [`CONNECTOR_LABEL`] for the Connector `namespace/name`.
pub fn connector_key(namespace: &str, name: &str) -> String {
    format!("{:016x}", fnv1a(&[namespace, name]))
}

/// The value of [`ACCOUNT_LABEL`] for `username`.
pub fn account_key(username: &str) -> String {
    format!("{:016x}", fnv1a(&[username]))
}

/// The name of a person's account record (a ConfigMap) kept by the Connector `connector`
/// (its [`connector_key`]).
pub fn record_name(connector: &str, username: &str) -> String {
    format!("roster-account-{:016x}", fnv1a(&[connector, username]))
}

/// The name of the binding through which the Connector `connector` gives `username` the
/// entitlement `entitlement`. The Connector is in the hash so that two of them granting
/// one username the same role make two bindings, and revoking one leaves the other.
pub fn binding_name(connector: &str, username: &str, entitlement: &str) -> String {
    format!("roster-{:016x}", fnv1a(&[connector, username, entitlement]))
}

/// Whether `name` can name a ServiceAccount (an RFC 1123 subdomain).
pub fn is_object_name(name: &str) -> bool {
    let b = name.as_bytes();
    !b.is_empty()
        && b.len() <= 253
        && b.iter()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-' || *c == b'.')
        && b[0].is_ascii_alphanumeric()
        && b[b.len() - 1].is_ascii_alphanumeric()
}

/// What an entitlement string grants.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Grant {
    /// `ClusterRole/NAME`: a ClusterRoleBinding to the ClusterRole.
    ClusterRole {
        /// The ClusterRole.
        name: String,
    },
    /// `ClusterRole/NAMESPACE/NAME`: a RoleBinding in the namespace to the ClusterRole.
    ClusterRoleIn {
        /// Where the binding lives.
        namespace: String,
        /// The ClusterRole.
        name: String,
    },
    /// `Role/NAMESPACE/NAME`: a RoleBinding in the namespace to the Role.
    Role {
        /// The Role's namespace.
        namespace: String,
        /// The Role.
        name: String,
    },
}

impl Grant {
    /// Parses an entitlement string; `None` when it is not one of the three forms.
    pub fn parse(entitlement: &str) -> Option<Self> {
        let parts: Vec<&str> = entitlement.split('/').collect();
        let ok = |s: &&str| is_object_name(s);
        match parts.as_slice() {
            ["ClusterRole", name] if ok(name) => Some(Self::ClusterRole {
                name: (*name).to_owned(),
            }),
            ["ClusterRole", ns, name] if ok(ns) && ok(name) => Some(Self::ClusterRoleIn {
                namespace: (*ns).to_owned(),
                name: (*name).to_owned(),
            }),
            ["Role", ns, name] if ok(ns) && ok(name) => Some(Self::Role {
                namespace: (*ns).to_owned(),
                name: (*name).to_owned(),
            }),
            _ => None,
        }
    }

    /// The namespace of the binding; `None` for a ClusterRoleBinding.
    pub fn binding_namespace(&self) -> Option<&str> {
        match self {
            Self::ClusterRole { .. } => None,
            Self::ClusterRoleIn { namespace, .. } | Self::Role { namespace, .. } => Some(namespace),
        }
    }

    /// The `roleRef` kind.
    pub fn role_kind(&self) -> &'static str {
        match self {
            Self::Role { .. } => "Role",
            _ => "ClusterRole",
        }
    }

    /// The role's name.
    pub fn role_name(&self) -> &str {
        match self {
            Self::ClusterRole { name }
            | Self::ClusterRoleIn { name, .. }
            | Self::Role { name, .. } => name,
        }
    }
}

/// Verbs that let their holder give out or take on more than the role itself says.
const ESCALATING_VERBS: [&str; 4] = ["*", "escalate", "bind", "impersonate"];

/// Why binding `grant`'s role, with `rules`, is privileged, if it is: `cluster-admin`,
/// a rule with an escalating verb, or an aggregated ClusterRole (its rules are filled in
/// by the cluster and may grow after the check). Pure.
pub fn privileged(
    grant: &Grant,
    rules: &[k8s_openapi::api::rbac::v1::PolicyRule],
    aggregated: bool,
) -> Option<String> {
    if matches!(
        grant,
        Grant::ClusterRole { .. } | Grant::ClusterRoleIn { .. }
    ) && grant.role_name() == "cluster-admin"
    {
        return Some(format!("{grant} is cluster-admin"));
    }
    if aggregated {
        return Some(format!(
            "{grant} aggregates other ClusterRoles: its rules may grow after any check"
        ));
    }
    rules.iter().find_map(|r| {
        let verb = r
            .verbs
            .iter()
            .find(|v| ESCALATING_VERBS.contains(&v.as_str()))?;
        Some(format!("{grant} allows verb {verb:?}"))
    })
}

impl fmt::Display for Grant {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::ClusterRole { name } => write!(f, "ClusterRole/{name}"),
            Self::ClusterRoleIn { namespace, name } => write!(f, "ClusterRole/{namespace}/{name}"),
            Self::Role { namespace, name } => write!(f, "Role/{namespace}/{name}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    #[test]
    fn cluster_admin_aggregates_and_escalating_verbs_are_privileged() {
        use k8s_openapi::api::rbac::v1::PolicyRule;
        let rule = |verbs: &[&str]| PolicyRule {
            verbs: verbs.iter().map(|v| (*v).to_owned()).collect(),
            ..PolicyRule::default()
        };
        let grant = |s: &str| Grant::parse(s).expect("an entitlement");
        let reader = [rule(&["get", "list"])];
        assert_eq!(
            privileged(&grant("ClusterRole/reader"), &reader, false),
            None
        );
        assert_eq!(privileged(&grant("Role/ns/reader"), &reader, false), None);
        let admin = privileged(&grant("ClusterRole/ns/cluster-admin"), &reader, false);
        assert!(admin.is_some_and(|w| w.ends_with("is cluster-admin")));
        // A namespaced Role may carry the name without being the ClusterRole.
        assert_eq!(
            privileged(&grant("Role/ns/cluster-admin"), &reader, false),
            None
        );
        assert!(privileged(&grant("ClusterRole/view"), &reader, true).is_some());
        for verb in ["*", "escalate", "bind", "impersonate"] {
            let why = privileged(&grant("Role/ns/x"), &[rule(&["get"]), rule(&[verb])], false);
            assert!(why.is_some_and(|w| w.contains(verb)), "{verb}");
        }
    }

    #[test]
    fn entitlement_strings_parse_into_three_forms() {
        assert_eq!(
            Grant::parse("ClusterRole/view"),
            Some(Grant::ClusterRole {
                name: "view".into()
            })
        );
        let g = Grant::parse("ClusterRole/team-a/edit").unwrap();
        assert_eq!(
            (g.binding_namespace(), g.role_kind()),
            (Some("team-a"), "ClusterRole")
        );
        let g = Grant::parse("Role/team-a/deployer").unwrap();
        assert_eq!((g.role_kind(), g.role_name()), ("Role", "deployer"));
        for bad in [
            "view",
            "Role/deployer",
            "ClusterRole/",
            "ClusterRole/View",
            "Role/a/b/c",
            "clusterrole/view",
            "ClusterRole/-x",
        ] {
            assert_eq!(Grant::parse(bad), None, "{bad}");
        }
    }

    #[test]
    fn names_are_stable_across_builds() {
        // Pinned values: a change here would orphan every binding on every cluster.
        assert_eq!(account_key(""), "cbf29ce484222325");
        assert_eq!(account_key("a"), "af63dc4c8601ec8c");
        assert_eq!(connector_key("team-a", "rbac"), "1abddfac64f25717");
        assert_eq!(
            binding_name("k", "ada", "ClusterRole/view").len(),
            "roster-".len() + 16
        );
        assert_ne!(binding_name("k", "ab", "c"), binding_name("k", "a", "bc"));
        assert_ne!(
            binding_name("k1", "ada", "ClusterRole/view"),
            binding_name("k2", "ada", "ClusterRole/view"),
            "two Connectors never share a binding"
        );
        assert_ne!(record_name("k1", "ada"), record_name("k2", "ada"));
    }

    #[test]
    fn object_names_follow_rfc_1123() {
        assert!(is_object_name("ci-bot.team-a"));
        for bad in ["", "Bot", "bot_1", "-bot", "bot-", "a@b"] {
            assert!(!is_object_name(bad), "{bad}");
        }
    }

    proptest! {
        #[test]
        fn every_parsed_grant_prints_back_to_its_string(
            ns in "[a-z][a-z0-9-]{0,10}[a-z0-9]",
            name in "[a-z][a-z0-9.-]{0,10}[a-z0-9]",
            form in 0..3u8,
        ) {
            let s = match form {
                0 => format!("ClusterRole/{name}"),
                1 => format!("ClusterRole/{ns}/{name}"),
                _ => format!("Role/{ns}/{name}"),
            };
            prop_assert_eq!(Grant::parse(&s).map(|g| g.to_string()), Some(s));
        }
    }
}
