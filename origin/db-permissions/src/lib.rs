//! What each origin token may do to each database, statement by statement.
//!
//! The origin's Hrana server asks [`Grant::decide`] about every action
//! SQLite's authorizer reports while it prepares a statement (every
//! statement of every stream, and every statement a trigger runs), so a
//! token's reach is the permission file's, whatever SQL it sends. A PoP
//! asks the same of every write its components send before it goes to
//! the primary, which matters where the primary cannot tell tables apart
//! (sqld grants a whole database). The rules live in a reviewed file
//! (`cdn-config/db-permissions.toml`); this crate parses it and decides,
//! with no I/O; the `libsql` feature adds the authorizer hook.
//!
//! A grant names, per database, the tables a token may read, insert into
//! and delete from, and the columns it may update. Everything else is
//! refused: `ATTACH`/`DETACH`, every schema change, `PRAGMA`s beyond a
//! read-only allow-list, `load_extension`. A write made by a trigger is
//! the schema's own and allowed, which is how `changes` and the
//! replication bookkeeping stay writable only through triggers: no token
//! but `all` may create a trigger.

use serde::Deserialize;
use std::collections::{BTreeMap, BTreeSet};

/// One action SQLite asks about, in its own words (table and column
/// names as the statement resolved them).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action<'a> {
    Read {
        table: &'a str,
        column: &'a str,
    },
    Insert {
        table: &'a str,
    },
    Update {
        table: &'a str,
        column: &'a str,
    },
    Delete {
        table: &'a str,
    },
    /// `SELECT` itself, `BEGIN`/`COMMIT`/`ROLLBACK`, savepoints and
    /// recursive CTEs: harmless in themselves.
    Statement,
    Function {
        name: &'a str,
    },
    /// `PRAGMA name` or `PRAGMA name = argument` / `name(argument)`.
    Pragma {
        name: &'a str,
        argument: Option<&'a str>,
    },
    /// `ATTACH`, `DETACH`, DDL, `ANALYZE`, `REINDEX`, virtual tables and
    /// anything SQLite adds later: never for a restricted token.
    Other,
}

/// Where an action happens.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Context<'a> {
    pub action: Action<'a>,
    /// The schema (`main`, `temp`, an attached name), when SQLite says.
    pub schema: Option<&'a str>,
    /// Set when a trigger or view of the schema makes the access.
    pub by_schema_object: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    Allow,
    Deny,
}

/// PRAGMAs that only report and that clients such as `libsql` may send.
/// Any of them with an argument is allowed only where the argument names
/// what to report on (`table_info(products)`), never a value to set.
const REPORTING_PRAGMAS: &[&str] = &[
    "table_info",
    "table_xinfo",
    "table_list",
    "index_list",
    "index_info",
    "index_xinfo",
    "foreign_key_list",
];
const READ_ONLY_PRAGMAS: &[&str] = &[
    "schema_version",
    "user_version",
    "data_version",
    "application_id",
    "page_size",
    "page_count",
    "freelist_count",
    "encoding",
    "foreign_keys",
];
/// Functions no restricted token may call.
const FORBIDDEN_FUNCTIONS: &[&str] = &["load_extension", "fts3_tokenizer", "readfile", "writefile"];

/// Names in a grant: `"*"` is every table (or column).
#[derive(Debug, Clone, Default, Deserialize, PartialEq, Eq)]
#[serde(transparent)]
pub struct Names(BTreeSet<String>);

impl Names {
    fn has(&self, name: &str) -> bool {
        self.0.contains("*") || self.0.iter().any(|n| n.eq_ignore_ascii_case(name))
    }
}

/// What a token may do to one database.
#[derive(Debug, Clone, Default, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct DatabaseGrant {
    #[serde(default)]
    pub read: Names,
    #[serde(default)]
    pub insert: Names,
    /// Table -> the columns that may be set.
    #[serde(default)]
    pub update: BTreeMap<String, Names>,
    #[serde(default)]
    pub delete: Names,
}

/// What one token may do.
#[derive(Debug, Clone, Default, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Grant {
    /// Everything on every database: the operator's token.
    #[serde(default)]
    pub all: bool,
    /// Database name -> its grant. A database not named is out of reach.
    #[serde(default)]
    pub databases: BTreeMap<String, DatabaseGrant>,
}

