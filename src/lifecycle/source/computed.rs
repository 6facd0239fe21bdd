//! Computed mapping values: CEL expressions over a row, evaluated into cells of their
//! own, so that the rest of the mapping (dates, states, what a leaver keeps) treats a
//! computed field exactly as a mapped column. Pure.
//!
//! An expression is bounded before it runs: the size, nesting and cost limits every CEL
//! expression in Roster meets, no string function whose result can outgrow its inputs
//! (`replace`, `join`, `format`, `quote`), and no cell over [`MAX_CELL`] bytes in `row`.
//! What is left grows at most linearly in the expression's length.

use std::{
    collections::BTreeMap,
    sync::{Arc, LazyLock},
};

use cel::{
    Env, Value,
    common::ast::{Expr, LiteralValue},
};

use super::export::Record;
use crate::{
    api::{ComputedFields, FieldMapping},
    lifecycle::{
        cel_cost,
        expression::{self, ExpressionError},
    },
};

/// The longest cell an expression sees; a longer one is left out of `row`.
pub const MAX_CELL: usize = 4096;

/// Functions refused in mapping expressions: each can return more than it was given,
/// and chained they grow without bound.
const GROWING: [&str; 4] = ["replace", "join", "format", "quote"];

/// The prefix of the columns computed values are kept in: a NUL, which no export's
/// header holds, so a computed column never shadows a real one.
const COLUMN_PREFIX: &str = "\u{0}computed.";

/// The standard library with the strings extension.
static ENV: LazyLock<Option<Arc<Env>>> = LazyLock::new(|| {
    let mut env = Env::stdlib();
    env.add_extension(cel::extensions::strings).ok()?;
    Some(Arc::new(env))
});

/// Why a mapping's expressions cannot be used: the whole read is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ComputedError {
    /// An expression does not compile or is over a limit.
    #[error("mapping.computed.{field}: {error}")]
    Expression {
        /// Which field (`email`, `attributes.team`).
        field: String,
        /// Why.
        error: ExpressionError,
    },
    /// An expression calls a function whose result can grow without bound.
    #[error(
        "mapping.computed.{field}: {function}() is not available in mapping expressions, \
         because its result can outgrow its inputs; build the value with + instead"
    )]
    Growing {
        /// Which field.
        field: String,
        /// The function.
        function: String,
    },
    /// The strings extension could not be set up (a bug, not input).
    #[error("the CEL environment cannot be built")]
    Environment,
}

impl ComputedError {
    /// A CamelCase reason for conditions.
    pub fn reason(&self) -> &'static str {
        match self {
            Self::Expression { error, .. } => error.reason(),
            Self::Growing { .. } => "InvalidExpression",
            Self::Environment => "InvalidExpression",
        }
    }
}

/// One compiled expression and the field it fills.
struct Program {
    field: String,
    program: cel::Program,
}

/// The expressions of `computed`, by field name (`email`, `attributes.team`).
fn sources(computed: &ComputedFields) -> Vec<(String, &str)> {
    let ComputedFields {
        display_name,
        given_name,
        family_name,
        email,
        hire_date,
        termination_date,
        manager,
        state,
        attributes,
    } = computed;
    let named = [
        ("displayName", display_name),
        ("givenName", given_name),
        ("familyName", family_name),
        ("email", email),
        ("hireDate", hire_date),
        ("terminationDate", termination_date),
        ("manager", manager),
        ("state", state),
    ];
    named
        .into_iter()
        .filter_map(|(f, e)| Some((f.to_owned(), e.as_deref()?)))
        .chain(
            attributes
                .iter()
                .map(|(a, e)| (format!("attributes.{a}"), e.as_str())),
        )
        .collect()
}

fn compile(computed: &ComputedFields) -> Result<Vec<Program>, ComputedError> {
    let env = ENV.as_ref().ok_or(ComputedError::Environment)?;
    let mut out = Vec::new();
    for (field, source) in sources(computed) {
        let program =
            expression::compile_in(env, source).map_err(|error| ComputedError::Expression {
                field: field.clone(),
                error,
            })?;
        if let Some(function) = calls(&program.expression().expr)
            .into_iter()
            .find(|f| GROWING.contains(&f.as_str()))
        {
            return Err(ComputedError::Growing { field, function });
        }
        out.push(Program { field, program });
    }
    Ok(out)
}

/// The column a computed `field` is kept in.
fn column(field: &str) -> String {
    format!("{COLUMN_PREFIX}{field}")
}

