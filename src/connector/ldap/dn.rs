//! Distinguished names and search filters. Every value Roster puts into a DN is escaped
//! per RFC 4514 and every value in a filter per RFC 4515 (with `ldap3`'s escapers); DNs
//! read back from the server are parsed here, never spliced.

use ldap3::{dn_escape, ldap_escape};

/// The DN of a user entry Roster names: `uid=<username>,<container>`.
pub fn user_dn(username: &str, container: &str) -> String {
    format!("uid={},{container}", dn_escape(username))
}

/// The DN of the group an entitlement names: `cn=<name>,<groups_dn>`.
pub fn group_dn(name: &str, groups_dn: &str) -> String {
    format!("cn={},{groups_dn}", dn_escape(name))
}

/// The filter for a person by login name.
pub fn user_filter(username: &str) -> String {
    format!(
        "(&(objectClass=inetOrgPerson)(uid={}))",
        ldap_escape(username)
    )
}

/// The filter for the groups that list `dn` as a member.
pub fn member_filter(dn: &str) -> String {
    format!("(&(objectClass=groupOfNames)(member={}))", ldap_escape(dn))
}

/// Splits a DN into its first RDN and the rest, at the first comma not escaped.
pub fn split_rdn(dn: &str) -> (&str, &str) {
    let bytes = dn.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'\\' => i += 2,
            b',' => return (&dn[..i], &dn[i + 1..]),
            _ => i += 1,
        }
    }
    (dn, "")
}

/// The unescaped value of a single-valued RDN `attr=value` whose type is `attr`
/// (case-insensitive); `None` for another type, a multi-valued RDN or a bad escape.
pub fn rdn_value(rdn: &str, attr: &str) -> Option<String> {
    let (ty, value) = rdn.split_once('=')?;
    if !ty.trim_matches(' ').eq_ignore_ascii_case(attr) {
        return None;
    }
    // Only ASCII spaces around a value are insignificant (RFC 4514 §3).
    unescape(value.trim_matches(' '))
}

/// RFC 4514 unescaping: `\XX` hex pairs and `\c` for a special character. `None` when
/// the value holds an unescaped `+` (a multi-valued RDN) or is not UTF-8 once decoded.
fn unescape(value: &str) -> Option<String> {
    let bytes = value.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'\\' => {
                let hex = bytes
                    .get(i + 1..i + 3)
                    .and_then(|h| std::str::from_utf8(h).ok())
                    .and_then(|h| u8::from_str_radix(h, 16).ok());
                match hex {
                    Some(b) => {
                        out.push(b);
                        i += 3;
                    }
                    None => {
                        out.push(*bytes.get(i + 1)?);
                        i += 2;
                    }
                }
            }
            b'+' => return None,
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8(out).ok()
}

/// A comparison key for DNs: attribute types and values lower-cased, values unescaped
/// and re-escaped one way, spaces around separators dropped. Enough for the
/// case-insensitive naming attributes (`uid`, `cn`, `ou`, `dc`) that containers use.
pub fn normalize(dn: &str) -> String {
    let mut rdns = Vec::new();
    let mut rest = dn.trim();
    while !rest.is_empty() {
        let (rdn, tail) = split_rdn(rest);
        let key = match rdn.split_once('=') {
            Some((ty, value)) => {
                let value = unescape(value.trim()).unwrap_or_else(|| value.trim().to_owned());
                format!(
                    "{}={}",
                    ty.trim().to_ascii_lowercase(),
                    dn_escape(value.to_lowercase())
                )
            }
            None => rdn.trim().to_lowercase(),
        };
        rdns.push(key);
        rest = tail.trim_start();
    }
    rdns.join(",")
}

/// The login name of the member `dn` when it is a `uid=` entry directly below one of
/// `containers` (already normalized); `None` for anything else.
pub fn member_username(dn: &str, containers: &[String]) -> Option<String> {
    let (rdn, parent) = split_rdn(dn);
    let parent = normalize(parent);
    containers
        .contains(&parent)
        .then(|| rdn_value(rdn, "uid"))
        .flatten()
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    #[test]
    fn values_are_escaped_in_dns_and_filters() {
        assert_eq!(
            user_dn("a,b+c=\"d\"", "ou=people,dc=x"),
            r"uid=a\2cb\2bc\3d\22d\22,ou=people,dc=x"
        );
        assert_eq!(user_dn(" #lead", "o=x"), r"uid=\20#lead,o=x");
        assert_eq!(
            user_filter("*)(uid=*"),
            r"(&(objectClass=inetOrgPerson)(uid=\2a\29\28uid=\2a))"
        );
        assert_eq!(
            member_filter(r"uid=a\2cb,o=x"),
            r"(&(objectClass=groupOfNames)(member=uid=a\5c2cb,o=x))"
        );
    }

    #[test]
    fn rdns_split_at_the_first_unescaped_comma() {
        assert_eq!(split_rdn(r"uid=a\,b,ou=p,o=x"), (r"uid=a\,b", "ou=p,o=x"));
        assert_eq!(split_rdn("o=x"), ("o=x", ""));
        assert_eq!(rdn_value(r"UID=a\,b", "uid").as_deref(), Some("a,b"));
        assert_eq!(rdn_value(r"uid=a\2cb", "uid").as_deref(), Some("a,b"));
        assert_eq!(rdn_value("cn=a", "uid"), None);
        assert_eq!(rdn_value("uid=a+cn=b", "uid"), None);
        assert_eq!(rdn_value(r"uid=a\", "uid"), None);
    }

    #[test]
    fn normalized_dns_ignore_case_spacing_and_escape_style() {
        assert_eq!(
            normalize("OU=People, DC=Example,dc=com"),
            normalize("ou=people,dc=example,dc=com")
        );
        assert_eq!(normalize(r"cn=a\,b,o=x"), normalize(r"cn=a\2Cb,o=x"));
        let containers = vec![normalize("ou=people,dc=x")];
        assert_eq!(
            member_username("uid=ada,OU=People,dc=x", &containers).as_deref(),
            Some("ada")
        );
        assert_eq!(member_username("uid=ada,ou=other,dc=x", &containers), None);
        assert_eq!(member_username("cn=Ada,ou=people,dc=x", &containers), None);
    }

    proptest! {
        /// Whatever a username holds, the DN Roster builds names that username again.
        #[test]
        fn user_dns_round_trip(name in "\\PC{1,40}") {
            let dn = user_dn(&name, "ou=people,dc=x");
            let (rdn, parent) = split_rdn(&dn);
            prop_assert_eq!(parent, "ou=people,dc=x");
            prop_assert_eq!(rdn_value(rdn, "uid"), Some(name));
        }
    }
}
