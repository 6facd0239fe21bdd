//! The Helm chart (`charts/roster`) with a real helm and the real test apiserver: lint and
//! template for the default values and the two sets in `charts/roster/ci`, values its
//! schema refuses, an install whose objects are all created and whose pods pass
//! admission under `restricted` Pod Security, the operator image run as that pod, the
//! operator with only the chart's ServiceAccount token taking a person through four
//! apps, and the alert rules and dashboard checked by promtool.

mod image;
mod install;
mod monitoring;
mod rbac;
mod render;

use std::{
    path::PathBuf,
    process::{Command, Output},
};

use serde_yaml_ng::Value;

use crate::harness::go_tool;

/// The chart's directory.
fn chart() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("charts/roster")
}

/// `helm ARGS…`, with a home of its own so that no user configuration or cache leaks in.
fn helm(args: &[&str]) -> Output {
    let home = std::env::temp_dir().join("roster-it-helm");
    Command::new(go_tool("helm"))
        .args(args)
        .env("HELM_CACHE_HOME", home.join("cache"))
        .env("HELM_CONFIG_HOME", home.join("config"))
        .env("HELM_DATA_HOME", home.join("data"))
        .output()
        .expect("run helm")
}

/// `helm ARGS…`, which must succeed; its standard output.
fn helm_ok(args: &[&str]) -> String {
    let out = helm(args);
    assert!(
        out.status.success(),
        "helm {}:\n{}{}",
        args.join(" "),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The YAML documents in `text`, but empty ones.
fn documents(text: &str) -> Vec<Value> {
    serde_yaml_ng::Deserializer::from_str(text)
        .map(|d| serde::Deserialize::deserialize(d).expect("YAML"))
        .filter(|v: &Value| !v.is_null())
        .collect()
}

/// `kind/name` (or `kind/namespace/name`) of an object.
fn id(obj: &Value) -> String {
    let kind = obj["kind"].as_str().unwrap_or_default();
    let name = obj["metadata"]["name"].as_str().unwrap_or_default();
    match obj["metadata"]["namespace"].as_str() {
        Some(ns) => format!("{kind}/{ns}/{name}"),
        None => format!("{kind}/{name}"),
    }
}
