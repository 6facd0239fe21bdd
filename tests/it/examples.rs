//! Every file in `examples/` is accepted by the API server, as a user would apply it. A
//! server-side dry run runs every schema and CEL check without persisting: the examples'
//! birthright binding would otherwise reach every Person of the shared test cluster.

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
            "--dry-run=server",
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
        let text = std::fs::read_to_string(file).expect("read example");
        let documents = text.split("\n---").filter(|d| d.contains("kind:")).count();
        let accepted = String::from_utf8_lossy(&out.stdout)
            .matches("(server dry run)")
            .count();
        assert_eq!(
            accepted,
            documents,
            "{}: every object accepted",
            file.display()
        );
    }
}
