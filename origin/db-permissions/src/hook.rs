//! The authorizer hook that puts a [`Grant`] in front of a `libsql`
//! connection (feature `libsql`).

use crate::{Action, Context, Decision, Grant};

/// SQLite's authorizer (the `libsql` crate's hook) for `grant` on
/// database `db`: each action goes to [`Grant::decide`]; a refusal fails
/// the statement with `SQLITE_AUTH` ("not authorized") while it is
/// prepared, before anything runs. `who` names the token in the log.
pub fn authorizer(grant: std::sync::Arc<Grant>, db: &str, who: &'static str) -> libsql::AuthHook {
    use libsql::{AuthAction as A, Authorization};
    let db = db.to_string();
    std::sync::Arc::new(move |cx: &libsql::AuthContext| {
        let action = match cx.action {
            A::Read {
                table_name,
                column_name,
            } => Action::Read {
                table: table_name,
                column: column_name,
            },
            A::Insert { table_name } => Action::Insert { table: table_name },
            A::Update {
                table_name,
                column_name,
            } => Action::Update {
                table: table_name,
                column: column_name,
            },
            A::Delete { table_name } => Action::Delete { table: table_name },
            A::Select | A::Transaction { .. } | A::Savepoint { .. } | A::Recursive => {
                Action::Statement
            }
            A::Function { function_name } => Action::Function {
                name: function_name,
            },
            A::Pragma {
                pragma_name,
                pragma_value,
            } => Action::Pragma {
                name: pragma_name,
                argument: pragma_value,
            },
            _ => Action::Other,
        };
        let context = Context {
            action,
            schema: cx.database_name,
            by_schema_object: cx.accessor.is_some(),
        };
        match grant.decide(&db, &context) {
            Decision::Allow => Authorization::Allow,
            Decision::Deny => {
                tracing::warn!(token = who, db = %db, action = ?cx.action, "refused a statement the token's grant does not allow");
                Authorization::Deny
            }
        }
    })
}
