//! SCIM filters (RFC 7644 section 3.4.2.2), the part a pushing system uses: `attrPath op
//! value` comparisons joined by `and` / `or` (`and` binds tighter), `not (...)` and
//! parentheses, with the operators `eq ne co sw ew gt ge lt le pr`. Entra ID and Okta
//! send `userName eq "x"` and `externalId eq "x"`; PATCH paths carry a filter in brackets
//! (`emails[type eq "work"]`). Pure.

use serde_json::Value;

use super::path;

/// The longest filter taken: a pushing system sends a few dozen characters.
const FILTER_MAX: usize = 4096;
/// The deepest nesting of parentheses taken.
const DEPTH_MAX: usize = 16;

/// A parsed filter.
#[derive(Clone, Debug, PartialEq)]
pub enum Filter {
    /// `attr op value`, or `attr pr` (`value` is `None`).
    Compare {
        /// The attribute path, as written (`userName`, `emails.value`, a URN path).
        attr: String,
        /// The operator, lower case.
        op: Op,
        /// The value compared with.
        value: Option<Value>,
    },
    /// Both hold.
    And(Box<Filter>, Box<Filter>),
    /// Either holds.
    Or(Box<Filter>, Box<Filter>),
    /// It does not hold.
    Not(Box<Filter>),
}

/// A comparison operator.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Op {
    /// Equal.
    Eq,
    /// Not equal.
    Ne,
    /// Contains.
    Co,
    /// Starts with.
    Sw,
    /// Ends with.
    Ew,
    /// Greater than.
    Gt,
    /// Greater than or equal.
    Ge,
    /// Less than.
    Lt,
    /// Less than or equal.
    Le,
    /// Present (has a value).
    Pr,
}

/// Why a filter cannot be used: the SCIM error `invalidFilter`.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("invalid filter: {0}")]
pub struct FilterError(pub String);

impl Filter {
    /// Parses `text`.
    pub fn parse(text: &str) -> Result<Self, FilterError> {
        if text.len() > FILTER_MAX {
            return Err(FilterError(format!("longer than {FILTER_MAX} bytes")));
        }
        let tokens = tokenize(text)?;
        let mut parser = Parser { tokens, at: 0 };
        let filter = parser.or(0)?;
        match parser.tokens.get(parser.at) {
            None => Ok(filter),
            Some(t) => Err(FilterError(format!("unexpected {t:?}"))),
        }
    }

    /// Whether `resource` (a JSON object) matches.
    pub fn matches(&self, resource: &Value) -> bool {
        match self {
            Filter::And(a, b) => a.matches(resource) && b.matches(resource),
            Filter::Or(a, b) => a.matches(resource) || b.matches(resource),
            Filter::Not(f) => !f.matches(resource),
            Filter::Compare { attr, op, value } => {
                let found = path::values_at(resource, attr);
                let case_exact = path::case_exact(attr);
                match (op, value) {
                    (Op::Pr, _) => found.iter().any(|v| !v.is_null() && v != &&Value::from("")),
                    (Op::Ne, Some(want)) => {
                        !found.iter().any(|v| compare(v, Op::Eq, want, case_exact))
                    }
                    (op, Some(want)) => found.iter().any(|v| compare(v, *op, want, case_exact)),
                    (_, None) => false,
                }
            }
        }
    }

    /// The value of a lone `attr eq "value"` comparison on `attr` (case-insensitive
    /// name): what an index can answer.
    pub fn equality_on(&self, attr: &str) -> Option<&str> {
        match self {
            Filter::Compare {
                attr: a,
                op: Op::Eq,
                value: Some(Value::String(v)),
            } if a.eq_ignore_ascii_case(attr) => Some(v),
            _ => None,
        }
    }
}

