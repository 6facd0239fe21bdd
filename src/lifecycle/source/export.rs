//! Reading an HR export: the whole file or nothing. A file that does not parse to the
//! end — truncated mid-row, a row with a column too few, JSON cut short — is refused
//! whole, because the rows it would yield are a subset of the workers, and a subset read
//! as the truth is a wave of false leavers. Pure.

use std::collections::BTreeMap;

use crate::api::ExportFormat;

/// One worker's row: column (or JSON field) → cell, with where it came from.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Record {
    /// The 1-based row number (CSV: the line after the header; JSON: the array index + 1).
    pub row: usize,
    /// Cells by column name, trimmed; empty cells are absent.
    pub cells: BTreeMap<String, String>,
    /// Fields that are objects or arrays (JSON), which no mapping can use.
    pub nested: Vec<String>,
    /// Why the row cannot be used, found before mapping (a computed value that failed).
    pub errors: Vec<String>,
}

/// Why an export cannot be read at all.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ExportError {
    /// The CSV is malformed: a row with another number of columns than the header (a
    /// truncated file ends this way), bad quoting, or text that is not UTF-8.
    #[error("the CSV export cannot be read at row {row}: {message}")]
    Csv {
        /// The 1-based data row, where known.
        row: usize,
        /// What the parser said.
        message: String,
    },
    /// A quoted field never ends: the file was most likely cut short inside it, and the
    /// parser would read every later row as part of that one cell.
    #[error("the CSV export has an unterminated quote: it looks cut short")]
    UnterminatedQuote,
    /// Two header columns have the same name: which one a mapping means is unknowable.
    #[error("the CSV header names column {0:?} twice")]
    DuplicateColumn(String),
    /// The JSON is malformed or cut short.
    #[error("the JSON export cannot be parsed: {0}")]
    Json(String),
    /// The JSON is neither an array of objects nor an object with a `workers` array.
    #[error(
        "the JSON export must be an array of objects, or an object whose \"workers\" field is one: {0}"
    )]
    JsonShape(String),
}

impl ExportError {
    /// The condition reason.
    pub fn reason(&self) -> &'static str {
        match self {
            ExportError::Csv { .. }
            | ExportError::UnterminatedQuote
            | ExportError::DuplicateColumn(_) => "MalformedCsv",
            ExportError::Json(_) | ExportError::JsonShape(_) => "MalformedJson",
        }
    }
}

/// Every record of `text`, or why none can be trusted.
pub fn parse(text: &str, format: ExportFormat) -> Result<Vec<Record>, ExportError> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    match format {
        ExportFormat::Csv => parse_csv(text),
        ExportFormat::Json => parse_json(text),
    }
}

fn parse_csv(text: &str) -> Result<Vec<Record>, ExportError> {
    if text.trim().is_empty() {
        return Ok(Vec::new());
    }
    // In RFC 4180 a quote inside a quoted field is doubled, so a whole file holds an even
    // number of them; the parser itself reads an open quote to the end without a word.
    if text.bytes().filter(|b| *b == b'"').count() % 2 == 1 {
        return Err(ExportError::UnterminatedQuote);
    }
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(true)
        .flexible(false)
        .trim(csv::Trim::All)
        .from_reader(text.as_bytes());
    let header: Vec<String> = reader
        .headers()
        .map_err(|e| csv_error(&e, 0))?
        .iter()
        .map(str::to_owned)
        .collect();
    let mut seen = std::collections::BTreeSet::new();
    if let Some(twice) = header.iter().find(|h| !h.is_empty() && !seen.insert(*h)) {
        return Err(ExportError::DuplicateColumn(twice.clone()));
    }
    let mut out = Vec::new();
    for (i, row) in reader.records().enumerate() {
        let row = row.map_err(|e| csv_error(&e, i + 1))?;
        let cells = header
            .iter()
            .zip(row.iter())
            .filter(|(h, v)| !h.is_empty() && !v.is_empty())
            .map(|(h, v)| (h.clone(), v.to_owned()))
            .collect();
        out.push(Record {
            row: i + 1,
            cells,
            nested: Vec::new(),
            errors: Vec::new(),
        });
    }
    Ok(out)
}

fn csv_error(e: &csv::Error, row: usize) -> ExportError {
    ExportError::Csv {
        row,
        message: e.to_string(),
    }
}

fn parse_json(text: &str) -> Result<Vec<Record>, ExportError> {
    if text.trim().is_empty() {
        return Ok(Vec::new());
    }
    let value: serde_json::Value =
        serde_json::from_str(text).map_err(|e| ExportError::Json(e.to_string()))?;
    let items = match value {
        serde_json::Value::Array(items) => items,
        serde_json::Value::Object(mut o) => match o.remove("workers") {
            Some(serde_json::Value::Array(items)) => items,
            _ => return Err(ExportError::JsonShape("no \"workers\" array".into())),
        },
        other => return Err(ExportError::JsonShape(kind(&other).into())),
    };
    items
        .into_iter()
        .enumerate()
        .map(|(i, item)| {
            let serde_json::Value::Object(fields) = item else {
                return Err(ExportError::JsonShape(format!(
                    "item {} is {}, not an object",
                    i + 1,
                    kind(&item)
                )));
            };
            Ok(json_record(i + 1, fields))
        })
        .collect()
}

