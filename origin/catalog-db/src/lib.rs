//! The catalog database: versioned migrations and a deterministic seed.
//!
//! The catalog is the public data every PoP replicates (products, vendors,
//! categories, the full-text index and the `changes` log that cache
//! invalidation rides on). Migrations are plain SQL files applied in version
//! order and recorded in `schema_migrations`; the seed generator is pure
//! ([`generate`]) and only [`seed`] touches a database.

mod generate;

pub use generate::{Category, Generated, Product, SeedConfig, Vendor, generate};

use libsql::{Connection, params};

pub use migrations::{Error, Migration, schema_version};

/// The catalog migrations, oldest first. Append only: a released migration
/// never changes, a new version is added instead.
pub const MIGRATIONS: &[Migration] = &[
    Migration {
        version: 1,
        name: "catalog",
        sql: include_str!("../migrations/0001_catalog.sql"),
    },
    Migration {
        version: 2,
        name: "stock_holds",
        sql: include_str!("../migrations/0002_stock_holds.sql"),
    },
    Migration {
        version: 3,
        name: "product_status",
        sql: include_str!("../migrations/0003_product_status.sql"),
    },
    Migration {
        version: 4,
        name: "vendor_changes",
        sql: include_str!("../migrations/0004_vendor_changes.sql"),
    },
];

/// Opens (creating if needed) a local catalog database file.
pub async fn open_local(path: &std::path::Path) -> Result<(libsql::Database, Connection), Error> {
    migrations::open_local(path).await
}

/// Applies every catalog migration newer than the database's version,
/// each in its own transaction. Returns the versions applied.
pub async fn migrate(conn: &Connection) -> Result<Vec<i64>, Error> {
    migrations::apply(conn, MIGRATIONS).await
}

/// Number of products in the catalog (0 when it is empty).
pub async fn product_count(conn: &Connection) -> Result<i64, Error> {
    let mut rows = conn.query("SELECT count(*) FROM products", ()).await?;
    Ok(match rows.next().await? {
        Some(row) => row.get::<i64>(0)?,
        None => 0,
    })
}

