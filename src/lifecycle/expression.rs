//! Compiling a CEL expression an object's author wrote (a RoleBinding's subjects, an
//! IdentitySource's computed fields), within bounds: the operator evaluates it many
//! times, so its size, nesting and estimated cost are checked before it ever runs, and a
//! large one is parsed on a thread with room for the parser's recursion.

use std::sync::Arc;

use cel::Env;

use super::cel_cost;

/// Why an expression cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ExpressionError {
    /// The expression does not parse.
    #[error("invalid CEL expression: {0}")]
    Invalid(String),
    /// The expression is longer than [`cel_cost::MAX_BYTES`].
    #[error("the CEL expression is {0} bytes long; the limit is {max}", max = cel_cost::MAX_BYTES)]
    TooLarge(usize),
    /// The expression could take more than [`cel_cost::MAX_COST`] steps per evaluation.
    #[error(
        "the CEL expression could take {0} steps per evaluation; the limit is {max} \
         (nested comprehensions over lists of unknown size cost the most)",
        max = cel_cost::MAX_COST
    )]
    TooCostly(u64),
    /// The expression nests brackets deeper than [`cel_cost::MAX_NESTING`], or its
    /// parsed tree is deeper than [`cel_cost::MAX_DEPTH`].
    #[error(
        "the CEL expression nests {0} levels deep; the limits are {nesting} brackets and \
         {depth} levels of operators",
        nesting = cel_cost::MAX_NESTING,
        depth = cel_cost::MAX_DEPTH
    )]
    TooDeep(usize),
}

impl ExpressionError {
    /// A CamelCase reason for conditions.
    pub fn reason(&self) -> &'static str {
        match self {
            Self::Invalid(_) => "InvalidExpression",
            Self::TooLarge(_) => "ExpressionTooLarge",
            Self::TooCostly(_) => "ExpressionTooCostly",
            Self::TooDeep(_) => "ExpressionTooDeep",
        }
    }
}

/// Below this size and nesting an expression parses on any thread's stack (a debug
/// build parses ten levels or a 250-operator chain in 2 MiB).
const INLINE_BYTES: usize = 256;
const INLINE_NESTING: usize = 4;
/// The stack a larger expression is parsed on: enough for [`cel_cost::MAX_BYTES`] at
/// [`cel_cost::MAX_NESTING`], in a debug build, with room to spare.
const PARSE_STACK: usize = 32 << 20;

/// Parses `source` for `env` (the standard one when `None`), on a thread of its own with
/// a large stack unless it is small: the parser recurses, and a stack overflow would
/// abort the operator.
fn parse(env: Option<&Arc<Env>>, source: &str) -> Result<cel::Program, ExpressionError> {
    let compile = move |env: Option<&Env>, s: &str| {
        match env {
            Some(env) => env.compile(s),
            None => cel::Program::compile(s),
        }
        .map_err(|e| ExpressionError::Invalid(e.to_string()))
    };
    if source.len() <= INLINE_BYTES && cel_cost::nesting(source) <= INLINE_NESTING {
        return compile(env.map(|e| &**e), source);
    }
    let (owned, env) = (source.to_owned(), env.cloned());
    std::thread::Builder::new()
        .name("cel-parse".into())
        .stack_size(PARSE_STACK)
        .spawn(move || compile(env.as_deref(), &owned))
        .map_err(|e| ExpressionError::Invalid(format!("cannot start the parser: {e}")))?
        .join()
        .unwrap_or_else(|_| Err(ExpressionError::Invalid("the parser failed".into())))
}

/// Compiles `source` for the standard environment within the size, nesting and cost
/// limits.
pub fn compile(source: &str) -> Result<cel::Program, ExpressionError> {
    bounded(None, source)
}

/// [`compile`] for `env`, an environment with extensions.
pub fn compile_in(env: &Arc<Env>, source: &str) -> Result<cel::Program, ExpressionError> {
    bounded(Some(env), source)
}

fn bounded(env: Option<&Arc<Env>>, source: &str) -> Result<cel::Program, ExpressionError> {
    if source.len() > cel_cost::MAX_BYTES {
        return Err(ExpressionError::TooLarge(source.len()));
    }
    let nesting = cel_cost::nesting(source);
    if nesting > cel_cost::MAX_NESTING {
        return Err(ExpressionError::TooDeep(nesting));
    }
    let program = parse(env, source)?;
    let depth = cel_cost::depth(&program.expression().expr);
    if depth > cel_cost::MAX_DEPTH {
        return Err(ExpressionError::TooDeep(depth));
    }
    let cost = cel_cost::estimate(&program.expression().expr);
    if cost > cel_cost::MAX_COST {
        return Err(ExpressionError::TooCostly(cost));
    }
    Ok(program)
}
