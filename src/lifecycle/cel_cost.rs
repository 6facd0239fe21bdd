//! What a CEL subject expression may cost, estimated before it ever runs. A RoleBinding's
//! author writes the expression and the operator evaluates it for every identity, on
//! every pass: an expression of a few hundred bytes that nests comprehensions can ask for
//! billions of steps. Like the apiserver's CEL cost estimator, this walks the parsed
//! expression and bounds its work from the shape alone, assuming the largest list a
//! comprehension could meet; an expression over [`MAX_COST`] is refused before use.

use cel::common::ast::{EntryExpr, Expr};

/// The most estimated steps one evaluation may take: a comprehension over a thousand
/// items with a small body, not a comprehension nested in another over unknown lists.
pub const MAX_COST: u64 = 1_000_000;

/// The longest expression compiled, in bytes (the CRD says the same; objects stored
/// before it did are checked here).
pub const MAX_BYTES: usize = 4096;

/// The deepest bracket nesting (`(`, `[`, `{`, counted in string literals too) parsed.
/// The cel parser recurses through every precedence level per bracket and overflows a
/// thread's stack long before its own limit of 96 (in a debug build, at a dozen levels
/// on 2 MiB): a stack overflow aborts the operator, so this is checked before parsing.
pub const MAX_NESTING: usize = 16;

/// The deepest parsed expression evaluated: evaluation recurses once per level, and a
/// chain such as `1+1+…+1` is as deep as it is long (a debug build needs about 40 KiB
/// a level; the operator's threads have 8 MiB).
pub const MAX_DEPTH: usize = 32;

/// How many items a comprehension over a list of unknown size is assumed to see:
/// attributes and labels have no count limit of their own.
const UNKNOWN_ITEMS: u64 = 1000;

/// `identity.emails` holds at most this many (the CRD's `maxItems`).
const EMAIL_ITEMS: u64 = 16;

/// A regular expression costs more than a comparison: it is compiled and run per call.
const REGEX_COST: u64 = 100;