/// The whole file: token name -> grant.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Permissions {
    pub tokens: BTreeMap<String, Grant>,
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("the permission file is not valid: {0}")]
    Parse(#[from] toml::de::Error),
    #[error("the permission file grants nothing to token {0:?}")]
    Missing(String),
}

impl Permissions {
    pub fn parse(text: &str) -> Result<Permissions, Error> {
        Ok(toml::from_str(text)?)
    }

    /// The grant of `token`, which the file must name.
    pub fn grant(&self, token: &str) -> Result<&Grant, Error> {
        self.tokens
            .get(token)
            .ok_or_else(|| Error::Missing(token.to_string()))
    }
}

impl Grant {
    /// Whether the token may reach `database` at all.
    pub fn reaches(&self, database: &str) -> bool {
        self.all || self.databases.contains_key(database)
    }

    /// The decision on one action in `database`.
    pub fn decide(&self, database: &str, cx: &Context<'_>) -> Decision {
        if self.all {
            return Decision::Allow;
        }
        let Some(db) = self.databases.get(database) else {
            return Decision::Deny;
        };
        // Only the database itself: `temp` objects could shadow its tables.
        let main = cx.schema.is_none_or(|s| s == "main");
        let allowed = match cx.action {
            Action::Statement => true,
            Action::Read { table, .. } => main && (cx.by_schema_object || db.read.has(table)),
            Action::Insert { table } => main && (cx.by_schema_object || db.insert.has(table)),
            Action::Delete { table } => main && (cx.by_schema_object || db.delete.has(table)),
            Action::Update { table, column } => {
                main && (cx.by_schema_object
                    || db.update.iter().any(|(t, cols)| {
                        (t == "*" || t.eq_ignore_ascii_case(table)) && cols.has(column)
                    }))
            }
            Action::Function { name } => !FORBIDDEN_FUNCTIONS
                .iter()
                .any(|f| f.eq_ignore_ascii_case(name)),
            Action::Pragma { name, argument } => {
                let is = |list: &[&str]| list.iter().any(|p| p.eq_ignore_ascii_case(name));
                is(REPORTING_PRAGMAS) || (argument.is_none() && is(READ_ONLY_PRAGMAS))
            }
            Action::Other => false,
        };
        if allowed {
            Decision::Allow
        } else {
            Decision::Deny
        }
    }
}

#[cfg(feature = "libsql")]
mod hook;
#[cfg(feature = "libsql")]
pub use hook::authorizer;

#[cfg(test)]
mod tests {
    use super::*;

    const FILE: &str = r#"
        [tokens.admin]
        all = true

        [tokens.edge.databases.catalog]
        read = ["*"]
        insert = ["vendors"]
        delete = ["vendors"]

        [tokens.edge.databases.identity]
        read = ["*"]
        insert = ["sessions"]
        update = { sessions = ["revoked_at", "revoked_reason"] }
    "#;

