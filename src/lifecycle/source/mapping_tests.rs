use super::*;

fn mapping() -> FieldMapping {
    FieldMapping {
        username: "user".into(),
        display_name: Some("name".into()),
        email: Some("mail".into()),
        hire_date: Some("hired".into()),
        termination_date: Some("left".into()),
        manager: Some("boss".into()),
        state: Some("status".into()),
        attributes: [("department".to_owned(), "dept".to_owned())].into(),
        ..FieldMapping::default()
    }
}

fn record(cells: &[(&str, &str)]) -> Record {
    Record {
        row: 7,
        cells: cells
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect(),
        nested: Vec::new(),
        errors: Vec::new(),
    }
}

fn ts(s: &str) -> Timestamp {
    s.parse().unwrap()
}

#[test]
fn a_full_row_maps_every_field() {
    let r = record(&[
        ("user", "Ada.Lovelace"),
        ("name", "Ada Lovelace"),
        ("mail", "ada@corp.example"),
        ("hired", "2027-01-04"),
        ("left", "2027-06-30"),
        ("boss", "grace"),
        ("status", "ACTIVE"),
        ("dept", "eng"),
        ("unmapped", "x"),
    ]);
    let w = map(&r, &mapping()).unwrap();
    assert_eq!(w.name, "ada.lovelace");
    assert_eq!(w.spec.username, "Ada.Lovelace");
    assert_eq!(w.spec.display_name.as_deref(), Some("Ada Lovelace"));
    assert_eq!(w.spec.emails, ["ada@corp.example"]);
    assert_eq!(w.spec.state, LifecycleState::Active);
    assert_eq!(
        w.spec.valid_from.map(|t| t.0),
        Some(ts("2027-01-04T00:00:00Z"))
    );
    assert_eq!(
        w.spec.valid_until.map(|t| t.0),
        Some(ts("2027-07-01T00:00:00Z")),
        "the last day is worked in full"
    );
    assert_eq!(
        w.spec.attributes,
        BTreeMap::from([
            ("department".to_owned(), "eng".to_owned()),
            ("manager".to_owned(), "grace".to_owned()),
        ])
    );
}

#[test]
fn unmapped_and_empty_fields_are_left_unset() {
    let w = map(&record(&[("user", "grace")]), &mapping()).unwrap();
    assert_eq!(w.spec.display_name, None);
    assert!(w.spec.emails.is_empty());
    assert!(w.spec.attributes.is_empty());
    assert_eq!(w.spec.valid_from, None);
    assert_eq!(
        w.spec.state,
        LifecycleState::Active,
        "no status column value"
    );
}

#[test]
fn rfc3339_times_are_taken_as_they_are() {
    let r = record(&[("user", "ada"), ("left", "2027-06-30T17:30:00+02:00")]);
    let w = map(&r, &mapping()).unwrap();
    assert_eq!(
        w.spec.valid_until.map(|t| t.0),
        Some(ts("2027-06-30T15:30:00Z"))
    );
}

#[test]
fn hr_status_words_map_to_states() {
    for (word, state) in [
        ("Active", LifecycleState::Active),
        ("true", LifecycleState::Active),
        ("On Leave", LifecycleState::Suspended),
        ("inactive", LifecycleState::Suspended),
        ("Terminated", LifecycleState::Terminated),
        ("false", LifecycleState::Terminated),
    ] {
        let w = map(&record(&[("user", "ada"), ("status", word)]), &mapping()).unwrap();
        assert_eq!(w.spec.state, state, "{word}");
    }
}

#[test]
fn unusable_rows_name_their_worker_when_they_can() {
    let cases = [
        (record(&[("name", "Nobody")]), None),
        (record(&[("user", "-bad")]), Some("bad")),
        (
            record(&[("user", "ada"), ("hired", "next week")]),
            Some("ada"),
        ),
        (
            record(&[("user", "ada"), ("status", "retired?")]),
            Some("ada"),
        ),
        (
            record(&[
                ("user", "ada"),
                ("hired", "2027-02-01"),
                ("left", "2027-01-01"),
            ]),
            Some("ada"),
        ),
    ];
    for (r, identity) in cases {
        let problem = map(&r, &mapping()).unwrap_err();
        assert_eq!(problem.identity.as_deref(), identity, "{}", problem.message);
        assert_eq!(problem.row, 7);
        assert!(problem.message.contains("row 7"), "{}", problem.message);
    }
}

#[test]
fn a_nested_json_value_in_a_mapped_field_is_a_problem_and_elsewhere_is_not() {
    let mut r = record(&[("user", "ada")]);
    r.nested = vec!["tags".into()];
    assert!(map(&r, &mapping()).is_ok());
    r.nested = vec!["dept".into()];
    assert!(map(&r, &mapping()).is_err());
}

#[test]
fn identity_names_are_kubernetes_names() {
    assert_eq!(
        identity_name("Ada_Lovelace@corp").as_deref(),
        Some("ada-lovelace-corp")
    );
    assert_eq!(identity_name("_x_").as_deref(), Some("x"));
    assert_eq!(identity_name("__"), None);
}

#[test]
fn the_columns_are_every_one_the_mapping_reads_once() {
    let mut m = mapping();
    m.attributes.insert("team".into(), "dept".into());
    assert_eq!(
        columns(&m),
        [
            "boss", "dept", "hired", "left", "mail", "name", "status", "user"
        ]
    );
}
