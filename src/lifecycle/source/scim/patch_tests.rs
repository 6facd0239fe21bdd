use serde_json::json;

use super::*;
use crate::lifecycle::source::scim::schema::ENTERPRISE_USER;

fn ada() -> Value {
    json!({"userName": "ada", "active": true, "name": {"givenName": "Ada"},
           "emails": [{"value": "ada@corp.example", "type": "work", "primary": true}]})
}

fn patch(ops: Value) -> Value {
    json!({"schemas": [crate::lifecycle::source::scim::schema::PATCH_OP], "Operations": ops})
}

#[test]
fn entra_deactivates_with_a_string_and_a_capital_op() {
    let out = apply(
        &ada(),
        &patch(json!([{"op": "Replace", "path": "active", "value": "False"}])),
    )
    .unwrap();
    assert_eq!(
        out["active"], "False",
        "kept as sent; the resource layer reads it"
    );
}

#[test]
fn okta_replaces_with_a_value_object() {
    let out = apply(
        &ada(),
        &patch(
            json!([{"op": "replace", "value": {"active": false, "name.familyName": "Lovelace",
            (format!("{ENTERPRISE_USER}:department")): "R&D"}}]),
        ),
    )
    .unwrap();
    assert_eq!(out["active"], false);
    assert_eq!(
        out["name"],
        json!({"givenName": "Ada", "familyName": "Lovelace"})
    );
    assert_eq!(out[ENTERPRISE_USER]["department"], "R&D");
}

#[test]
fn filtered_paths_pick_values_and_make_missing_ones() {
    let out = apply(
        &ada(),
        &patch(json!([
            {"op": "replace", "path": "emails[type eq \"work\"].value", "value": "a@new.example"},
            {"op": "add", "path": "emails[type eq \"home\"].value", "value": "a@home.example"},
        ])),
    )
    .unwrap();
    assert_eq!(
        out["emails"],
        json!([{"value": "a@new.example", "type": "work", "primary": true},
               {"type": "home", "value": "a@home.example"}])
    );
    let out = apply(
        &out,
        &patch(json!([{"op": "remove", "path": "emails[type eq \"home\"]"}])),
    )
    .unwrap();
    assert_eq!(out["emails"].as_array().map(Vec::len), Some(1));
}

#[test]
fn add_appends_and_merges_remove_removes() {
    let out = apply(
        &ada(),
        &patch(json!([
            {"op": "add", "path": "emails", "value": [{"value": "b@x", "type": "other"}]},
            {"op": "add", "path": "name", "value": {"familyName": "L"}},
            {"op": "add", "path": ENTERPRISE_USER, "value": {"manager": {"value": "m-1"}}},
            {"op": "remove", "path": "name.givenName"},
        ])),
    )
    .unwrap();
    assert_eq!(out["emails"].as_array().map(Vec::len), Some(2));
    assert_eq!(out["name"], json!({"familyName": "L"}));
    assert_eq!(out[ENTERPRISE_USER]["manager"]["value"], "m-1");
    let out = apply(
        &out,
        &patch(json!([{"op": "remove", "path": "name.familyName"}])),
    )
    .unwrap();
    assert!(
        out.get("name").is_none(),
        "an emptied complex attribute goes"
    );
    let out = apply(
        &out,
        &patch(json!([{"op": "remove", "path": ENTERPRISE_USER}])),
    )
    .unwrap();
    assert!(
        out.get(ENTERPRISE_USER).is_none(),
        "the whole extension goes"
    );
}

#[test]
fn a_bad_operation_fails_the_whole_request() {
    for (ops, kind) in [
        (json!([{"op": "remove"}]), "noTarget"),
        (json!([{"op": "move", "path": "x"}]), "invalidSyntax"),
        (
            json!([{"op": "add", "path": "a b", "value": 1}]),
            "invalidPath",
        ),
        (json!([{"op": "replace", "value": 3}]), "invalidValue"),
        (
            json!([{"op": "replace", "path": "emails[type pr].value", "value": "x"},
                   {"op": "replace", "path": "emails[value co \"none\"].value", "value": "y"}]),
            "noTarget",
        ),
    ] {
        let err = apply(&ada(), &patch(ops.clone())).expect_err(&ops.to_string());
        assert_eq!(err.scim_type(), kind, "{ops}");
    }
    assert_eq!(
        apply(&ada(), &json!({})).unwrap_err().scim_type(),
        "invalidSyntax"
    );
}
