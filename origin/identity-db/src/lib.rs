//! The identity database: accounts, roles, sessions, refresh tokens and
//! revocations. It lives next to the catalog and, like it, replicates
//! to every PoP, so sign-in and token checks need no origin round trip;
//! the catalog stays public data.

use libsql::Connection;

pub use migrations::{Error, Migration, schema_version};

/// The identity migrations, oldest first; append only.
pub const MIGRATIONS: &[Migration] = &[
    Migration {
        version: 1,
        name: "identity",
        sql: include_str!("../migrations/0001_identity.sql"),
    },
    Migration {
        version: 2,
        name: "login_failures",
        sql: include_str!("../migrations/0002_login_failures.sql"),
    },
    Migration {
        version: 3,
        name: "single_statement_sessions",
        sql: include_str!("../migrations/0003_single_statement_sessions.sql"),
    },
    Migration {
        version: 4,
        name: "refresh_retry",
        sql: include_str!("../migrations/0004_refresh_retry.sql"),
    },
    Migration {
        version: 5,
        name: "signin_reservation",
        sql: include_str!("../migrations/0005_signin_reservation.sql"),
    },
    Migration {
        version: 6,
        name: "single_statement_signup",
        sql: include_str!("../migrations/0006_single_statement_signup.sql"),
    },
];

/// Opens (creating if needed) a local identity database file.
pub async fn open_local(path: &std::path::Path) -> Result<(libsql::Database, Connection), Error> {
    migrations::open_local(path).await
}