fn compare(have: &Value, op: Op, want: &Value, case_exact: bool) -> bool {
    match (have, want) {
        (Value::String(h), Value::String(w)) => {
            let (h, w) = if case_exact {
                (h.clone(), w.clone())
            } else {
                (h.to_lowercase(), w.to_lowercase())
            };
            match op {
                Op::Eq => h == w,
                Op::Co => h.contains(&w),
                Op::Sw => h.starts_with(&w),
                Op::Ew => h.ends_with(&w),
                Op::Gt => h > w,
                Op::Ge => h >= w,
                Op::Lt => h < w,
                Op::Le => h <= w,
                Op::Ne | Op::Pr => false,
            }
        }
        (Value::Number(h), Value::Number(w)) => {
            let (Some(h), Some(w)) = (h.as_f64(), w.as_f64()) else {
                return false;
            };
            match op {
                Op::Eq => h == w,
                Op::Gt => h > w,
                Op::Ge => h >= w,
                Op::Lt => h < w,
                Op::Le => h <= w,
                _ => false,
            }
        }
        // Entra ID sends booleans as strings in places; compare them as what they say.
        (Value::Bool(h), w) => op == Op::Eq && path::as_bool(w) == Some(*h),
        (h, w) => op == Op::Eq && h == w,
    }
}

#[derive(Clone, Debug, PartialEq)]
enum Token {
    Word(String),
    Value(Value),
    Open,
    Close,
}

fn tokenize(text: &str) -> Result<Vec<Token>, FilterError> {
    let mut out = Vec::new();
    let mut chars = text.char_indices().peekable();
    while let Some(&(i, c)) = chars.peek() {
        match c {
            c if c.is_whitespace() => {
                chars.next();
            }
            '(' => {
                chars.next();
                out.push(Token::Open);
            }
            ')' => {
                chars.next();
                out.push(Token::Close);
            }
            '"' => {
                let end = string_end(text, i)?;
                let value: Value = serde_json::from_str(&text[i..end])
                    .map_err(|e| FilterError(format!("bad string at {i}: {e}")))?;
                out.push(Token::Value(value));
                while chars.peek().is_some_and(|&(j, _)| j < end) {
                    chars.next();
                }
            }
            _ => {
                let mut word = String::new();
                while let Some(&(_, c)) = chars.peek() {
                    if c.is_whitespace() || c == '(' || c == ')' || c == '"' {
                        break;
                    }
                    word.push(c);
                    chars.next();
                }
                out.push(Token::Word(word));
            }
        }
    }
    Ok(out)
}

/// The byte after the closing quote of the string opening at `start`.
fn string_end(text: &str, start: usize) -> Result<usize, FilterError> {
    let bytes = text.as_bytes();
    let mut i = start + 1;
    while i < bytes.len() {
        match bytes[i] {
            b'\\' => i += 2,
            b'"' => return Ok(i + 1),
            _ => i += 1,
        }
    }
    Err(FilterError(format!("the string at {start} is not closed")))
}

struct Parser {
    tokens: Vec<Token>,
    at: usize,
}

impl Parser {
    fn keyword(&self, word: &str) -> bool {
        matches!(self.tokens.get(self.at), Some(Token::Word(w)) if w.eq_ignore_ascii_case(word))
    }

    fn or(&mut self, depth: usize) -> Result<Filter, FilterError> {
        let mut left = self.and(depth)?;
        while self.keyword("or") {
            self.at += 1;
            left = Filter::Or(Box::new(left), Box::new(self.and(depth)?));
        }
        Ok(left)
    }

    fn and(&mut self, depth: usize) -> Result<Filter, FilterError> {
        let mut left = self.unary(depth)?;
        while self.keyword("and") {
            self.at += 1;
            left = Filter::And(Box::new(left), Box::new(self.unary(depth)?));
        }
        Ok(left)
    }

