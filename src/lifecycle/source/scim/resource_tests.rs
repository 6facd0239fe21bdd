use serde_json::json;

use super::*;

#[test]
fn normalize_keeps_what_was_pushed_and_reads_entras_booleans() {
    let pushed = json!({"schemas": ["x"], "id": "forged", "meta": {"version": "W/\"1\""},
        "userName": "ada", "active": "False", "externalId": "E-1",
        ENTERPRISE_USER: {"department": "R&D"}});
    let kept = normalize(&pushed).unwrap();
    assert_eq!(kept["active"], false);
    assert!(kept.get("id").is_none() && kept.get("meta").is_none());
    assert_eq!(kept["schemas"], json!([USER, ENTERPRISE_USER]));
    assert_eq!(kept["externalId"], "E-1");
}

#[test]
fn normalize_refuses_what_cannot_be_a_worker() {
    for (bad, kind) in [
        (json!([]), "invalidSyntax"),
        (json!({"displayName": "no login"}), "invalidValue"),
        (json!({"userName": "  "}), "invalidValue"),
        (json!({"userName": 7}), "invalidValue"),
        (json!({"userName": "a", "active": "maybe"}), "invalidValue"),
        (
            json!({"userName": "a", "title": "x".repeat(RESOURCE_MAX)}),
            "invalidSyntax",
        ),
    ] {
        let err = normalize(&bad).expect_err(&bad.to_string()[..40.min(bad.to_string().len())]);
        assert_eq!(err.scim_type(), kind);
    }
}

#[test]
fn projection_keeps_what_is_asked_and_always_the_id() {
    let user = json!({"id": "1", "schemas": [USER], "userName": "ada", "title": "Eng",
        "name": {"givenName": "Ada", "familyName": "L"}, ENTERPRISE_USER: {"department": "R"}});
    let only = project(
        &user,
        &[
            "title".into(),
            "name.givenName".into(),
            format!("{ENTERPRISE_USER}:department"),
        ],
        &[],
    );
    assert_eq!(
        only,
        json!({"id": "1", "schemas": [USER], "title": "Eng", "name": {"givenName": "Ada"},
            ENTERPRISE_USER: {"department": "R"}})
    );
    let without = project(
        &user,
        &[],
        &["title".into(), "id".into(), "name.familyName".into()],
    );
    assert!(without.get("title").is_none());
    assert_eq!(without["id"], "1", "id is always returned");
    assert_eq!(without["name"], json!({"givenName": "Ada"}));
}

#[test]
fn rows_carry_what_a_mapping_names() {
    let users = vec![
        (
            "m1".to_owned(),
            json!({"userName": "grace", "active": true}),
        ),
        (
            "u1".to_owned(),
            json!({"userName": "ada", "active": false, "externalId": "E-1",
            "name": {"givenName": "Ada"}, "title": "Engineer",
            "emails": [{"value": "home@x", "type": "home"},
                       {"value": "ada@corp", "type": "work", "primary": true}],
            ENTERPRISE_USER: {"department": "R&D", "employeeNumber": "42",
                "manager": {"value": "m1"}, "title": "hidden by the core's"}}),
        ),
    ];
    let rows = rows(&users, MissingWorker::Suspend);
    let ada = &rows[1].cells;
    assert_eq!(rows[1].row, 2);
    for (cell, want) in [
        ("userName", "ada"),
        ("externalId", "E-1"),
        ("name.givenName", "Ada"),
        ("emails", "ada@corp"),
        ("department", "R&D"),
        ("employeeNumber", "42"),
        ("manager", "grace"),
        ("title", "Engineer"),
        ("active", "Suspended"),
    ] {
        assert_eq!(ada.get(cell).map(String::as_str), Some(want), "{cell}");
    }
    assert_eq!(rows[0].cells["active"], "Active");
    let terminated = super::rows(&users, MissingWorker::Terminate);
    assert_eq!(terminated[1].cells["active"], "Terminated");
}
