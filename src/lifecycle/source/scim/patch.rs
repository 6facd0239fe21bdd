//! SCIM PATCH (RFC 7644 section 3.5.2) on a pushed User, as Entra ID and Okta send it:
//! `add`, `replace` and `remove` in any case, with a path or with a value object whose
//! keys are paths, on core and extension attributes, on values picked by a filter. Every
//! operation applies or the whole request fails: a half-applied PATCH is never kept.
//! Pure.

use serde_json::{Map, Value};

use super::{
    filter::Filter,
    path::{Path, key_of},
};

/// Why a PATCH cannot be applied, with its SCIM `scimType`.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum PatchError {
    /// The request is not a PatchOp.
    #[error("not a PatchOp: {0}")]
    Syntax(String),
    /// A path cannot be parsed or names something that cannot be changed.
    #[error("{0}")]
    InvalidPath(String),
    /// A value does not fit its attribute.
    #[error("{0}")]
    InvalidValue(String),
    /// A `remove` without a path, or a filter that matches nothing to remove.
    #[error("{0}")]
    NoTarget(String),
}

impl PatchError {
    /// The SCIM `scimType` of the error response.
    pub fn scim_type(&self) -> &'static str {
        match self {
            PatchError::Syntax(_) => "invalidSyntax",
            PatchError::InvalidPath(_) => "invalidPath",
            PatchError::InvalidValue(_) => "invalidValue",
            PatchError::NoTarget(_) => "noTarget",
        }
    }
}

/// The most operations one PATCH may carry.
const OPERATIONS_MAX: usize = 256;

/// Applies the PatchOp `body` to `resource`, returning the patched copy.
pub fn apply(resource: &Value, body: &Value) -> Result<Value, PatchError> {
    let ops = super::path::get(body, "Operations")
        .and_then(Value::as_array)
        .ok_or_else(|| PatchError::Syntax("no Operations".into()))?;
    if ops.len() > OPERATIONS_MAX {
        return Err(PatchError::Syntax(format!(
            "more than {OPERATIONS_MAX} operations"
        )));
    }
    let mut out = resource.clone();
    for op in ops {
        let name = super::path::get(op, "op")
            .and_then(Value::as_str)
            .ok_or_else(|| PatchError::Syntax("an operation without op".into()))?
            .to_ascii_lowercase();
        let path = super::path::get(op, "path").and_then(Value::as_str);
        let value = super::path::get(op, "value");
        match (name.as_str(), path, value) {
            ("remove", Some(p), _) => remove(&mut out, &parse(p)?)?,
            ("remove", None, _) => return Err(PatchError::NoTarget("remove needs a path".into())),
            ("add" | "replace", Some(p), Some(v)) => set(&mut out, &parse(p)?, v, name == "add")?,
            ("add" | "replace", None, Some(Value::Object(values))) => {
                for (key, v) in values {
                    set(&mut out, &parse(key)?, v, name == "add")?;
                }
            }
            ("add" | "replace", _, _) => {
                return Err(PatchError::InvalidValue(format!(
                    "{name} needs a value (an object when there is no path)"
                )));
            }
            (other, _, _) => return Err(PatchError::Syntax(format!("unknown op {other:?}"))),
        }
    }
    Ok(out)
}

fn parse(text: &str) -> Result<Path, PatchError> {
    Path::parse(text).map_err(|e| PatchError::InvalidPath(e.to_string()))
}

/// `add` (`merge`) or `replace` of `value` at `path`.
fn set(resource: &mut Value, path: &Path, value: &Value, merge: bool) -> Result<(), PatchError> {
    let container = path
        .container_mut(resource)
        .ok_or_else(|| PatchError::InvalidPath("the resource is not an object".into()))?;
    if path.attr.is_empty() {
        // The whole extension: its attributes, one by one.
        let Value::Object(values) = value else {
            return Err(PatchError::InvalidValue(
                "an extension takes an object".into(),
            ));
        };
        for (k, v) in values {
            put(container, k, v.clone(), merge);
        }
        return Ok(());
    }
    let key = key_of(container, &path.attr).unwrap_or_else(|| path.attr.clone());
    match (&path.filter, &path.sub) {
        (None, None) => put(container, &key, value.clone(), merge),
        (None, Some(sub)) => {
            let slot = container
                .entry(key)
                .or_insert_with(|| Value::Object(Map::new()));
            let Value::Object(inner) = slot else {
                return Err(PatchError::InvalidPath(format!(
                    "{:?} has no sub-attributes",
                    path.attr
                )));
            };
            put(inner, sub, value.clone(), merge);
        }
        (Some(filter), sub) => {
            let items = container
                .entry(key)
                .or_insert_with(|| Value::Array(Vec::new()));
            let Value::Array(items) = items else {
                return Err(PatchError::InvalidPath(format!(
                    "{:?} is not multi-valued",
                    path.attr
                )));
            };
            let mut hit = false;
            for item in items.iter_mut().filter(|i| filter.matches(i)) {
                hit = true;
                match (sub, &mut *item) {
                    (Some(sub), Value::Object(inner)) => put(inner, sub, value.clone(), merge),
                    (None, _) => *item = value.clone(),
                    (Some(_), _) => {}
                }
            }
            if !hit {
                // Entra ID adds `emails[type eq "work"].value` before any work email
                // exists: the filter's equalities make the new value.
                items.push(seeded(filter, sub.as_deref(), value)?);
            }
        }
    }
    Ok(())
}