fn json_record(row: usize, fields: serde_json::Map<String, serde_json::Value>) -> Record {
    let mut record = Record {
        row,
        ..Record::default()
    };
    for (k, v) in fields {
        let cell = match v {
            serde_json::Value::Null => continue,
            serde_json::Value::String(s) => s.trim().to_owned(),
            serde_json::Value::Bool(b) => b.to_string(),
            serde_json::Value::Number(n) => n.to_string(),
            serde_json::Value::Array(_) | serde_json::Value::Object(_) => {
                record.nested.push(k);
                continue;
            }
        };
        if !cell.is_empty() {
            record.cells.insert(k, cell);
        }
    }
    record
}

fn kind(v: &serde_json::Value) -> &'static str {
    match v {
        serde_json::Value::Null => "null",
        serde_json::Value::Bool(_) => "a boolean",
        serde_json::Value::Number(_) => "a number",
        serde_json::Value::String(_) => "a string",
        serde_json::Value::Array(_) => "an array",
        serde_json::Value::Object(_) => "an object",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cells(r: &Record) -> Vec<(&str, &str)> {
        r.cells
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect()
    }

    #[test]
    fn csv_rows_become_records_with_empty_cells_left_out() {
        let text = "\u{feff}user,Department,Manager\nada,eng,grace\n grace , ops ,\n";
        let records = parse(text, ExportFormat::Csv).unwrap();
        assert_eq!(records.len(), 2);
        assert_eq!(
            cells(&records[0]),
            [("Department", "eng"), ("Manager", "grace"), ("user", "ada")]
        );
        assert_eq!(
            cells(&records[1]),
            [("Department", "ops"), ("user", "grace")]
        );
        assert_eq!(records[1].row, 2);
    }

    #[test]
    fn a_truncated_csv_is_refused_whole() {
        let text = "user,department,manager\nada,eng,grace\ngrace,op";
        let err = parse(text, ExportFormat::Csv).unwrap_err();
        assert!(matches!(err, ExportError::Csv { row: 2, .. }), "{err:?}");
        assert_eq!(err.reason(), "MalformedCsv");
    }

    #[test]
    fn an_unterminated_quote_is_refused() {
        let text = "user,department\nada,\"eng\ngrace,ops\n";
        assert_eq!(
            parse(text, ExportFormat::Csv),
            Err(ExportError::UnterminatedQuote)
        );
        let quoted = "user,department\nada,\"eng, \"\"core\"\"\"\n";
        assert_eq!(
            parse(quoted, ExportFormat::Csv).unwrap()[0].cells["department"],
            "eng, \"core\""
        );
    }

    #[test]
    fn an_empty_or_header_only_file_has_no_rows() {
        for text in ["", "  \n", "user,department\n"] {
            assert_eq!(parse(text, ExportFormat::Csv).unwrap(), [], "{text:?}");
        }
        assert_eq!(parse("[]", ExportFormat::Json).unwrap(), []);
    }

    #[test]
    fn a_header_naming_a_column_twice_is_refused() {
        let err = parse("user,dept,dept\nada,a,b\n", ExportFormat::Csv).unwrap_err();
        assert_eq!(err, ExportError::DuplicateColumn("dept".into()));
    }

    #[test]
    fn json_arrays_and_workers_objects_both_read() {
        let array = r#"[{"user":"ada","active":true,"level":3,"extra":null,"tags":["x"]}]"#;
        let records = parse(array, ExportFormat::Json).unwrap();
        assert_eq!(
            cells(&records[0]),
            [("active", "true"), ("level", "3"), ("user", "ada")]
        );
        assert_eq!(records[0].nested, ["tags"]);
        let wrapped = r#"{"workers":[{"user":"ada"}],"generated":"today"}"#;
        assert_eq!(parse(wrapped, ExportFormat::Json).unwrap().len(), 1);
    }

    #[test]
    fn json_cut_short_or_of_the_wrong_shape_is_refused() {
        let cut = r#"[{"user":"ada"},{"user":"gr"#;
        assert_eq!(
            parse(cut, ExportFormat::Json).unwrap_err().reason(),
            "MalformedJson"
        );
        for bad in [r#"{"people":[]}"#, r#""ada""#, r#"[1,2]"#] {
            assert!(
                matches!(
                    parse(bad, ExportFormat::Json),
                    Err(ExportError::JsonShape(_))
                ),
                "{bad}"
            );
        }
    }
}
