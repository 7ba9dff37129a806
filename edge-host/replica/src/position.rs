//! Where a replica is. A v2 (sync protocol) replica: the `libsql` client
//! keeps its applied generation and frame in a small JSON file next to
//! the database (`{db}-info`), rewritten atomically after every commit
//! it applies. A replica of sqld (gRPC replication) has one log with
//! frames numbered from its start, its "replication index", which sqld
//! also answers every Hrana statement with: generation 0, that frame.

use std::path::Path;

/// Ordered by generation, then frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, serde::Serialize)]
pub struct Position {
    pub generation: u32,
    pub frame: u32,
}

impl Position {
    /// Parses the metadata file's contents.
    pub fn parse(json: &[u8]) -> Option<Position> {
        let v: serde_json::Value = serde_json::from_slice(json).ok()?;
        Some(Position {
            generation: u32::try_from(v.get("generation")?.as_u64()?).ok()?,
            frame: u32::try_from(v.get("durable_frame_num")?.as_u64()?).ok()?,
        })
    }

    /// A position in sqld's log ([`crate::Replica`] reads the replica's
    /// from the client, the primary's from a Hrana answer). An index
    /// past `u32::MAX` (16 TiB of frames) reads as that.
    pub fn from_index(index: u64) -> Position {
        Position {
            generation: 0,
            frame: u32::try_from(index).unwrap_or(u32::MAX),
        }
    }

    /// The position of the replica at `db`, if it has one.
    pub fn read(db: &Path) -> Option<Position> {
        let mut info = db.as_os_str().to_owned();
        info.push("-info");
        Position::parse(&std::fs::read(info).ok()?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_clients_metadata() {
        let json = br#"{"hash":1,"version":0,"durable_frame_num":42,"generation":3}"#;
        assert_eq!(
            Position::parse(json),
            Some(Position {
                generation: 3,
                frame: 42
            })
        );
        assert_eq!(Position::parse(b"{}"), None);
        assert_eq!(Position::parse(b"not json"), None);
    }
}
