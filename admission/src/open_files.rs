//! The open-files limit: every connection is a file descriptor.

use rustix::process::{Resource, Rlimit, getrlimit, setrlimit};

/// Descriptors kept back from connections: database files, the WAL and
/// its index, upstream connections, the logs.
pub const OPEN_FILES_RESERVE: u64 = 256;

/// Raises this process's soft limit on open files to its hard limit (many
/// systems start processes at 1,024 with a far higher hard limit) and
/// returns the limit now in force. A server past it fails every `accept`
/// until a descriptor is closed, so connection bounds must stay below it.
pub fn raise_open_files_limit() -> u64 {
    let limit = getrlimit(Resource::Nofile);
    if limit.current != limit.maximum {
        let raised = Rlimit {
            current: limit.maximum,
            maximum: limit.maximum,
        };
        if setrlimit(Resource::Nofile, raised).is_ok() {
            return limit.maximum.unwrap_or(u64::MAX);
        }
    }
    limit.current.unwrap_or(u64::MAX)
}