/// `mapping` with each computed field read from its computed column.
fn effective(mapping: &FieldMapping, programs: &[Program]) -> FieldMapping {
    let mut out = FieldMapping {
        computed: None,
        ..mapping.clone()
    };
    for p in programs {
        let col = Some(column(&p.field));
        match p.field.as_str() {
            "displayName" => out.display_name = col,
            "givenName" => out.given_name = col,
            "familyName" => out.family_name = col,
            "email" => out.email = col,
            "hireDate" => out.hire_date = col,
            "terminationDate" => out.termination_date = col,
            "manager" => out.manager = col,
            "state" => out.state = col,
            attr => {
                if let (Some(name), Some(col)) = (attr.strip_prefix("attributes."), col) {
                    out.attributes.insert(name.to_owned(), col);
                }
            }
        }
    }
    out
}

/// The mapping with computed fields read from columns, and the records with those
/// columns filled; a row an expression fails on carries why. `None` when the mapping
/// computes nothing (use the originals). Refused whole when an expression cannot be used.
pub fn expand(
    mapping: &FieldMapping,
    records: &[Record],
) -> Result<Option<(FieldMapping, Vec<Record>)>, ComputedError> {
    let Some(computed) = &mapping.computed else {
        return Ok(None);
    };
    let programs = compile(computed)?;
    let env = ENV.as_ref().ok_or(ComputedError::Environment)?;
    let records = records
        .iter()
        .map(|r| evaluate(env, &programs, r))
        .collect();
    Ok(Some((effective(mapping, &programs), records)))
}

fn evaluate(env: &Arc<Env>, programs: &[Program], record: &Record) -> Record {
    let mut out = record.clone();
    let row: BTreeMap<&str, &str> = record
        .cells
        .iter()
        .filter(|(_, v)| v.len() <= MAX_CELL)
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    let mut ctx = cel::Context::with_env(env.clone());
    if let Err(e) = ctx.add_variable("row", row) {
        out.errors
            .push(format!("the row cannot be given to CEL: {e}"));
        return out;
    }
    for p in programs {
        match p
            .program
            .execute(&ctx)
            .map_err(|e| e.to_string())
            .and_then(text)
        {
            Ok(Some(value)) => {
                out.cells.insert(column(&p.field), value);
            }
            Ok(None) => {}
            Err(e) => out
                .errors
                .push(format!("mapping.computed.{}: {e}", p.field)),
        }
    }
    out
}

/// A result as a cell: a string as it is (trimmed; empty is no value), a bool or
/// number as text, `null` as no value.
fn text(value: Value) -> Result<Option<String>, String> {
    let s = match value {
        Value::String(s) => s.trim().to_owned(),
        Value::Bool(b) => b.to_string(),
        Value::Int(i) => i.to_string(),
        Value::UInt(u) => u.to_string(),
        Value::Float(f) => f.to_string(),
        Value::Null => return Ok(None),
        other => return Err(format!("gave {other:?}, not a string")),
    };
    Ok((!s.is_empty()).then_some(s))
}

/// The columns the expressions of `mapping` read by name (`row.X`, `row['X']`): what a
/// directory search must ask for. Expressions that do not compile read nothing.
pub fn columns(mapping: &FieldMapping) -> Vec<String> {
    let Some(computed) = &mapping.computed else {
        return Vec::new();
    };
    let Some(env) = ENV.as_ref() else {
        return Vec::new();
    };
    let mut out: Vec<String> = sources(computed)
        .into_iter()
        .filter_map(|(_, source)| expression::compile_in(env, source).ok())
        .flat_map(|p| row_fields(&p.expression().expr))
        .collect();
    out.sort_unstable();
    out.dedup();
    out
}

/// Every sub-expression of `expr`, walked without recursion.
fn nodes(expr: &Expr) -> Vec<&Expr> {
    let mut out = Vec::new();
    let mut pending = vec![expr];
    while let Some(e) = pending.pop() {
        out.push(e);
        pending.extend(cel_cost::children(e));
    }
    out
}

/// The functions `expr` calls.
fn calls(expr: &Expr) -> Vec<String> {
    nodes(expr)
        .into_iter()
        .filter_map(|e| match e {
            Expr::Call(c) => Some(c.func_name.clone()),
            _ => None,
        })
        .collect()
}

/// The fields of `row` that `expr` names.
fn row_fields(expr: &Expr) -> Vec<String> {
    let is_row = |e: &Expr| matches!(e, Expr::Ident(n) if n == "row");
    nodes(expr)
        .into_iter()
        .filter_map(|e| match e {
            Expr::Select(s) if is_row(&s.operand.expr) => Some(s.field.clone()),
            Expr::Call(c)
                if c.func_name == "_[_]" && c.args.len() == 2 && is_row(&c.args[0].expr) =>
            {
                match &c.args[1].expr {
                    Expr::Literal(LiteralValue::String(s)) => Some(s.inner().to_owned()),
                    _ => None,
                }
            }
            _ => None,
        })
        .collect()
}

#[cfg(test)]
#[path = "computed_tests.rs"]
mod tests;
