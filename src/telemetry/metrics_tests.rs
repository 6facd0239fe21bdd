use super::*;

#[test]
fn governance_figures_become_gauges_and_stale_connectors_disappear() {
    let m = Metrics::new();
    let mut f = Figures::default();
    f.accuracy.insert(
        "ns/scim".into(),
        crate::governance::Accuracy {
            in_sync: 3,
            drifted: 1,
            failing: 0,
        },
    );
    f.exceptions.insert("conflict".into(), 2);
    f.deprovisioning.pending = 1;
    f.deprovisioning.oldest_pending_seconds = Some(42);
    f.connectors.insert(
        "ns/scim".into(),
        crate::governance::ConnectorHealth {
            ready: true,
            quarantined: true,
        },
    );
    m.set_governance(&f);
    let text = m.encode().unwrap();
    for line in [
        r#"roster_entitlement_accuracy_ratio{connector="ns/scim"} 0.75"#,
        r#"roster_managed_accounts{connector="ns/scim",standing="drifted"} 1"#,
        r#"roster_leavers{state="pending"} 1"#,
        "roster_deprovisioning_completion_ratio 0.0",
        "roster_leaver_oldest_pending_seconds 42",
        r#"roster_exceptions{kind="conflict"} 2"#,
        r#"roster_connector_ready{connector="ns/scim"} 1"#,
        r#"roster_connector_quarantined{connector="ns/scim"} 1"#,
    ] {
        assert!(text.contains(line), "{line} missing from\n{text}");
    }
    m.set_governance(&Figures::default());
    let text = m.encode().unwrap();
    assert!(!text.contains("ns/scim"), "{text}");
    assert!(
        text.contains("roster_deprovisioning_completion_ratio 1.0"),
        "{text}"
    );
}

#[test]
fn downstream_changes_and_leaver_latency_are_exposed() {
    let m = Metrics::new();
    m.observe_downstream_change("ns/pg", "Revoked", true);
    m.observe_downstream_change("ns/pg", "Revoked", true);
    m.observe_downstream_change("ns/pg", "Disabled", false);
    m.observe_leaver_verified("ns/pg", 3.0);
    m.observe_scan("ns/pg", 0.3, 2);
    m.observe_scan("ns/pg", 0.3, 1);
    let text = m.encode().unwrap();
    for line in [
        r#"roster_downstream_changes_total{connector="ns/pg",operation="Revoked",outcome="applied"} 2"#,
        r#"roster_downstream_changes_total{connector="ns/pg",operation="Disabled",outcome="failed"} 1"#,
        r#"roster_leaver_verified_seconds_count{connector="ns/pg"} 1"#,
        r#"roster_leaver_verified_seconds_bucket{le="4.0",connector="ns/pg"} 1"#,
        r#"roster_leaver_verified_seconds_bucket{le="2.0",connector="ns/pg"} 0"#,
        r#"roster_inventory_scan_seconds_count{connector="ns/pg"} 2"#,
        r#"roster_inventory_scan_seconds_bucket{le="0.4",connector="ns/pg"} 2"#,
        r#"roster_inventory_requeues_total{connector="ns/pg"} 3"#,
    ] {
        assert!(text.contains(line), "{line} missing from\n{text}");
    }
}

#[test]
fn reconciles_are_counted_by_kind_and_outcome() {
    let m = Metrics::new();
    m.observe_reconcile("Role", Duration::from_millis(3), true);
    m.observe_reconcile("Role", Duration::from_millis(3), false);
    m.observe_reconcile("Role", Duration::from_millis(3), true);
    let text = m.encode().unwrap();
    assert!(
        text.contains(r#"roster_reconciliations_total{kind="Role",outcome="ok"} 2"#),
        "{text}"
    );
    assert!(
        text.contains(r#"roster_reconciliations_total{kind="Role",outcome="error"} 1"#),
        "{text}"
    );
    assert!(
        text.contains("roster_reconcile_duration_seconds_count{kind=\"Role\"} 3"),
        "{text}"
    );
}