    fn cx(action: Action<'_>) -> Context<'_> {
        Context {
            action,
            schema: Some("main"),
            by_schema_object: false,
        }
    }

    fn edge() -> Grant {
        Permissions::parse(FILE)
            .unwrap()
            .grant("edge")
            .unwrap()
            .clone()
    }

    #[test]
    fn a_grant_allows_what_it_names_and_nothing_else() {
        let g = edge();
        use Action::*;
        use Decision::*;
        for (db, action, want) in [
            (
                "catalog",
                Read {
                    table: "products",
                    column: "price_minor",
                },
                Allow,
            ),
            ("catalog", Statement, Allow),
            ("catalog", Insert { table: "vendors" }, Allow),
            ("catalog", Insert { table: "products" }, Deny),
            (
                "catalog",
                Update {
                    table: "products",
                    column: "price_minor",
                },
                Deny,
            ),
            ("catalog", Delete { table: "products" }, Deny),
            ("identity", Insert { table: "sessions" }, Allow),
            (
                "identity",
                Insert {
                    table: "account_roles",
                },
                Deny,
            ),
            (
                "identity",
                Update {
                    table: "sessions",
                    column: "revoked_at",
                },
                Allow,
            ),
            (
                "identity",
                Update {
                    table: "sessions",
                    column: "account_id",
                },
                Deny,
            ),
            ("identity", Delete { table: "sessions" }, Deny),
            (
                "orders",
                Read {
                    table: "orders",
                    column: "shipping",
                },
                Deny,
            ),
            ("catalog", Other, Deny),
            ("catalog", Function { name: "lower" }, Allow),
            (
                "catalog",
                Function {
                    name: "LOAD_EXTENSION",
                },
                Deny,
            ),
            (
                "catalog",
                Pragma {
                    name: "table_info",
                    argument: Some("products"),
                },
                Allow,
            ),
            (
                "catalog",
                Pragma {
                    name: "user_version",
                    argument: None,
                },
                Allow,
            ),
            (
                "catalog",
                Pragma {
                    name: "user_version",
                    argument: Some("7"),
                },
                Deny,
            ),
            (
                "catalog",
                Pragma {
                    name: "wal_checkpoint",
                    argument: None,
                },
                Deny,
            ),
            (
                "catalog",
                Pragma {
                    name: "writable_schema",
                    argument: Some("1"),
                },
                Deny,
            ),
        ] {
            assert_eq!(g.decide(db, &cx(action)), want, "{db}: {action:?}");
        }
        assert!(g.reaches("catalog") && !g.reaches("orders"));
    }

    #[test]
    fn triggers_write_for_the_schema_and_temp_objects_are_refused() {
        let g = edge();
        let by_trigger = Context {
            action: Action::Insert { table: "changes" },
            schema: Some("main"),
            by_schema_object: true,
        };
        assert_eq!(g.decide("catalog", &by_trigger), Decision::Allow);
        assert_eq!(
            g.decide("catalog", &cx(Action::Insert { table: "changes" })),
            Decision::Deny
        );
        let temp = Context {
            schema: Some("temp"),
            ..cx(Action::Read {
                table: "products",
                column: "id",
            })
        };
        assert_eq!(g.decide("catalog", &temp), Decision::Deny);
    }

    #[test]
    fn the_operator_token_may_do_anything_and_unknown_tokens_nothing() {
        let p = Permissions::parse(FILE).unwrap();
        let admin = p.grant("admin").unwrap();
        assert_eq!(admin.decide("orders", &cx(Action::Other)), Decision::Allow);
        assert!(admin.reaches("orders"));
        assert!(matches!(p.grant("nobody"), Err(Error::Missing(_))));
        assert!(matches!(
            Permissions::parse("[tokens.edge]\nreed = true"),
            Err(Error::Parse(_))
        ));
    }

    #[test]
    fn the_shipped_file_parses_and_keeps_prices_roles_and_orders_out_of_the_edges_reach() {
        let p =
            Permissions::parse(include_str!("../../../cdn-config/db-permissions.toml")).unwrap();
        let edge = p.grant("edge").unwrap();
        let origin = p.grant("origin").unwrap();
        assert!(origin.all);
        use Action::*;
        for (db, action) in [
            (
                "catalog",
                Update {
                    table: "products",
                    column: "price_minor",
                },
            ),
            (
                "catalog",
                Update {
                    table: "products",
                    column: "stock",
                },
            ),
            ("catalog", Insert { table: "products" }),
            ("catalog", Insert { table: "changes" }),
            (
                "identity",
                Insert {
                    table: "account_roles",
                },
            ),
            (
                "identity",
                Update {
                    table: "account_roles",
                    column: "role",
                },
            ),
            (
                "identity",
                Update {
                    table: "accounts",
                    column: "kind",
                },
            ),
            (
                "identity",
                Update {
                    table: "accounts",
                    column: "vendor_id",
                },
            ),
            (
                "identity",
                Insert {
                    table: "revocations",
                },
            ),
            (
                "orders",
                Read {
                    table: "orders",
                    column: "id",
                },
            ),
        ] {
            assert_eq!(
                edge.decide(db, &cx(action)),
                Decision::Deny,
                "{db}: {action:?}"
            );
        }
        assert!(!edge.reaches("orders"));
    }
}
