//! Every SQL statement written as a literal in the product crates is prepared (parsed and
//! planned by PostgreSQL, nothing run) against a migrated platform and a migrated municipality's
//! schema, so a renamed column or table fails CI instead of production.
//!
//! Why a test rather than `query!` with offline data: tenant statements run under a search path
//! chosen at run time (one schema per municipality), which the macros cannot see without a
//! template schema wired into every build; this test reaches the same guarantee for the 200-odd
//! statements with no change to them and no build-time database. Statements built at run time
//! (`AssertSqlSafe(format!(…))`) are not literals and are counted apart.

use std::path::{Path, PathBuf};

/// A statement found in the source.
struct Statement {
    at: String,
    sql: String,
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The string literal starting at `s` (`"…"`, `r"…"`, `r#"…"#`), unescaped, if there is one.
fn literal(s: &str) -> Option<String> {
    if let Some(rest) = s.strip_prefix('r') {
        let hashes = rest.chars().take_while(|c| *c == '#').count();
        let body = rest[hashes..].strip_prefix('"')?;
        let close = format!("\"{}", "#".repeat(hashes));
        return body.find(&close).map(|end| body[..end].to_owned());
    }
    let body = s.strip_prefix('"')?;
    let mut out = String::new();
    let mut chars = body.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '"' => return Some(out),
            '\\' => match chars.next()? {
                'n' => out.push('\n'),
                't' => out.push('\t'),
                'r' => out.push('\r'),
                '0' => out.push('\0'),
                '\n' => {
                    while chars.peek().is_some_and(|c| c.is_whitespace()) {
                        chars.next();
                    }
                }
                other => out.push(other),
            },
            c => out.push(c),
        }
    }
    None
}

/// Every `sqlx::query…(` whose first argument is a string literal, and how many are not.
fn statements(root: &Path) -> (Vec<Statement>, usize) {
    let mut files = Vec::new();
    for crate_dir in ["platform", "jobs", "graphql", "tenant-admin"] {
        rust_files(&root.join(crate_dir), &mut files);
    }
    let mut found = Vec::new();
    let mut dynamic = 0;
    for file in files {
        let text = std::fs::read_to_string(&file).unwrap();
        for (at, _) in text.match_indices("sqlx::query") {
            let rest = &text[at..];
            // `sqlx::query_as::<_, (i64,)>(`: the call's parenthesis after any turbofish.
            let name_end = rest
                .find(|c: char| !(c.is_alphanumeric() || c == '_' || c == ':'))
                .unwrap_or(rest.len());
            let mut tail = &rest[name_end..];
            if tail.starts_with('<') {
                let mut depth = 0;
                let close = tail
                    .char_indices()
                    .find(|(_, c)| {
                        match c {
                            '<' => depth += 1,
                            '>' => depth -= 1,
                            _ => {}
                        }
                        depth == 0
                    })
                    .map_or(0, |(i, _)| i + 1);
                tail = &tail[close..];
            }
            let Some(args) = tail.strip_prefix('(') else {
                continue; // `use sqlx::query` and the like
            };
            let line = text[..at].lines().count() + 1;
            match literal(args.trim_start()) {
                Some(sql) => found.push(Statement {
                    at: format!(
                        "{}:{line}",
                        file.strip_prefix(root).unwrap_or(&file).display()
                    ),
                    sql,
                }),
                None => dynamic += 1,
            }
        }
    }
    (found, dynamic)
}

/// A statement read from the source, as sqlx takes it (it is exactly the literal the code
/// sends).
fn sql_str(sql: &str) -> sqlx::SqlStr {
    sqlx::SqlSafeStr::into_sql_str(sqlx::AssertSqlSafe(sql.to_owned()))
}

#[tokio::test]
async fn every_sql_literal_prepares_against_the_migrated_schemas() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let (found, dynamic) = statements(&root);
    assert!(
        found.len() >= 200,
        "only {} statements found: is the scanner broken?",
        found.len()
    );
    let (app, alpha, _beta) = desk_tests::two_municipalities().await;
    let pool = app.db.platform.pool_for_infrastructure().clone();
    let mut failures = Vec::new();
    // A parameter whose type only the bound value tells (`case when $6 then $7 end`) is no
    // error of the statement's: sqlx sends the types when it runs.
    let code = |e: &sqlx::Error| {
        e.as_database_error()
            .and_then(|d| d.code())
            .map(|c| c.into_owned())
    };
    let fine = |r: &Result<(), sqlx::Error>| match r {
        Ok(()) => true,
        Err(e) => code(e).as_deref() == Some("42P18"),
    };
    for s in &found {
        // In the municipality's schema (its role and search path) first.
        let mut tx = app.tx(&alpha).await;
        let tenant = sqlx::Executor::prepare(&mut *tx, sql_str(&s.sql))
            .await
            .map(|_| ());
        drop(tx);
        if fine(&tenant) {
            continue;
        }
        let tenant_error = tenant.err().map(|e| (code(&e), e.to_string()));
        // Not there (42P01), or there but not the municipality's to touch (42501: the
        // platform schema): the platform's statement.
        let missing_table = tenant_error
            .as_ref()
            .is_some_and(|(c, _)| matches!(c.as_deref(), Some("42P01" | "42501")));
        let platform = if missing_table {
            let mut conn = pool.acquire().await.unwrap();
            sqlx::Executor::prepare(&mut *conn, sql_str(&s.sql))
                .await
                .map(|_| ())
        } else {
            Ok(())
        };
        if missing_table && fine(&platform) {
            continue;
        }
        let why = match platform {
            Err(e) => format!("platform: {e}"),
            Ok(()) => format!(
                "tenant: {}",
                tenant_error.map(|(_, m)| m).unwrap_or_default()
            ),
        };
        failures.push(format!("{}: {why}\n    {}", s.at, s.sql.replace('\n', " ")));
    }
    println!(
        "SQL statements prepared: {} literals ({} failed), {dynamic} built at run time not checked",
        found.len(),
        failures.len()
    );
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    app.db.finish().await;
}
