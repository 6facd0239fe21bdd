use std::collections::BTreeMap;

use k8s_openapi::jiff::Timestamp;

use super::*;
use crate::{
    api::{LifecycleState, MissingWorker},
    lifecycle::source::{
        mapping::map,
        plan::{self, Current},
    },
};

const KEY: &str = "hr/workday";

fn row(n: usize, cells: &[(&str, &str)]) -> Record {
    Record {
        row: n,
        cells: cells
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect(),
        ..Record::default()
    }
}

fn computing(computed: ComputedFields) -> FieldMapping {
    FieldMapping {
        username: "User".into(),
        computed: Some(computed),
        ..FieldMapping::default()
    }
}

fn team() -> FieldMapping {
    computing(ComputedFields {
        attributes: [(
            "team".to_owned(),
            "row.Dept + '/' + row['Sub Team']".to_owned(),
        )]
        .into(),
        ..ComputedFields::default()
    })
}

fn expanded(mapping: &FieldMapping, records: &[Record]) -> (FieldMapping, Vec<Record>) {
    expand(mapping, records)
        .expect("the expressions compile")
        .expect("the mapping computes something")
}

#[test]
fn computed_fields_fill_the_identity_like_columns() {
    let mapping = computing(ComputedFields {
        display_name: Some("row.First + ' ' + row.Last".into()),
        email: Some("row.Mail.lowerAscii().trim()".into()),
        hire_date: Some("row.Start.substring(0, 10)".into()),
        state: Some("row.Leave == 'Sabbatical' ? 'Suspended' : 'Active'".into()),
        attributes: [
            (
                "department".to_owned(),
                "row.Code.startsWith('ENG') ? 'engineering' : 'sales'".to_owned(),
            ),
            ("contractor".to_owned(), "has(row.Agency)".to_owned()),
            (
                "nickname".to_owned(),
                "has(row.Nick) ? row.Nick : null".to_owned(),
            ),
        ]
        .into(),
        ..ComputedFields::default()
    });
    let records = [row(
        1,
        &[
            ("User", "ada"),
            ("First", "Ada"),
            ("Last", "Lovelace"),
            ("Mail", " Ada.Lovelace@Example.COM "),
            ("Start", "2027-01-04T09:00:00+00:00"),
            ("Leave", "Sabbatical"),
            ("Code", "ENG-7"),
        ],
    )];
    let (effective, records) = expanded(&mapping, &records);
    let w = map(&records[0], &effective).expect("the row maps");
    assert_eq!(w.spec.display_name.as_deref(), Some("Ada Lovelace"));
    assert_eq!(w.spec.emails, vec!["ada.lovelace@example.com".to_owned()]);
    assert_eq!(w.spec.state, LifecycleState::Suspended);
    assert_eq!(
        w.spec.valid_from.map(|t| t.0),
        Some("2027-01-04T00:00:00Z".parse::<Timestamp>().unwrap())
    );
    let want: BTreeMap<String, String> = [
        ("department".to_owned(), "engineering".to_owned()),
        ("contractor".to_owned(), "false".to_owned()),
    ]
    .into();
    assert_eq!(w.spec.attributes, want, "null leaves nickname unset");
}

#[test]
fn a_mapping_without_expressions_is_left_alone() {
    let plain = FieldMapping {
        username: "User".into(),
        ..FieldMapping::default()
    };
    assert_eq!(expand(&plain, &[row(1, &[("User", "ada")])]), Ok(None));
}

/// The safety property: an expression that fails for a row (a column gone from the
/// export) leaves that worker's Identity as it is. Were the failure read as "no value",
/// the plan would strip the attribute, and the access it grants, from a worker HR never
/// moved.
#[test]
fn a_row_an_expression_fails_on_changes_nothing() {
    let mapping = team();
    let before = [row(
        1,
        &[("User", "ada"), ("Dept", "eng"), ("Sub Team", "db")],
    )];
    let (effective, records) = expanded(&mapping, &before);
    let w = map(&records[0], &effective).expect("maps");
    assert_eq!(w.spec.attributes["team"], "eng/db");
    let current = Current {
        digest: Some(plan::digest(&w.spec)),
        spec: w.spec.clone(),
        source: Some(KEY.into()),
        removed_at: None,
    };
    let existing = [("ada".to_owned(), current)].into();

    // The export lost its "Sub Team" column.
    let after = [row(1, &[("User", "ada"), ("Dept", "eng")])];
    let (effective, records) = expanded(&mapping, &after);
    let now: Timestamp = "2027-03-01T12:00:00Z".parse().unwrap();
    let p = plan::plan(
        KEY,
        &records,
        &effective,
        MissingWorker::Terminate,
        &existing,
        now,
    );
    assert!(p.writes.is_empty() && p.removals.is_empty(), "{p:?}");
    assert_eq!(p.problems.len(), 1);
    assert_eq!(p.problems[0].identity.as_deref(), Some("ada"));
    assert!(
        p.problems[0]
            .message
            .contains("mapping.computed.attributes.team"),
        "{}",
        p.problems[0].message
    );
}