    fn unary(&mut self, depth: usize) -> Result<Filter, FilterError> {
        if depth > DEPTH_MAX {
            return Err(FilterError(format!("nested deeper than {DEPTH_MAX}")));
        }
        if self.keyword("not") {
            self.at += 1;
            return Ok(Filter::Not(Box::new(self.group(depth + 1)?)));
        }
        if self.tokens.get(self.at) == Some(&Token::Open) {
            return self.group(depth + 1);
        }
        self.comparison()
    }

    fn group(&mut self, depth: usize) -> Result<Filter, FilterError> {
        if self.tokens.get(self.at) != Some(&Token::Open) {
            return Err(FilterError("expected '('".into()));
        }
        self.at += 1;
        let inner = self.or(depth)?;
        if self.tokens.get(self.at) != Some(&Token::Close) {
            return Err(FilterError("a '(' is not closed".into()));
        }
        self.at += 1;
        Ok(inner)
    }

    fn comparison(&mut self) -> Result<Filter, FilterError> {
        let Some(Token::Word(attr)) = self.tokens.get(self.at).cloned() else {
            return Err(FilterError("expected an attribute".into()));
        };
        let Some(Token::Word(op)) = self.tokens.get(self.at + 1).cloned() else {
            return Err(FilterError(format!("expected an operator after {attr:?}")));
        };
        let op = match op.to_ascii_lowercase().as_str() {
            "eq" => Op::Eq,
            "ne" => Op::Ne,
            "co" => Op::Co,
            "sw" => Op::Sw,
            "ew" => Op::Ew,
            "gt" => Op::Gt,
            "ge" => Op::Ge,
            "lt" => Op::Lt,
            "le" => Op::Le,
            "pr" => Op::Pr,
            other => return Err(FilterError(format!("unknown operator {other:?}"))),
        };
        self.at += 2;
        if op == Op::Pr {
            return Ok(Filter::Compare {
                attr,
                op,
                value: None,
            });
        }
        let value = match self.tokens.get(self.at).cloned() {
            Some(Token::Value(v)) => v,
            Some(Token::Word(w)) => match w.as_str() {
                "true" => Value::Bool(true),
                "false" => Value::Bool(false),
                "null" => Value::Null,
                n => serde_json::from_str::<serde_json::Number>(n)
                    .map(Value::Number)
                    .map_err(|_| FilterError(format!("{n:?} is not a value")))?,
            },
            _ => return Err(FilterError(format!("expected a value after {attr:?}"))),
        };
        self.at += 1;
        Ok(Filter::Compare {
            attr,
            op,
            value: Some(value),
        })
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn what_entra_and_okta_send() {
        let user = json!({"userName": "Ada@Corp.example", "externalId": "E-1",
            "emails": [{"value": "ada@corp.example", "type": "work"}], "active": true});
        for f in [
            r#"userName eq "ada@corp.example""#,
            r#"externalId eq "E-1""#,
            r#"emails.value co "corp" and active eq true"#,
            r#"not (userName eq "bob") or externalId eq "x""#,
            "userName pr",
            r#"(userName sw "ada") and (emails.type eq "work")"#,
        ] {
            assert!(Filter::parse(f).unwrap().matches(&user), "{f}");
        }
        for f in [
            r#"externalId eq "e-1""#, // caseExact
            r#"userName eq "bob""#,
            r#"userName ne "ada@corp.example""#,
            r#"active eq false"#,
        ] {
            assert!(!Filter::parse(f).unwrap().matches(&user), "{f}");
        }
        assert_eq!(
            Filter::parse(r#"UserName eq "x""#)
                .unwrap()
                .equality_on("userName"),
            Some("x")
        );
    }

    #[test]
    fn bad_filters_are_errors_not_panics() {
        for f in [
            "",
            "userName",
            "userName eq",
            r#"userName xx "a""#,
            r#"userName eq "a"#,
            "((((",
            r#"userName eq "a" and"#,
            r#"userName eq "a" )"#,
            &"(".repeat(40),
            &"x".repeat(5000),
        ] {
            assert!(Filter::parse(f).is_err(), "{f:?}");
        }
    }
}