/// Writes a generated catalog in one transaction. The database must be
/// migrated and empty of products.
pub async fn seed(conn: &Connection, config: &SeedConfig) -> Result<Generated, Error> {
    let data = generate(config);
    let tx = conn.transaction().await?;
    for c in &data.categories {
        tx.execute(
            "INSERT INTO categories (id, slug, name, parent_id) VALUES (?1, ?2, ?3, ?4)",
            params![c.id, c.slug.clone(), c.name.clone(), c.parent_id],
        )
        .await?;
    }
    for v in &data.vendors {
        tx.execute(
            "INSERT INTO vendors (id, slug, name, description, country, created_at, updated_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?6)",
            params![
                v.id,
                v.slug.clone(),
                v.name.clone(),
                v.description.clone(),
                v.country.clone(),
                v.created_at
            ],
        )
        .await?;
    }
    for p in &data.products {
        tx.execute(
            "INSERT INTO products (id, slug, vendor_id, title, description, price_minor, currency,
                                   stock, media, created_at, updated_at, version)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?10, 1)",
            params![
                p.id,
                p.slug.clone(),
                p.vendor_id,
                p.title.clone(),
                p.description.clone(),
                p.price_minor,
                p.currency.clone(),
                p.stock,
                serde_json::to_string(&p.media).expect("JSON values serialise"),
                p.created_at
            ],
        )
        .await?;
        for c in &p.category_ids {
            tx.execute(
                "INSERT INTO product_categories (category_id, product_id) VALUES (?1, ?2)",
                params![*c, p.id],
            )
            .await?;
        }
    }
    tx.commit().await?;
    Ok(data)
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn fresh() -> (tempdir::Dir, libsql::Database, Connection) {
        let dir = tempdir::Dir::new();
        let (db, conn) = open_local(&dir.path().join("catalog.db")).await.unwrap();
        (dir, db, conn)
    }

    /// A throwaway directory without a dev-dependency.
    mod tempdir {
        pub struct Dir(std::path::PathBuf);
        impl Dir {
            pub fn new() -> Self {
                use std::sync::atomic::{AtomicU32, Ordering};
                static N: AtomicU32 = AtomicU32::new(0);
                let p = std::env::temp_dir().join(format!(
                    "catalog-db-test-{}-{}",
                    std::process::id(),
                    N.fetch_add(1, Ordering::Relaxed)
                ));
                std::fs::create_dir_all(&p).unwrap();
                Dir(p)
            }
            pub fn path(&self) -> &std::path::Path {
                &self.0
            }
        }
        impl Drop for Dir {
            fn drop(&mut self) {
                let _ = std::fs::remove_dir_all(&self.0);
            }
        }
    }

    #[tokio::test]
    async fn migrate_is_idempotent_and_versioned() {
        let (_d, _db, conn) = fresh().await;
        assert_eq!(migrate(&conn).await.unwrap(), vec![1, 2, 3, 4]);
        assert_eq!(migrate(&conn).await.unwrap(), Vec::<i64>::new());
        assert_eq!(schema_version(&conn).await.unwrap(), 4);
    }

    #[tokio::test]
    async fn refuses_a_newer_schema() {
        let (_d, _db, conn) = fresh().await;
        migrate(&conn).await.unwrap();
        conn.execute(
            "INSERT INTO schema_migrations (version, name) VALUES (99, 'x')",
            (),
        )
        .await
        .unwrap();
        let err = migrate(&conn).await.unwrap_err();
        assert!(
            matches!(err, Error::SchemaTooNew { found: 99, .. }),
            "{err}"
        );
    }

    #[tokio::test]
    async fn seed_fills_fts_and_change_log() {
        let (_d, _db, conn) = fresh().await;
        migrate(&conn).await.unwrap();
        let cfg = SeedConfig {
            products: 300,
            vendors: 20,
            seed: 7,
            ..SeedConfig::default()
        };
        let data = seed(&conn, &cfg).await.unwrap();
        assert_eq!(product_count(&conn).await.unwrap(), 300);
        // Every product is findable by a word of its title.
        let word = data.products[0]
            .title
            .split(' ')
            .next_back()
            .unwrap()
            .to_lowercase();
        let mut rows = conn
            .query(
                "SELECT count(*) FROM products_fts WHERE products_fts MATCH ?1",
                params![word],
            )
            .await
            .unwrap();
        let hits: i64 = rows.next().await.unwrap().unwrap().get(0).unwrap();
        assert!(hits >= 1);
        // An update appends the product's tags to the change log.
        let tags = logged(
            &conn,
            "UPDATE products SET stock = stock + 1, version = version + 1 WHERE id = 5",
        )
        .await;
        assert!(tags.contains(&"product:5".to_string()), "{tags:?}");
        assert!(tags.contains(&"catalog".to_string()), "{tags:?}");
    }

    /// The tags one statement appends to the change log.
    async fn logged(conn: &Connection, sql: &str) -> Vec<String> {
        let mut rows = conn
            .query("SELECT coalesce(max(seq), 0) FROM changes", ())
            .await
            .unwrap();
        let before: i64 = rows.next().await.unwrap().unwrap().get(0).unwrap();
        drop(rows);
        conn.execute(sql, ()).await.unwrap();
        let mut rows = conn
            .query(
                "SELECT tag FROM changes WHERE seq > ?1 ORDER BY seq",
                params![before],
            )
            .await
            .unwrap();
        let mut tags = Vec::new();
        while let Some(r) = rows.next().await.unwrap() {
            tags.push(r.get::<String>(0).unwrap());
        }
        tags
    }

    #[tokio::test]
    async fn a_sale_purges_the_product_and_listings_not_every_page_of_its_vendor() {
        let (_d, _db, conn) = fresh().await;
        migrate(&conn).await.unwrap();
        let cfg = SeedConfig {
            products: 20,
            vendors: 3,
            seed: 7,
            ..SeedConfig::default()
        };
        seed(&conn, &cfg).await.unwrap();
        let mut rows = conn
            .query("SELECT vendor_id FROM products WHERE id = 5", ())
            .await
            .unwrap();
        let vendor: i64 = rows.next().await.unwrap().unwrap().get(0).unwrap();
        drop(rows);
        let other = vendor % 3 + 1;
        // Stock and price change what the product's page and listings
        // show; the vendor's own entry (its published count) stays.
        assert_eq!(
            logged(&conn, "UPDATE products SET stock = stock - 1 WHERE id = 5").await,
            ["product:5", "catalog"]
        );
        assert_eq!(
            logged(&conn, "UPDATE products SET price_minor = 999 WHERE id = 5").await,
            ["product:5", "catalog"]
        );
        // Unpublishing changes the vendor's count.
        assert_eq!(
            logged(&conn, "UPDATE products SET status = 'draft' WHERE id = 5").await,
            [
                "product:5".to_string(),
                "catalog".into(),
                format!("vendor:{vendor}")
            ]
        );
        // A move changes both vendors' counts.
        assert_eq!(
            logged(
                &conn,
                &format!("UPDATE products SET vendor_id = {other} WHERE id = 5")
            )
            .await,
            [
                "product:5".to_string(),
                "catalog".into(),
                format!("vendor:{other}"),
                format!("vendor:{vendor}")
            ]
        );
    }
}
