//! `kubectl explain` text from rustdoc: rustdoc wraps its lines at the source's width,
//! and `kubectl explain` wraps again at the terminal's, so a description that kept the
//! source's line breaks would read as ragged half-lines. Paragraphs keep their breaks;
//! lines within one are joined. List items and indented lines keep theirs.

use serde_json::Value;

/// `text` with each paragraph's lines joined by spaces.
pub fn reflow(text: &str) -> String {
    text.split("\n\n")
        .map(|paragraph| {
            let mut out = String::new();
            for line in paragraph.lines() {
                let keeps_break = line.starts_with("- ")
                    || line.starts_with("* ")
                    || line.starts_with(' ')
                    || line.starts_with('|');
                if !out.is_empty() {
                    out.push(if keeps_break { '\n' } else { ' ' });
                }
                out.push_str(line);
            }
            out
        })
        .collect::<Vec<_>>()
        .join("\n\n")
}

/// Reflows every `description` string in a JSON schema, however deep.
pub fn reflow_descriptions(value: &mut Value) {
    match value {
        Value::Object(map) => {
            for (key, v) in map.iter_mut() {
                match v {
                    Value::String(s) if key == "description" => *s = reflow(s),
                    other => reflow_descriptions(other),
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(reflow_descriptions),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paragraphs_are_joined_and_kept_apart() {
        let text = "An identity of the\norganisation: a person.\n\nA second\nparagraph.";
        assert_eq!(
            reflow(text),
            "An identity of the organisation: a person.\n\nA second paragraph."
        );
    }

    #[test]
    fn list_items_and_indented_lines_keep_their_breaks() {
        let text = "Either:\n- one thing\n- or another,\n  which wraps\n| a | b |";
        assert_eq!(reflow(text), text);
        assert_eq!(reflow("one\ntwo"), "one two");
    }

    #[test]
    fn descriptions_are_reflowed_at_any_depth_and_nothing_else_is() {
        let mut schema = serde_json::json!({
            "description": "a\nb",
            "properties": {"x": {"description": "c\nd", "pattern": "e\nf"}},
            "items": [{"description": "g\nh"}],
        });
        reflow_descriptions(&mut schema);
        assert_eq!(schema["description"], "a b");
        assert_eq!(schema["properties"]["x"]["description"], "c d");
        assert_eq!(schema["properties"]["x"]["pattern"], "e\nf");
        assert_eq!(schema["items"][0]["description"], "g h");
    }
}
