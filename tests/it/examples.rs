//! Every file in `examples/` is accepted by the API server, as a user would apply it.

use crate::harness::control_plane;

#[tokio::test]
async fn every_example_is_accepted() {
    let cp = control_plane();
    let client = cp.client().await;
    let ns = cp.namespace(&client, "examples").await;
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("examples");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .expect("examples/")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "yaml"))
        .collect();
    files.sort();
    assert!(
        files.len() >= 4,
        "expected the example files, found {files:?}"
    );
    for file in &files {
        let out = cp.kubectl(&[
            "apply",
            "--server-side",
            "-n",
            &ns,
            "-f",
            &file.display().to_string(),
        ]);
        assert!(
            out.status.success(),
            "{} was refused:\n{}",
            file.display(),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let out = cp.kubectl(&["get", "rrb", "-n", &ns, "-o", "name"]);
    let listed = String::from_utf8_lossy(&out.stdout);
    assert_eq!(listed.lines().count(), 3, "{listed}");
}
