//! Layers point one way: `api` and `lifecycle` import nothing from `connector`,
//! `provision`, `controller` or `operator`; `connector` nothing from `controller` or
//! `operator`. Read from the source, so a wrong-way `use` fails here, not in review.

use std::path::Path;

fn sources(dir: &Path, out: &mut Vec<std::path::PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("read src").flatten() {
        let path = entry.path();
        if path.is_dir() {
            sources(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// Whether a grouped import, `use crate::{a, module::b};`, names `module`.
fn in_a_group(text: &str, module: &str) -> bool {
    let nested = format!("{module}::");
    text.split("use crate::{")
        .skip(1)
        .filter_map(|rest| rest.split_once("};").map(|(group, _)| group))
        .flat_map(|group| group.split([',', '\n', ' ', '{']))
        .any(|word| word.trim() == module || word.trim().starts_with(&nested))
}

#[test]
fn layers_point_one_way() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let rules: [(&str, &[&str]); 3] = [
        ("api", &["connector", "provision", "controller", "operator"]),
        (
            "lifecycle",
            &["connector", "provision", "controller", "operator"],
        ),
        ("connector", &["controller", "operator"]),
    ];
    let mut wrong = Vec::new();
    for (layer, forbidden) in rules {
        let mut files = Vec::new();
        sources(&src.join(layer), &mut files);
        assert!(!files.is_empty(), "no sources under src/{layer}");
        for file in files {
            let text = std::fs::read_to_string(&file).expect("read a source");
            for module in forbidden {
                let path = format!("crate::{module}");
                if text.contains(&path) || in_a_group(&text, module) {
                    wrong.push(format!("{} uses {path}", file.display()));
                }
            }
        }
    }
    assert!(
        wrong.is_empty(),
        "imports against the layering:\n{}",
        wrong.join("\n")
    );
}