/// A new value of a multi-valued attribute made from a filter's `sub eq "x"` terms.
fn seeded(filter: &Filter, sub: Option<&str>, value: &Value) -> Result<Value, PatchError> {
    let mut item = Map::new();
    let mut stack = vec![filter];
    while let Some(f) = stack.pop() {
        match f {
            Filter::And(a, b) => stack.extend([a.as_ref(), b.as_ref()]),
            Filter::Compare {
                attr,
                op: super::filter::Op::Eq,
                value: Some(v),
            } => {
                item.insert(attr.clone(), v.clone());
            }
            _ => {
                return Err(PatchError::NoTarget(
                    "the filter matches no value and says no new one".into(),
                ));
            }
        }
    }
    match (sub, value) {
        (Some(sub), v) => {
            item.insert(sub.to_owned(), v.clone());
        }
        (None, Value::Object(v)) => item.extend(v.clone()),
        (None, _) => return Err(PatchError::InvalidValue("a value takes an object".into())),
    }
    Ok(Value::Object(item))
}

/// Sets `key` in `object` to `value`; `merge` (an `add`) appends to a multi-valued
/// attribute and merges into a complex one instead of replacing it.
fn put(object: &mut Map<String, Value>, key: &str, value: Value, merge: bool) {
    let key = key_of(object, key).unwrap_or_else(|| key.to_owned());
    match (merge, object.get_mut(&key), value) {
        (true, Some(Value::Array(have)), Value::Array(more)) => {
            for v in more {
                if !have.contains(&v) {
                    have.push(v);
                }
            }
        }
        (true, Some(Value::Array(have)), v) => {
            if !have.contains(&v) {
                have.push(v);
            }
        }
        (true, Some(Value::Object(have)), Value::Object(more)) => {
            for (k, v) in more {
                put(have, &k, v, true);
            }
        }
        (_, _, value) => {
            object.insert(key, value);
        }
    }
}

/// `remove` at `path`: the attribute, a sub-attribute, or the values a filter picks.
fn remove(resource: &mut Value, path: &Path) -> Result<(), PatchError> {
    if let (true, Some(urn), Some(object)) = (
        path.attr.is_empty(),
        &path.extension,
        resource.as_object_mut(),
    ) {
        // The whole extension.
        if let Some(k) = key_of(object, urn) {
            object.remove(&k);
        }
        return Ok(());
    }
    let Some(container) = path.container_mut(resource) else {
        return Ok(());
    };
    let Some(key) = key_of(container, &path.attr) else {
        return Ok(()); // absent already: removing it is done
    };
    match (&path.filter, &path.sub) {
        (None, None) => {
            container.remove(&key);
        }
        (None, Some(sub)) => match container.get_mut(&key) {
            Some(Value::Object(inner)) => {
                if let Some(k) = key_of(inner, sub) {
                    inner.remove(&k);
                }
            }
            Some(Value::Array(items)) => {
                for item in items.iter_mut().filter_map(Value::as_object_mut) {
                    if let Some(k) = key_of(item, sub) {
                        item.remove(&k);
                    }
                }
            }
            _ => {}
        },
        (Some(filter), sub) => {
            if let Some(Value::Array(items)) = container.get_mut(&key) {
                match sub {
                    None => items.retain(|i| !filter.matches(i)),
                    Some(sub) => {
                        for item in items.iter_mut().filter(|i| filter.matches(i)) {
                            if let Some(inner) = item.as_object_mut()
                                && let Some(k) = key_of(inner, sub)
                            {
                                inner.remove(&k);
                            }
                        }
                    }
                }
            }
        }
    }
    // An emptied multi-valued or complex attribute is no attribute at all.
    if container.get(&key).is_some_and(|v| {
        v.as_array().is_some_and(Vec::is_empty) || v.as_object().is_some_and(Map::is_empty)
    }) {
        container.remove(&key);
    }
    Ok(())
}

#[cfg(test)]
#[path = "patch_tests.rs"]
mod tests;