/// The deepest bracket nesting in `source`, counting every bracket: a scanner that knew
/// string literals could be misled by an escape into not counting real ones.
pub fn nesting(source: &str) -> usize {
    let (mut depth, mut deepest) = (0usize, 0usize);
    for c in source.chars() {
        match c {
            '(' | '[' | '{' => {
                depth += 1;
                deepest = deepest.max(depth);
            }
            ')' | ']' | '}' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    deepest
}

/// The depth of the tree under `expr`, walked without recursion so that any depth can
/// be measured.
pub fn depth(expr: &Expr) -> usize {
    let mut deepest = 0;
    let mut pending = vec![(expr, 1usize)];
    while let Some((e, d)) = pending.pop() {
        deepest = deepest.max(d);
        pending.extend(children(e).into_iter().map(|c| (c, d + 1)));
    }
    deepest
}

/// The direct sub-expressions of `expr`.
pub fn children(expr: &Expr) -> Vec<&Expr> {
    match expr {
        Expr::Unspecified | Expr::Ident(_) | Expr::Literal(_) => Vec::new(),
        Expr::Select(s) => vec![&s.operand.expr],
        Expr::Call(call) => call
            .target
            .iter()
            .map(|t| &t.expr)
            .chain(call.args.iter().map(|a| &a.expr))
            .collect(),
        Expr::List(list) => list.elements.iter().map(|e| &e.expr).collect(),
        Expr::Map(map) => entry_children(&map.entries),
        Expr::Struct(st) => entry_children(&st.entries),
        Expr::Comprehension(c) => vec![
            &c.iter_range.expr,
            &c.accu_init.expr,
            &c.loop_cond.expr,
            &c.loop_step.expr,
            &c.result.expr,
        ],
    }
}

fn entry_children(entries: &[cel::common::ast::IdedEntryExpr]) -> Vec<&Expr> {
    entries
        .iter()
        .flat_map(|e| match &e.expr {
            EntryExpr::StructField(f) => vec![&f.value.expr],
            EntryExpr::MapEntry(m) => vec![&m.key.expr, &m.value.expr],
        })
        .collect()
}

/// The estimated worst-case steps of `expr`, saturating at `u64::MAX`. Recursive: call
/// it only on a tree no deeper than [`MAX_DEPTH`].
pub fn estimate(expr: &Expr) -> u64 {
    match expr {
        Expr::Unspecified | Expr::Ident(_) | Expr::Literal(_) => 1,
        Expr::Select(s) => estimate(&s.operand.expr).saturating_add(1),
        Expr::Call(call) => {
            let own = if call.func_name == "matches" {
                REGEX_COST
            } else {
                1
            };
            let target = call.target.as_ref().map_or(0, |t| estimate(&t.expr));
            call.args.iter().fold(own.saturating_add(target), |sum, a| {
                sum.saturating_add(estimate(&a.expr))
            })
        }
        Expr::List(list) => list
            .elements
            .iter()
            .fold(1, |sum, e| sum.saturating_add(estimate(&e.expr))),
        Expr::Map(map) => entries(&map.entries),
        Expr::Struct(st) => entries(&st.entries),
        Expr::Comprehension(c) => {
            let per_item = estimate(&c.loop_cond.expr).saturating_add(estimate(&c.loop_step.expr));
            estimate(&c.iter_range.expr)
                .saturating_add(estimate(&c.accu_init.expr))
                .saturating_add(items(&c.iter_range.expr).saturating_mul(per_item))
                .saturating_add(estimate(&c.result.expr))
        }
    }
}

fn entries(entries: &[cel::common::ast::IdedEntryExpr]) -> u64 {
    entries.iter().fold(1, |sum, e| {
        let cost = match &e.expr {
            EntryExpr::StructField(f) => estimate(&f.value.expr),
            EntryExpr::MapEntry(m) => estimate(&m.key.expr).saturating_add(estimate(&m.value.expr)),
        };
        sum.saturating_add(cost)
    })
}

/// How many items a comprehension over `range` may see.
fn items(range: &Expr) -> u64 {
    match range {
        Expr::List(list) => list.elements.len() as u64,
        Expr::Map(map) => map.entries.len() as u64,
        Expr::Select(s)
            if s.field == "emails"
                && matches!(&s.operand.expr, Expr::Ident(name) if name == "identity") =>
        {
            EMAIL_ITEMS
        }
        _ => UNKNOWN_ITEMS,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cost(source: &str) -> u64 {
        estimate(&cel::Program::compile(source).unwrap().expression().expr)
    }

    #[test]
    fn ordinary_expressions_are_cheap() {
        for source in [
            r#"identity.attributes.department == "engineering" && identity.kind == "Person""#,
            r#"identity.emails.exists(e, e.endsWith("@example.com"))"#,
            r#"identity.labels.exists(k, k.startsWith("team-"))"#,
            r#"identity.attributes.title.matches("^(Staff|Principal) ")"#,
        ] {
            assert!(cost(source) < MAX_COST, "{source}: {}", cost(source));
        }
    }

    #[test]
    fn nested_comprehensions_over_unknown_lists_are_too_costly() {
        let nested = "identity.labels.all(a, identity.labels.all(b, a != b || true))";
        assert!(cost(nested) > MAX_COST, "{}", cost(nested));
        // Ten levels over a literal list of ten: ten billion steps from 200 bytes.
        let mut deep = String::from("true");
        for i in 0..10 {
            deep = format!("[0,1,2,3,4,5,6,7,8,9].all(x{i}, {deep})");
        }
        assert!(cost(&deep) > MAX_COST, "{}", cost(&deep));
    }

    #[test]
    fn nesting_and_depth_are_measured_without_recursing() {
        assert_eq!(nesting("f(a[1], {'k': (2)})"), 3);
        assert_eq!(nesting(")))((("), 3);
        let chain = format!("1{}", "+1".repeat(300));
        let program = cel::Program::compile(&chain).unwrap();
        assert!(depth(&program.expression().expr) > 300);
        assert_eq!(
            depth(&cel::Program::compile("a.b == 1").unwrap().expression().expr),
            3
        );
    }

    #[test]
    fn a_known_small_list_is_priced_by_its_size() {
        let pairs = "identity.emails.all(a, identity.emails.exists(b, a == b))";
        assert!(cost(pairs) < MAX_COST, "{}", cost(pairs));
    }
}
