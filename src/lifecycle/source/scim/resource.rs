//! A pushed User: checked and normalised on the way in, given its `id` and `meta` and
//! trimmed to the asked-for attributes on the way out, and flattened into an export row
//! for the source's mapping. Pure.

use std::collections::BTreeMap;

use serde_json::{Map, Value, json};

use super::{
    path::{self, Path, as_bool, key_of},
    schema::{ENTERPRISE_USER, USER},
};
use crate::{api::MissingWorker, lifecycle::source::export::Record};

/// The largest User taken, as JSON: a worker's record is a few hundred bytes.
pub const RESOURCE_MAX: usize = 64 * 1024;

/// Why a pushed User cannot be kept, with its SCIM `scimType`.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ResourceError {
    /// Not a JSON object, or too large.
    #[error("{0}")]
    Syntax(String),
    /// A value that does not fit its attribute (a missing `userName`, an `active` that
    /// is no boolean).
    #[error("{0}")]
    InvalidValue(String),
}

impl ResourceError {
    /// The SCIM `scimType` of the error response.
    pub fn scim_type(&self) -> &'static str {
        match self {
            ResourceError::Syntax(_) => "invalidSyntax",
            ResourceError::InvalidValue(_) => "invalidValue",
        }
    }
}

/// The User to keep from what was pushed: `id` and `meta` dropped (Roster keeps them),
/// `active` as a boolean (Entra ID sends `"True"`/`"False"`), `schemas` naming what it
/// holds.
pub fn normalize(pushed: &Value) -> Result<Value, ResourceError> {
    let Value::Object(fields) = pushed else {
        return Err(ResourceError::Syntax("a User is a JSON object".into()));
    };
    let mut out = fields.clone();
    for drop in ["id", "meta", "schemas"] {
        if let Some(k) = key_of(&out, drop) {
            out.remove(&k);
        }
    }
    match key_of(&out, "userName").and_then(|k| out.get(&k)) {
        Some(Value::String(u)) if !u.trim().is_empty() => {}
        _ => {
            return Err(ResourceError::InvalidValue(
                "userName is required and must be a string".into(),
            ));
        }
    }
    if let Some(k) = key_of(&out, "active") {
        let value = out.get(&k).cloned().unwrap_or(Value::Null);
        let active = as_bool(&value).ok_or_else(|| {
            ResourceError::InvalidValue(format!("active must be a boolean, not {value}"))
        })?;
        out.insert(k, Value::Bool(active));
    }
    let mut schemas = vec![json!(USER)];
    if let Some(k) = key_of(&out, ENTERPRISE_USER) {
        if out
            .get(&k)
            .and_then(Value::as_object)
            .is_some_and(Map::is_empty)
        {
            out.remove(&k);
        } else {
            schemas.push(json!(ENTERPRISE_USER));
        }
    }
    out.insert("schemas".into(), Value::Array(schemas));
    let out = Value::Object(out);
    if out.to_string().len() > RESOURCE_MAX {
        return Err(ResourceError::Syntax(format!(
            "a User larger than {RESOURCE_MAX} bytes"
        )));
    }
    Ok(out)
}

/// What Roster keeps beside a User: its `meta`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Meta {
    /// When it was first pushed (RFC 3339).
    pub created: String,
    /// When it last changed (RFC 3339).
    pub last_modified: String,
    /// Its version, the ETag (`W/"…"`).
    pub version: String,
    /// Its URL.
    pub location: String,
}

/// The User as served: the kept fields with `id` and `meta`.
pub fn render(kept: &Value, id: &str, meta: &Meta) -> Value {
    let mut out = kept.as_object().cloned().unwrap_or_default();
    out.insert("id".into(), json!(id));
    out.insert(
        "meta".into(),
        json!({"resourceType": "User", "created": meta.created,
               "lastModified": meta.last_modified, "version": meta.version,
               "location": meta.location}),
    );
    Value::Object(out)
}

/// `user` with only the `attributes` asked for (with `id`, `schemas` and `meta`, which
/// are always returned), or without the `excluded` ones (RFC 7644 section 3.9).
pub fn project(user: &Value, attributes: &[String], excluded: &[String]) -> Value {
    let Value::Object(fields) = user else {
        return user.clone();
    };
    if !attributes.is_empty() {
        let mut out = Map::new();
        for always in ["id", "schemas", "meta"] {
            if let Some(v) = fields.get(always) {
                out.insert(always.into(), v.clone());
            }
        }
        for asked in attributes {
            copy_path(user, &mut out, asked);
        }
        return Value::Object(out);
    }
    let mut out = user.clone();
    for gone in excluded {
        let Ok(p) = Path::parse(gone) else { continue };
        if ["id", "schemas", "meta"]
            .iter()
            .any(|a| a.eq_ignore_ascii_case(&p.attr))
        {
            continue;
        }
        if let Some(container) = p.container_mut(&mut out) {
            match (&p.sub, key_of(container, &p.attr)) {
                (None, Some(k)) => {
                    container.remove(&k);
                }
                (Some(sub), Some(k)) => {
                    if let Some(Value::Object(inner)) = container.get_mut(&k)
                        && let Some(sk) = key_of(inner, sub)
                    {
                        inner.remove(&sk);
                    }
                }
                (_, None) => {}
            }
        }
    }
    out
}