#[test]
fn a_leaver_keeps_the_computed_fields_the_source_set() {
    let mapping = team();
    let (effective, records) = expanded(
        &mapping,
        &[row(
            1,
            &[("User", "ada"), ("Dept", "eng"), ("Sub Team", "db")],
        )],
    );
    let w = map(&records[0], &effective).expect("maps");
    let current = Current {
        digest: Some(plan::digest(&w.spec)),
        spec: w.spec,
        source: Some(KEY.into()),
        removed_at: None,
    };
    let existing = [("ada".to_owned(), current)].into();
    let (effective, records) = expanded(&mapping, &[row(1, &[("User", "bob")])]);
    let now: Timestamp = "2027-03-01T12:00:00Z".parse().unwrap();
    let p = plan::plan(
        KEY,
        &records,
        &effective,
        MissingWorker::Terminate,
        &existing,
        now,
    );
    let leaver = p
        .removals
        .iter()
        .find(|w| w.name == "ada")
        .expect("ada left");
    assert_eq!(leaver.spec.state, LifecycleState::Terminated);
    assert_eq!(leaver.spec.attributes["team"], "eng/db");
}

#[test]
fn expressions_that_could_grow_without_bound_are_refused() {
    for (expr, function) in [
        ("row.Dept.replace('a', 'aaaa')", "replace"),
        ("row.Dept.split('').join(row.Dept)", "join"),
        ("'%s%s'.format([row.Dept, row.Dept])", "format"),
        ("row.Dept.quote()", "quote"),
    ] {
        let mapping = computing(ComputedFields {
            email: Some(expr.into()),
            ..ComputedFields::default()
        });
        let err = expand(&mapping, &[]).expect_err(expr);
        assert_eq!(
            err,
            ComputedError::Growing {
                field: "email".into(),
                function: function.into()
            }
        );
        assert_eq!(err.reason(), "InvalidExpression");
    }
}

#[test]
fn an_expression_that_does_not_compile_refuses_the_read() {
    let mapping = computing(ComputedFields {
        attributes: [("team".to_owned(), "row.Dept +".to_owned())].into(),
        ..ComputedFields::default()
    });
    let err = expand(&mapping, &[]).expect_err("a syntax error");
    assert_eq!(err.reason(), "InvalidExpression");
    assert!(
        err.to_string()
            .starts_with("mapping.computed.attributes.team"),
        "{err}"
    );
    let costly = computing(ComputedFields {
        email: Some(
            "row.Dept.split('').all(a, row.Dept.split('').all(b, a != b)) ? 'x' : 'y'".into(),
        ),
        ..ComputedFields::default()
    });
    let err = expand(&costly, &[]).expect_err("too costly");
    assert_eq!(err.reason(), "ExpressionTooCostly");
}

#[test]
fn a_non_text_result_or_an_oversized_cell_makes_the_row_unusable() {
    let mapping = computing(ComputedFields {
        email: Some("row.Dept.split('-')".into()),
        display_name: Some("has(row.Notes) ? 'long' : 'none'".into()),
        ..ComputedFields::default()
    });
    let big = "x".repeat(MAX_CELL + 1);
    let (effective, records) = expanded(
        &mapping,
        &[row(1, &[("User", "ada"), ("Dept", "a-b"), ("Notes", &big)])],
    );
    assert_eq!(records[0].errors.len(), 1, "{:?}", records[0].errors);
    assert!(records[0].errors[0].contains("not a string"));
    assert_eq!(
        records[0]
            .cells
            .get(&column("displayName"))
            .map(String::as_str),
        Some("none"),
        "a cell over the limit is not in row"
    );
    assert!(map(&records[0], &effective).is_err());
}

#[test]
fn a_directory_is_asked_for_the_attributes_expressions_read() {
    let mapping = computing(ComputedFields {
        display_name: Some("row.givenName + ' ' + row['sn']".into()),
        attributes: [(
            "team".to_owned(),
            "has(row.ou) ? row.ou : 'none'".to_owned(),
        )]
        .into(),
        ..ComputedFields::default()
    });
    assert_eq!(columns(&mapping), vec!["givenName", "ou", "sn"]);
}
