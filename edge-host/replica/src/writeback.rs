//! Writing a replica's WAL back to the disk as it grows.
//!
//! A replica commits without syncing (see [`crate::durability`]), so the
//! WAL of a generation (up to 64 MB: a busy catalog rewrites its few
//! hundred hot pages some twenty times a generation) stays dirty in the
//! page cache until the generation's checkpoint, whose first sync then
//! writes all of it at once. Under the checkout bench that was a 40-50 ms
//! burst at every roll, and every other sync on the disk queued behind
//! it. Starting the write-back after each pull spreads the same writes
//! over the generation; nothing waits for it, and what is durable when
//! does not change.

use std::os::fd::AsRawFd;
use std::path::Path;

/// Starts writing back the dirty pages of the WAL of the database at
/// `db`, without waiting. A missing WAL (a checkpoint just truncated
/// it, or nothing applied yet) is nothing to do.
pub(crate) fn start(db: &Path) {
    let mut wal = db.as_os_str().to_owned();
    wal.push("-wal");
    let Ok(file) = std::fs::File::open(wal) else {
        return;
    };
    // SAFETY: the descriptor is open for the call; a zero length means
    // to the end of the file; the flag only queues write-back.
    #[allow(unsafe_code)]
    let rc = unsafe { libc::sync_file_range(file.as_raw_fd(), 0, 0, libc::SYNC_FILE_RANGE_WRITE) };
    if rc != 0 {
        tracing::debug!(error = %std::io::Error::last_os_error(), "could not start the WAL's write-back");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs::File;
    use std::io::Write;

    /// `cachestat(2)` (Linux 6.5), the same number on every architecture;
    /// the `libc` crate names it only for some.
    const SYS_CACHESTAT: libc::c_long = 451;

    /// The file's pages that are dirty or being written back, or `None`
    /// where the kernel cannot say.
    fn unwritten_pages(file: &File) -> Option<u64> {
        // `struct cachestat_range` (offset, length; 0 = to the end) and
        // `struct cachestat` (cached, dirty, writeback, evicted, recently
        // evicted), all `u64`.
        let range = [0u64, 0u64];
        let mut stat = [0u64; 5];
        // SAFETY: both pointers are to live arrays of the sizes the
        // kernel reads and writes; the descriptor is open.
        #[allow(unsafe_code)]
        let rc = unsafe {
            libc::syscall(
                SYS_CACHESTAT,
                file.as_raw_fd(),
                range.as_ptr(),
                stat.as_mut_ptr(),
                0u32,
            )
        };
        (rc == 0).then(|| stat[1] + stat[2])
    }

    #[test]
    fn a_wal_is_written_back_without_waiting_for_its_checkpoint() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("catalog-1.db");
        let mut wal = File::create(dir.path().join("catalog-1.db-wal")).unwrap();
        // 8 MB of frames, applied without a sync (as a replica commits).
        for _ in 0..2048 {
            wal.write_all(&[7u8; 4096]).unwrap();
        }
        let Some(dirty) = unwritten_pages(&wal) else {
            eprintln!("this kernel has no cachestat(2); nothing to check");
            return;
        };
        // The kernel writes dirty pages back on its own only after 30 s
        // (`vm.dirty_expire_centisecs`), or a sync: the pages wait.
        assert!(dirty > 1000, "{dirty} pages dirty after the writes");
        start(&db);
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        let mut left = dirty;
        while left > 0 && std::time::Instant::now() < deadline {
            std::thread::sleep(std::time::Duration::from_millis(20));
            left = unwritten_pages(&wal).unwrap();
        }
        assert_eq!(left, 0, "{left} of {dirty} pages still unwritten");
        // Nothing to do is no error.
        start(&dir.path().join("missing.db"));
    }
}
