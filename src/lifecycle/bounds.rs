//! What a Connector may grant: its `allowedEntitlements` patterns, and the rule that a
//! privileged entitlement needs naming exactly. Pure; the backends tell which
//! entitlements are privileged (that needs the app).

/// A Connector's bounds.
#[derive(Clone, Copy, Debug)]
pub struct Bounds<'a> {
    allowed: &'a [String],
}

impl<'a> Bounds<'a> {
    /// The bounds `allowed` (a Connector's `allowedEntitlements`) sets.
    pub fn new(allowed: &'a [String]) -> Self {
        Self { allowed }
    }

    /// Whether `entitlement` may be granted at all: no patterns, or one matches.
    pub fn allows(&self, entitlement: &str) -> bool {
        self.allowed.is_empty() || self.allowed.iter().any(|p| matches(p, entitlement))
    }

    /// Whether `entitlement` is listed by its exact name, as a privileged one must be.
    pub fn names(&self, entitlement: &str) -> bool {
        self.allowed.iter().any(|p| p == entitlement)
    }
}

/// Whether `text` matches `pattern`, where `*` matches any run of characters (none
/// included) and every other character itself.
pub fn matches(pattern: &str, text: &str) -> bool {
    let mut parts = pattern.split('*');
    // `split` always yields a first part.
    let first = parts.next().unwrap_or_default();
    let Some(mut rest) = text.strip_prefix(first) else {
        return false;
    };
    let middle: Vec<&str> = parts.collect();
    let Some((last, middle)) = middle.split_last() else {
        // No `*`: the whole text must be the pattern.
        return rest.is_empty();
    };
    for part in middle {
        match rest.find(part) {
            Some(i) => rest = &rest[i + part.len()..],
            None => return false,
        }
    }
    rest.len() >= last.len() && rest.ends_with(last)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn stars_match_any_run_and_nothing_else_is_special() {
        for (pattern, text, want) in [
            ("ClusterRole/view", "ClusterRole/view", true),
            ("ClusterRole/view", "ClusterRole/viewer", false),
            ("ClusterRole/view", "xClusterRole/view", false),
            ("Role/team-*/edit", "Role/team-a/edit", true),
            ("Role/team-*/edit", "Role/team-/edit", true),
            ("Role/team-*/edit", "Role/team-a/admin", false),
            ("app_*", "app_readers", true),
            ("app_*", "ap", false),
            ("*", "", true),
            ("*admin*", "cluster-admin", true),
            ("a*a", "a", false),
            ("a*a", "aa", true),
            ("a.b", "axb", false),
            ("", "", true),
            ("", "x", false),
        ] {
            assert_eq!(matches(pattern, text), want, "{pattern:?} ~ {text:?}");
        }
    }

    #[test]
    fn no_patterns_allow_everything_but_name_nothing() {
        let none = Bounds::new(&[]);
        assert!(none.allows("ClusterRole/cluster-admin"));
        assert!(!none.names("ClusterRole/cluster-admin"));
        let some = [
            "ClusterRole/*".to_owned(),
            "ClusterRole/cluster-admin".to_owned(),
        ];
        let b = Bounds::new(&some);
        assert!(b.allows("ClusterRole/edit") && !b.allows("Role/ns/edit"));
        assert!(b.names("ClusterRole/cluster-admin") && !b.names("ClusterRole/edit"));
    }

    proptest! {
        /// A pattern without `*` matches exactly itself; `*` alone matches anything; a
        /// text always matches the pattern made of itself with a `*` anywhere inside.
        #[test]
        fn matching_agrees_with_its_definition(text in "[a-z/_-]{0,12}", cut in 0usize..13) {
            prop_assert!(matches(&text, &text));
            prop_assert!(matches("*", &text));
            let cut = cut.min(text.len());
            let starred = format!("{}*{}", &text[..cut], &text[cut..]);
            prop_assert!(matches(&starred, &text));
            let longer = format!("{text}x");
            prop_assert!(!matches(&text, &longer));
        }
    }
}
