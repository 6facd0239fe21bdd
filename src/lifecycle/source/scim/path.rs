//! SCIM attribute paths (RFC 7644 section 3.10 and the PATCH `path` of 3.5.2): `attr`,
//! `attr.sub`, a schema URN before either (`urn:…:enterprise:2.0:User:department`), and
//! a value filter in brackets (`emails[type eq "work"].value`). Attribute names are
//! case-insensitive. Pure.

use serde_json::{Map, Value};

use super::{
    filter::{Filter, FilterError},
    schema::{ENTERPRISE_USER, USER},
};

/// A parsed attribute path.
#[derive(Clone, Debug, PartialEq)]
pub struct Path {
    /// The extension schema the attribute is in; `None` for the core User schema.
    pub extension: Option<String>,
    /// The attribute; empty when the path names a whole extension.
    pub attr: String,
    /// Which values of a multi-valued attribute.
    pub filter: Option<Filter>,
    /// The sub-attribute.
    pub sub: Option<String>,
}

impl Path {
    /// Parses `text`.
    pub fn parse(text: &str) -> Result<Self, FilterError> {
        let text = text.trim();
        let (extension, rest) = split_urn(text);
        let (head, filter, tail) = match rest.find('[') {
            Some(open) => {
                let close = rest
                    .rfind(']')
                    .filter(|&c| c > open)
                    .ok_or_else(|| FilterError(format!("{text:?}: a '[' is not closed")))?;
                let filter = Filter::parse(&rest[open + 1..close])?;
                (&rest[..open], Some(filter), &rest[close + 1..])
            }
            None => (rest, None, ""),
        };
        let (attr, sub) = match (filter.is_some(), head.split_once('.')) {
            (false, Some((a, s))) => (a, Some(s.to_owned())),
            _ => (head, tail.strip_prefix('.').map(str::to_owned)),
        };
        let bad = |s: &str| {
            !s.chars()
                .all(|c| c.is_ascii_alphanumeric() || "_-$".contains(c))
        };
        if bad(attr) || sub.as_deref().is_some_and(|s| s.is_empty() || bad(s)) {
            return Err(FilterError(format!("{text:?} is not an attribute path")));
        }
        if attr.is_empty() && extension.is_none() {
            return Err(FilterError("an empty path".into()));
        }
        Ok(Path {
            extension,
            attr: attr.to_owned(),
            filter,
            sub,
        })
    }

    /// The object the attribute lives in: the resource, or its extension's object.
    pub fn container<'a>(&self, resource: &'a Value) -> Option<&'a Map<String, Value>> {
        match &self.extension {
            None => resource.as_object(),
            Some(urn) => get(resource, urn)?.as_object(),
        }
    }

    /// The same, to change; the extension's object is made when missing.
    pub fn container_mut<'a>(&self, resource: &'a mut Value) -> Option<&'a mut Map<String, Value>> {
        let object = resource.as_object_mut()?;
        match &self.extension {
            None => Some(object),
            Some(urn) => {
                let key = key_of(object, urn).unwrap_or_else(|| urn.clone());
                object
                    .entry(key)
                    .or_insert_with(|| Value::Object(Map::new()))
                    .as_object_mut()
            }
        }
    }
}

/// Splits a schema URN off `text`: the known schemas by their name, any other URN at its
/// last `:` before the attribute.
fn split_urn(text: &str) -> (Option<String>, &str) {
    if !text
        .get(..4)
        .is_some_and(|p| p.eq_ignore_ascii_case("urn:"))
    {
        return (None, text);
    }
    for urn in [ENTERPRISE_USER, USER] {
        let Some(head) = text.get(..urn.len()) else {
            continue;
        };
        if head.eq_ignore_ascii_case(urn) {
            let rest = text[urn.len()..].trim_start_matches(':');
            let extension = (urn != USER).then(|| urn.to_owned());
            return (extension, rest);
        }
    }
    let end = text.find('[').unwrap_or(text.len());
    match text[..end].rfind(':') {
        Some(i) => (Some(text[..i].to_owned()), &text[i + 1..]),
        None => (None, text),
    }
}

/// The key of `object` that is `name`, ignoring case.
pub fn key_of(object: &Map<String, Value>, name: &str) -> Option<String> {
    object
        .keys()
        .find(|k| k.eq_ignore_ascii_case(name))
        .cloned()
}

/// `object[name]`, ignoring the case of `name`.
pub fn get<'a>(value: &'a Value, name: &str) -> Option<&'a Value> {
    let object = value.as_object()?;
    object
        .get(name)
        .or_else(|| object.get(&key_of(object, name)?))
}

/// Every value at `attr` (`attr`, `attr.sub`, URN-qualified), multi-valued ones spread.
pub fn values_at<'a>(resource: &'a Value, attr: &str) -> Vec<&'a Value> {
    let Ok(path) = Path::parse(attr) else {
        return Vec::new();
    };
    let Some(top) = path
        .container(resource)
        .and_then(|c| c.get(&path.attr).or_else(|| c.get(&key_of(c, &path.attr)?)))
    else {
        return Vec::new();
    };
    let items: Vec<&Value> = match top {
        Value::Array(items) => items.iter().collect(),
        v => vec![v],
    };
    match &path.sub {
        None => items,
        Some(sub) => items.into_iter().filter_map(|i| get(i, sub)).collect(),
    }
}

/// Whether `attr` compares case-exactly (RFC 7643: `id` and `externalId` do).
pub fn case_exact(attr: &str) -> bool {
    ["id", "externalId"]
        .iter()
        .any(|a| a.eq_ignore_ascii_case(attr))
}

/// A boolean as pushing systems write it: `true`, or Entra ID's `"True"` and `"False"`.
pub fn as_bool(value: &Value) -> Option<bool> {
    match value {
        Value::Bool(b) => Some(*b),
        Value::String(s) if s.eq_ignore_ascii_case("true") => Some(true),
        Value::String(s) if s.eq_ignore_ascii_case("false") => Some(false),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn paths_as_entra_okta_and_the_rfc_write_them() {
        let p = Path::parse(r#"emails[type eq "work"].value"#).unwrap();
        assert_eq!(
            (p.attr.as_str(), p.sub.as_deref()),
            ("emails", Some("value"))
        );
        assert!(p.filter.is_some() && p.extension.is_none());
        let p =
            Path::parse("urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager.value")
                .unwrap();
        assert_eq!(p.extension.as_deref(), Some(ENTERPRISE_USER));
        assert_eq!(
            (p.attr.as_str(), p.sub.as_deref()),
            ("manager", Some("value"))
        );
        let p = Path::parse("urn:ietf:params:scim:schemas:core:2.0:User:name.givenName").unwrap();
        assert_eq!(p.extension, None);
        assert_eq!(
            (p.attr.as_str(), p.sub.as_deref()),
            ("name", Some("givenName"))
        );
        let p = Path::parse(ENTERPRISE_USER).unwrap();
        assert_eq!(
            (p.extension.as_deref(), p.attr.as_str()),
            (Some(ENTERPRISE_USER), "")
        );
        for bad in ["", "a b", "emails[type eq", "name.", "a;b"] {
            assert!(Path::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn values_spread_and_ignore_case() {
        let user = json!({"Emails": [{"value": "a@x"}, {"value": "b@x"}],
            ENTERPRISE_USER: {"department": "R&D"}});
        assert_eq!(values_at(&user, "emails.VALUE").len(), 2);
        assert_eq!(
            values_at(&user, &format!("{ENTERPRISE_USER}:department")),
            vec![&json!("R&D")]
        );
        assert_eq!(as_bool(&json!("False")), Some(false));
    }
}