/// Copies the attribute `asked` names from `user` into `out`.
fn copy_path(user: &Value, out: &mut Map<String, Value>, asked: &str) {
    let Ok(p) = Path::parse(asked) else { return };
    let Some(from) = p.container(user) else {
        return;
    };
    let Some(key) = key_of(from, &p.attr) else {
        return;
    };
    let value = match (&p.sub, from.get(&key)) {
        (None, Some(v)) => v.clone(),
        (Some(sub), Some(Value::Object(inner))) => match key_of(inner, sub) {
            Some(sk) => json!({ sk.clone(): inner[&sk] }),
            None => return,
        },
        _ => return,
    };
    let target = match &p.extension {
        None => &mut *out,
        Some(urn) => match out
            .entry(urn.clone())
            .or_insert_with(|| Value::Object(Map::new()))
        {
            Value::Object(m) => m,
            _ => return,
        },
    };
    match (target.get_mut(&key), value) {
        (Some(Value::Object(have)), Value::Object(more)) => have.extend(more),
        (_, value) => {
            target.insert(key, value);
        }
    }
}

/// The rows a source's pushed users make: each user's simple attributes by name
/// (`userName`, `displayName`, `title`, `externalId`), sub-attributes as `name.givenName`,
/// the primary (or first) email as `emails`, the enterprise extension's attributes by
/// their bare names (`department`, `employeeNumber`), `manager` as the manager's
/// `userName` when the manager was pushed too (else the id HR sent), and `active` as the
/// state the policy gives: `Active`, or `inactive`'s state.
pub fn rows(users: &[(String, Value)], inactive: MissingWorker) -> Vec<Record> {
    let names: BTreeMap<&str, &str> = users
        .iter()
        .filter_map(|(id, u)| Some((id.as_str(), path::get(u, "userName")?.as_str()?)))
        .collect();
    users
        .iter()
        .enumerate()
        .map(|(i, (_, user))| {
            let mut record = Record {
                row: i + 1,
                ..Record::default()
            };
            flatten(user, &mut record, false);
            if let Some(ext) = path::get(user, ENTERPRISE_USER) {
                flatten(ext, &mut record, true);
            }
            if let Some(m) = record.cells.get("manager.value").cloned() {
                let manager = names.get(m.as_str()).map_or(m, |u| (*u).to_owned());
                record.cells.insert("manager".into(), manager);
            }
            let active = path::get(user, "active").and_then(as_bool).unwrap_or(true);
            let state = match (active, inactive) {
                (true, _) => "Active",
                (false, MissingWorker::Suspend) => "Suspended",
                (false, MissingWorker::Terminate) => "Terminated",
            };
            record.cells.insert("active".into(), state.into());
            record
        })
        .collect()
}

/// Puts `object`'s values into `record`; an extension's never hide the core's.
fn flatten(object: &Value, record: &mut Record, extension: bool) {
    let Some(fields) = object.as_object() else {
        return;
    };
    for (key, value) in fields {
        if key.starts_with("urn:") || key == "schemas" {
            continue;
        }
        let mut put = |k: String, v: String| {
            let v = v.trim().to_owned();
            if v.is_empty() || (extension && record.cells.contains_key(&k)) {
                return;
            }
            record.cells.insert(k, v);
        };
        match value {
            Value::String(s) => put(key.clone(), s.clone()),
            Value::Number(n) => put(key.clone(), n.to_string()),
            Value::Bool(b) => put(key.clone(), b.to_string()),
            Value::Object(inner) => {
                for (sub, v) in inner {
                    if let Some(s) = scalar(v) {
                        put(format!("{key}.{sub}"), s);
                    }
                }
            }
            Value::Array(items) => {
                let primary = items
                    .iter()
                    .find(|i| path::get(i, "primary").and_then(as_bool) == Some(true))
                    .or_else(|| items.first());
                match primary.map(|p| path::get(p, "value").and_then(scalar)) {
                    Some(Some(v)) => put(key.clone(), v),
                    _ => record.nested.push(key.clone()),
                }
            }
            Value::Null => {}
        }
    }
}

fn scalar(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

#[cfg(test)]
#[path = "resource_tests.rs"]
mod tests;
