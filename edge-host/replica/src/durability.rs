//! A replica's commits do not wait for the disk.
//!
//! A replica holds nothing the primary does not: a commit it applies is
//! worth an fsync only if losing it would cost more than pulling it
//! again. With SQLite's default (`synchronous = FULL`) every applied
//! commit waits for the disk, which under a write-heavy primary is the
//! PoP's largest single cost and blocks a runtime worker each time. So
//! every connection to a file in a replica's directory (the `libsql`
//! crate opens its own, hence a SQLite auto-extension) runs with
//! `synchronous = NORMAL`: a commit is in the WAL, which survives the
//! process crashing, and reaches the disk at the next checkpoint.
//!
//! A *machine* crash can lose the last commits while `libsql`'s metadata
//! (written with a sync of its own) still counts them; pulling on top of
//! that would build a replica that differs from the primary. So the
//! directory records the boot it applies frames in, and a replica found
//! after a reboot it did not see is replaced by a fresh bootstrap (the
//! old copy serves reads until the new one is ready).

use std::ffi::{CStr, c_char, c_int};
use std::path::{Path, PathBuf};
use std::sync::{Once, RwLock};

/// Directories whose files are replicas.
static RELAXED: RwLock<Vec<PathBuf>> = RwLock::new(Vec::new());
static INSTALL: Once = Once::new();

/// Makes every SQLite connection opened from now on to a file under
/// `dir` commit without waiting for the disk.
pub(crate) async fn relax(dir: &Path) {
    // `libsql` configures SQLite once, before SQLite initialises, and
    // registering an auto-extension initialises it: open a database
    // first so `libsql`'s configuration comes first.
    if let Err(e) = libsql::Builder::new_local(":memory:").build().await {
        tracing::warn!(error = %e, "replica commits will wait for the disk: SQLite did not start");
        return;
    }
    let dir = dir.canonicalize().unwrap_or_else(|_| dir.to_path_buf());
    let mut dirs = RELAXED.write().expect("relaxed dirs");
    if !dirs.contains(&dir) {
        dirs.push(dir);
    }
    drop(dirs);
    INSTALL.call_once(|| {
        // SAFETY: `on_open` has the signature SQLite calls auto-extensions
        // with, and stays valid for the life of the process.
        #[allow(unsafe_code)]
        let rc = unsafe { libsql::ffi::sqlite3_auto_extension(Some(on_open)) };
        if rc != 0 {
            tracing::warn!(
                rc,
                "replica commits will wait for the disk: the auto-extension failed"
            );
        }
    });
}

/// Runs in every new SQLite connection of the process.
#[allow(unsafe_code)]
unsafe extern "C" fn on_open(
    db: *mut libsql::ffi::sqlite3,
    _err: *mut *const c_char,
    _api: *const libsql::ffi::sqlite3_api_routines,
) -> c_int {
    // SAFETY: SQLite passes an open connection; "main" names its main
    // database; the filename it returns lives as long as the connection
    // (null or empty for an in-memory database).
    let name = unsafe { libsql::ffi::sqlite3_db_filename(db, c"main".as_ptr()) };
    if name.is_null() {
        return 0;
    }
    // SAFETY: a NUL-terminated string owned by the connection.
    let Ok(name) = (unsafe { CStr::from_ptr(name) }).to_str() else {
        return 0;
    };
    let replica = RELAXED
        .read()
        .is_ok_and(|dirs| dirs.iter().any(|d| Path::new(name).starts_with(d)));
    if replica {
        // SAFETY: the connection is open and the statement is a constant.
        unsafe {
            libsql::ffi::sqlite3_exec(
                db,
                c"PRAGMA synchronous = NORMAL".as_ptr(),
                None,
                std::ptr::null_mut(),
                std::ptr::null_mut(),
            );
        }
    }
    0
}

/// This machine's boot, as the kernel names it; `None` where it does not.
fn boot_id() -> Option<String> {
    std::fs::read_to_string("/proc/sys/kernel/random/boot_id")
        .ok()
        .map(|s| s.trim().to_string())
}

/// Whether the replicas in `dir` may have lost commits to a machine
/// crash: frames were applied in a boot other than this one. Records
/// this boot (on the disk) before any frame is applied in it.
pub(crate) fn rebooted_since_applied(dir: &Path) -> std::io::Result<bool> {
    let Some(boot) = boot_id() else {
        return Ok(false);
    };
    let marker = dir.join("applied-in-boot");
    let rebooted = match std::fs::read_to_string(&marker) {
        Ok(seen) => seen.trim() != boot,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => false,
        Err(e) => return Err(e),
    };
    let tmp = dir.join("applied-in-boot.tmp");
    {
        use std::io::Write;
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(boot.as_bytes())?;
        f.sync_all()?;
    }
    std::fs::rename(&tmp, &marker)?;
    std::fs::File::open(dir)?.sync_all()?;
    Ok(rebooted)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_marker_from_another_boot_says_rebooted_and_is_replaced() {
        let dir = tempfile::tempdir().unwrap();
        if boot_id().is_none() {
            return;
        }
        assert!(
            !rebooted_since_applied(dir.path()).unwrap(),
            "no marker yet"
        );
        assert!(!rebooted_since_applied(dir.path()).unwrap(), "this boot's");
        std::fs::write(dir.path().join("applied-in-boot"), "another-boot").unwrap();
        assert!(rebooted_since_applied(dir.path()).unwrap());
        assert!(!rebooted_since_applied(dir.path()).unwrap());
    }

    #[tokio::test]
    async fn connections_under_a_relaxed_directory_commit_without_a_sync() {
        let relaxed = tempfile::tempdir().unwrap();
        let other = tempfile::tempdir().unwrap();
        relax(relaxed.path()).await;
        let level = async |dir: &Path| -> i64 {
            let db = libsql::Builder::new_local(dir.join("r.db"))
                .build()
                .await
                .unwrap();
            let conn = db.connect().unwrap();
            let mut rows = conn.query("PRAGMA synchronous", ()).await.unwrap();
            rows.next().await.unwrap().unwrap().get(0).unwrap()
        };
        assert_eq!(
            level(relaxed.path()).await,
            1,
            "NORMAL in a replica's directory"
        );
        assert_eq!(level(other.path()).await, 2, "FULL anywhere else");
    }
}