/// Applies every identity migration newer than the database's version.
pub async fn migrate(conn: &Connection) -> Result<Vec<i64>, Error> {
    migrations::apply(conn, MIGRATIONS).await
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn db() -> (libsql::Database, Connection) {
        let db = libsql::Builder::new_local(":memory:")
            .build()
            .await
            .unwrap();
        let conn = db.connect().unwrap();
        conn.execute("PRAGMA foreign_keys = ON", ()).await.unwrap();
        assert_eq!(migrate(&conn).await.unwrap(), vec![1, 2, 3, 4, 5, 6]);
        assert!(migrate(&conn).await.unwrap().is_empty(), "idempotent");
        (db, conn)
    }

    const HASH: &str = "$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHQ$aGFzaGhhc2g";

    async fn account(
        conn: &Connection,
        email: &str,
        kind: &str,
        vendor: Option<i64>,
    ) -> libsql::Result<u64> {
        conn.execute(
            "INSERT INTO accounts (email, password_hash, kind, vendor_id, created_at, updated_at)
             VALUES (?1, ?2, ?3, ?4, 1, 1)",
            libsql::params![email, HASH, kind, vendor],
        )
        .await
    }

    /// A sign-up as the auth flow makes it: the account and its first
    /// session in one statement; the new account's id, or `None` if the
    /// address was taken.
    async fn sign_up(conn: &Connection, email: &str, session: &str) -> Option<i64> {
        let mut rows = conn
            .query(
                "INSERT INTO accounts (email, password_hash, kind, created_at, updated_at,
                   first_session_id, first_session_expires_at, first_refresh_hash)
                 VALUES (?1, ?2, 'shopper', 10, 10, ?3, 1000, zeroblob(32))
                 ON CONFLICT (email) DO NOTHING RETURNING id",
                [email, HASH, session],
            )
            .await
            .unwrap();
        rows.next().await.unwrap().map(|r| r.get(0).unwrap())
    }

    #[tokio::test]
    async fn a_sign_up_is_one_statement_that_opens_the_first_session() {
        let (_db, conn) = db().await;
        let id = sign_up(&conn, "new@example.com", "sess-first-0123456789abcd")
            .await
            .unwrap();
        let one = async |sql: &str| -> i64 {
            let mut rows = conn.query(sql, ()).await.unwrap();
            rows.next().await.unwrap().unwrap().get(0).unwrap()
        };
        assert_eq!(
            one("SELECT account_id FROM sessions WHERE id = 'sess-first-0123456789abcd'").await,
            id
        );
        assert_eq!(
            one(
                "SELECT count(*) FROM refresh_tokens WHERE session_id = 'sess-first-0123456789abcd'"
            )
            .await,
            1,
            "the session's own trigger filed its first refresh token"
        );
        assert_eq!(
            one(
                "SELECT count(*) FROM accounts WHERE first_session_id IS NOT NULL
                 OR first_session_expires_at IS NOT NULL OR first_refresh_hash IS NOT NULL"
            )
            .await,
            0,
            "the account keeps nothing of the session it carried"
        );
        // The address taken: nothing at all is written.
        assert_eq!(
            sign_up(&conn, "new@example.com", "sess-second-0123456789abc").await,
            None
        );
        assert_eq!(one("SELECT count(*) FROM sessions").await, 1);
    }

    #[tokio::test]
    async fn the_schema_refuses_what_must_never_be_stored() {
        let (_db, conn) = db().await;
        account(&conn, "ada@example.com", "shopper", None)
            .await
            .unwrap();
        let refused = [
            (
                "duplicate email",
                account(&conn, "ada@example.com", "shopper", None).await,
            ),
            (
                "not normalised",
                account(&conn, "Bob@Example.com", "shopper", None).await,
            ),
            ("not an email", account(&conn, "bob", "shopper", None).await),
            (
                "vendor without a vendor row",
                account(&conn, "v@example.com", "vendor", None).await,
            ),
            (
                "shopper owning a vendor",
                account(&conn, "s@example.com", "shopper", Some(3)).await,
            ),
            (
                "unknown kind",
                account(&conn, "k@example.com", "admin", None).await,
            ),
        ];
        for (what, result) in refused {
            assert!(result.is_err(), "{what} was stored");
        }
        let plain = conn
            .execute(
                "INSERT INTO accounts (email, password_hash, kind, created_at, updated_at)
                 VALUES ('p@example.com', 'hunter2', 'shopper', 1, 1)",
                (),
            )
            .await;
        assert!(plain.is_err(), "a plaintext password was stored");
        conn.execute(
            "INSERT INTO sessions (id, account_id, created_at, expires_at)
             VALUES ('sess-0123456789abcdefghij', 1, 100, 100000)",
            (),
        )
        .await
        .unwrap();
        let token = conn
            .execute(
                "INSERT INTO refresh_tokens (token_hash, session_id, issued_at, expires_at)
                 VALUES ('the-token-itself', 'sess-0123456789abcdefghij', 1, 2)",
                (),
            )
            .await;
        assert!(token.is_err(), "a refresh token was stored in the clear");
    }

    #[tokio::test]
    async fn revoking_a_session_records_a_revocation_once() {
        let (_db, conn) = db().await;
        account(&conn, "ada@example.com", "shopper", None)
            .await
            .unwrap();
        conn.execute(
            "INSERT INTO sessions (id, account_id, created_at, expires_at)
             VALUES ('sess-0123456789abcdefghij', 1, 100, 100000)",
            (),
        )
        .await
        .unwrap();
        for at in [200, 300] {
            conn.execute(
                "UPDATE sessions SET revoked_at = coalesce(revoked_at, ?1),
                                     revoked_reason = coalesce(revoked_reason, 'logout')
                 WHERE id = 'sess-0123456789abcdefghij'",
                libsql::params![at],
            )
            .await
            .unwrap();
        }
        let mut rows = conn
            .query(
                "SELECT session_id, revoked_at, purge_after FROM revocations",
                (),
            )
            .await
            .unwrap();
        let row = rows.next().await.unwrap().unwrap();
        assert_eq!(row.get::<String>(0).unwrap(), "sess-0123456789abcdefghij");
        assert_eq!(row.get::<i64>(1).unwrap(), 200);
        assert_eq!(row.get::<i64>(2).unwrap(), 3800);
        assert!(rows.next().await.unwrap().is_none());
        // Deleting an account takes its sessions with it.
        conn.execute("DELETE FROM accounts WHERE id = 1", ())
            .await
            .unwrap();
        let mut rows = conn
            .query("SELECT count(*) FROM sessions", ())
            .await
            .unwrap();
        assert_eq!(
            rows.next().await.unwrap().unwrap().get::<i64>(0).unwrap(),
            0
        );
    }
}
