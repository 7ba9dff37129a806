//! A generation's frame log: the committed WAL frames shipped since the
//! generation's base snapshot, in commit order, each stored exactly as
//! SQLite wrote it (24-byte header, then the page).
//!
//! Records are fixed-size, so frame `n` lives at `(n - 1) * FRAME_BYTES`.
//! The log is appended by one writer (the shipper) and read by any
//! number of request handlers, which only ever see whole transactions:
//! [`FrameLog::len`] moves after the bytes are on disk.

use crate::wal::{FRAME_HEADER_BYTES, FrameHeader};
use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};

/// The page size the libSQL sync protocol carries.
pub const PAGE_BYTES: usize = 4096;
/// One record: a frame header and a page.
pub const FRAME_BYTES: usize = FRAME_HEADER_BYTES + PAGE_BYTES;

#[derive(Debug)]
pub struct FrameLog {
    path: PathBuf,
    file: File,
    /// Frames durably in the log, ending at a commit.
    len: AtomicU32,
}

impl FrameLog {
    /// Opens (or creates) a log, dropping a torn or uncommitted tail left
    /// by a crash.
    pub fn open(path: &Path) -> io::Result<FrameLog> {
        let file = OpenOptions::new()
            .read(true)
            .append(true)
            .create(true)
            .open(path)?;
        let bytes = file.metadata()?.len();
        let mut frames = (bytes / FRAME_BYTES as u64) as u32;
        let mut header = [0u8; FRAME_HEADER_BYTES];
        while frames > 0 {
            file.read_exact_at(&mut header, u64::from(frames - 1) * FRAME_BYTES as u64)?;
            if FrameHeader::parse(&header).is_commit() {
                break;
            }
            frames -= 1;
        }
        let keep = u64::from(frames) * FRAME_BYTES as u64;
        if keep != bytes {
            tracing::warn!(path = %path.display(), dropped = bytes - keep, "dropping a torn frame log tail");
            file.set_len(keep)?;
            file.sync_all()?;
        }
        Ok(FrameLog {
            path: path.to_path_buf(),
            file,
            len: AtomicU32::new(frames),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Committed frames in the log.
    pub fn len(&self) -> u32 {
        self.len.load(Ordering::Acquire)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Appends whole transactions (`frames` ends with a commit frame) and
    /// makes them durable before they become visible to readers.
    pub fn append(&self, frames: &[u8]) -> io::Result<()> {
        debug_assert!(frames.len().is_multiple_of(FRAME_BYTES));
        if frames.is_empty() {
            return Ok(());
        }
        debug_assert!(
            FrameHeader::parse(&frames[frames.len() - FRAME_BYTES..]).is_commit(),
            "a log grows by whole transactions"
        );
        (&self.file).write_all(frames)?;
        self.file.sync_data()?;
        self.len
            .fetch_add((frames.len() / FRAME_BYTES) as u32, Ordering::Release);
        Ok(())
    }

    /// Frames `start..end` (1-based, end exclusive), clamped to the log.
    pub fn read(&self, start: u32, end: u32) -> io::Result<Vec<u8>> {
        let end = end.min(self.len() + 1);
        if start == 0 || start >= end {
            return Ok(Vec::new());
        }
        let mut out = vec![0u8; (end - start) as usize * FRAME_BYTES];
        self.file
            .read_exact_at(&mut out, u64::from(start - 1) * FRAME_BYTES as u64)?;
        Ok(out)
    }

    /// The header of the last frame, if any.
    pub fn last_header(&self) -> io::Result<Option<FrameHeader>> {
        let n = self.len();
        if n == 0 {
            return Ok(None);
        }
        let mut header = [0u8; FRAME_HEADER_BYTES];
        self.file
            .read_exact_at(&mut header, u64::from(n - 1) * FRAME_BYTES as u64)?;
        Ok(Some(FrameHeader::parse(&header)))
    }
}

/// Applies whole transactions (`frames` ends with a commit) to a database
/// image: each page lands at its number, and the last commit's size
/// truncates the file (so frames that end inside a transaction may lose
/// its pages past the size before it). This is what a
/// checkpoint does, so `base + log` is the next generation's base.
pub fn apply(db: &File, frames: &[u8]) -> io::Result<()> {
    let mut size_after = None;
    for frame in frames.chunks_exact(FRAME_BYTES) {
        let h = FrameHeader::parse(frame);
        db.write_all_at(
            &frame[FRAME_HEADER_BYTES..],
            u64::from(h.page_no - 1) * PAGE_BYTES as u64,
        )?;
        if h.is_commit() {
            size_after = Some(h.size_after);
        }
    }
    if let Some(pages) = size_after {
        db.set_len(u64::from(pages) * PAGE_BYTES as u64)?;
    }
    Ok(())
}

/// Whole transactions (`frames` ends with a commit) as one with the same
/// end state: each page once, at its latest version, none past the final
/// size, and the final commit frame last and byte for byte as SQLite wrote
/// it (the shipper finds where it left off in the WAL by that frame's
/// checksum). What it saves is paid at every replica: the `libsql` client
/// writes its metadata file, with a sync, after each commit it applies,
/// and a busy primary rewrites the same pages (an index's last leaf, a
/// counter's page) commit after commit.
pub fn coalesce(frames: &[u8]) -> Vec<u8> {
    let count = frames.len() / FRAME_BYTES;
    let Some(last) = count.checked_sub(1).map(|n| &frames[n * FRAME_BYTES..]) else {
        return Vec::new();
    };
    let end = FrameHeader::parse(last);
    let mut seen = std::collections::HashSet::from([end.page_no]);
    let mut keep: Vec<&[u8]> = frames[..(count - 1) * FRAME_BYTES]
        .chunks_exact(FRAME_BYTES)
        .rev()
        .filter(|f| {
            let page = FrameHeader::parse(f).page_no;
            page <= end.size_after && seen.insert(page)
        })
        .collect();
    keep.reverse();
    let mut out = Vec::with_capacity((keep.len() + 1) * FRAME_BYTES);
    for frame in keep {
        out.extend_from_slice(frame);
        // No longer a commit of its own.
        let at = out.len() - FRAME_BYTES;
        out[at + 4..at + 8].fill(0);
    }
    out.extend_from_slice(last);
    out
}

/// Whole transactions as few: consecutive ones merged by [`coalesce`] as
/// long as a run holds at most `limit` frames before merging, so no merged
/// transaction is larger than a reader takes in one go. A transaction
/// larger than `limit` passes alone, as it came.
pub fn coalesce_runs(frames: &[u8], limit: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(frames.len());
    let (mut run, mut next) = (0, 0);
    for (i, frame) in frames.chunks_exact(FRAME_BYTES).enumerate() {
        if !FrameHeader::parse(frame).is_commit() {
            continue;
        }
        let end = (i + 1) * FRAME_BYTES;
        if next > run && (end - run) / FRAME_BYTES > limit {
            out.extend(coalesce(&frames[run..next]));
            run = next;
        }
        next = end;
    }
    out.extend(coalesce(&frames[run..next]));
    out
}

/// How a long write shares the disk: it syncs after about `sync_every`
/// bytes, then pauses, so other writers' syncs (and their threads) get
/// in between.
#[derive(Debug, Clone, Copy)]
pub struct Pace {
    pub sync_every: usize,
    pub pause: std::time::Duration,
}

/// [`apply`] of a whole log's first `frames` frames, writing each page
/// once: the log is read from its end, and a page already written from a
/// later frame is skipped. The result is the same file; a hot page
/// (an index's last leaf) that a log holds thousands of times costs one
/// write. With a [`Pace`], the data is synced in steps, so a roll never
/// queues a whole database's writes ahead of every commit's sync.
pub fn fold(db: &File, log: &FrameLog, frames: u32, pace: Option<Pace>) -> io::Result<()> {
    let mut written = std::collections::HashSet::new();
    let mut size_after = None;
    let mut unsynced = 0usize;
    let mut end = frames.min(log.len()) + 1;
    const BATCH: u32 = 1024;
    while end > 1 {
        let start = end.saturating_sub(BATCH).max(1);
        let batch = log.read(start, end)?;
        for frame in batch.chunks_exact(FRAME_BYTES).rev() {
            let h = FrameHeader::parse(frame);
            if size_after.is_none() && h.is_commit() {
                size_after = Some(h.size_after);
            }
            if !written.insert(h.page_no) {
                continue;
            }
            db.write_all_at(
                &frame[FRAME_HEADER_BYTES..],
                u64::from(h.page_no - 1) * PAGE_BYTES as u64,
            )?;
            unsynced += PAGE_BYTES;
            if let Some(pace) = pace
                && unsynced >= pace.sync_every
            {
                db.sync_data()?;
                std::thread::sleep(pace.pause);
                unsynced = 0;
            }
        }
        end = start;
    }
    if let Some(pages) = size_after {
        db.set_len(u64::from(pages) * PAGE_BYTES as u64)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(page_no: u32, size_after: u32, fill: u8) -> Vec<u8> {
        let mut f = vec![fill; FRAME_BYTES];
        f[..4].copy_from_slice(&page_no.to_be_bytes());
        f[4..8].copy_from_slice(&size_after.to_be_bytes());
        f
    }

    #[test]
    fn append_read_and_reopen_drop_the_torn_tail() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("gen-1.frames");
        let log = FrameLog::open(&path).unwrap();
        let mut txn = frame(1, 0, 1);
        txn.extend(frame(2, 2, 2));
        log.append(&txn).unwrap();
        log.append(&frame(3, 3, 3)).unwrap();
        assert_eq!(log.len(), 3);
        assert_eq!(log.read(2, 10).unwrap().len(), 2 * FRAME_BYTES);
        assert_eq!(log.read(4, 10).unwrap().len(), 0);
        assert_eq!(log.last_header().unwrap().unwrap().page_no, 3);
        // A crash mid-append leaves an uncommitted frame and half a frame.
        let mut raw = OpenOptions::new().append(true).open(&path).unwrap();
        raw.write_all(&frame(4, 0, 4)).unwrap();
        raw.write_all(&[9u8; 100]).unwrap();
        drop((log, raw));
        let log = FrameLog::open(&path).unwrap();
        assert_eq!(log.len(), 3);
        assert_eq!(
            std::fs::metadata(&path).unwrap().len(),
            3 * FRAME_BYTES as u64
        );
    }

    #[test]
    fn apply_writes_pages_and_truncates_to_the_commit_size() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("db");
        std::fs::write(&path, vec![0u8; 5 * PAGE_BYTES]).unwrap();
        let db = OpenOptions::new()
            .read(true)
            .write(true)
            .open(&path)
            .unwrap();
        let mut frames = frame(2, 0, 7);
        frames.extend(frame(1, 3, 8));
        apply(&db, &frames).unwrap();
        let bytes = std::fs::read(&path).unwrap();
        assert_eq!(bytes.len(), 3 * PAGE_BYTES);
        assert_eq!(bytes[0], 8);
        assert_eq!(bytes[PAGE_BYTES], 7);
        assert_eq!(bytes[2 * PAGE_BYTES], 0);
    }

    #[test]
    fn coalesced_transactions_make_the_same_file_in_one_commit() {
        let mut frames = Vec::new();
        frames.extend(frame(3, 0, 1));
        frames.extend(frame(1, 4, 2)); // commit: 4 pages
        frames.extend(frame(4, 0, 3));
        frames.extend(frame(3, 5, 4)); // commit: 5 pages, page 3 again
        frames.extend(frame(5, 0, 5));
        frames.extend(frame(1, 4, 6)); // commit: back to 4 pages
        let one = coalesce(&frames);
        let pages: Vec<(u32, u32, u8)> = one
            .chunks_exact(FRAME_BYTES)
            .map(|f| {
                let h = FrameHeader::parse(f);
                (h.page_no, h.size_after, f[FRAME_HEADER_BYTES])
            })
            .collect();
        // Page 5 lies past the final size; page 1's latest version is the
        // last commit frame, kept whole.
        assert_eq!(pages, [(4, 0, 3), (3, 0, 4), (1, 4, 6)]);
        assert_eq!(
            &one[one.len() - FRAME_BYTES..],
            &frames[frames.len() - FRAME_BYTES..]
        );
        let dir = tempfile::tempdir().unwrap();
        let file = |name: &str| {
            let path = dir.path().join(name);
            std::fs::write(&path, vec![9u8; 6 * PAGE_BYTES]).unwrap();
            let f = OpenOptions::new().write(true).open(&path).unwrap();
            (path, f)
        };
        let (every, f) = file("every");
        apply(&f, &frames).unwrap();
        let (coalesced, f) = file("coalesced");
        apply(&f, &one).unwrap();
        assert!(std::fs::read(every).unwrap() == std::fs::read(coalesced).unwrap());
        // One transaction, or none, passes as it came.
        assert_eq!(
            coalesce(&frames[..2 * FRAME_BYTES]),
            &frames[..2 * FRAME_BYTES]
        );
        assert!(coalesce(&[]).is_empty());
    }

    #[test]
    fn runs_of_transactions_merge_up_to_a_limit() {
        // Five transactions: 2, 2, 5, 1 and 1 frames (the third alone is
        // past the limit of 4).
        let mut frames = Vec::new();
        for (pages, fill) in [(2u32, 1u8), (2, 2), (5, 3), (1, 4), (1, 5)] {
            for p in 1..=pages {
                frames.extend(frame(p, if p == pages { 9 } else { 0 }, fill));
            }
        }
        let runs = coalesce_runs(&frames, 4);
        let commits: Vec<u32> = runs
            .chunks_exact(FRAME_BYTES)
            .enumerate()
            .filter(|(_, f)| FrameHeader::parse(f).is_commit())
            .map(|(i, _)| i as u32 + 1)
            .collect();
        // {2, 2} merge into pages 1-2; the 5 passes alone; {1, 1} merge
        // into page 1.
        assert_eq!(commits, [2, 7, 8]);
        assert_eq!(
            &runs[2 * FRAME_BYTES..7 * FRAME_BYTES],
            &frames[4 * FRAME_BYTES..9 * FRAME_BYTES]
        );
        assert_eq!(
            runs[7 * FRAME_BYTES + FRAME_HEADER_BYTES],
            5,
            "the latest page 1"
        );
        assert_eq!(
            coalesce_runs(&frames, 1000).len(),
            5 * FRAME_BYTES,
            "one run: pages 1-5"
        );
        assert!(coalesce_runs(&[], 4).is_empty());
    }

    #[test]
    fn fold_makes_the_same_file_as_applying_every_frame() {
        let dir = tempfile::tempdir().unwrap();
        let log = FrameLog::open(&dir.path().join("gen-1.frames")).unwrap();
        // 3000 transactions over 40 pages, hot pages rewritten often, the
        // size shrinking and growing, a page past the final size written.
        let mut seed = 7u64;
        let mut next = || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        for t in 0..3000u32 {
            let mut txn = Vec::new();
            for _ in 0..(1 + next() % 3) {
                let page = if next() % 2 == 0 {
                    1 + (next() % 3) as u32
                } else {
                    1 + (next() % 40) as u32
                };
                txn.extend(frame(page, 0, (next() % 251) as u8));
            }
            let size = if t == 2999 {
                30
            } else {
                20 + (next() % 25) as u32
            };
            let last = txn.len() - FRAME_BYTES;
            txn[last + 4..last + 8].copy_from_slice(&size.to_be_bytes());
            log.append(&txn).unwrap();
        }
        let made = |name: &str| {
            let path = dir.path().join(name);
            std::fs::write(&path, vec![9u8; 35 * PAGE_BYTES]).unwrap();
            (
                path.clone(),
                OpenOptions::new()
                    .read(true)
                    .write(true)
                    .open(&path)
                    .unwrap(),
            )
        };
        let (every, file) = made("every");
        apply(&file, &log.read(1, log.len() + 1).unwrap()).unwrap();
        let (folded, file) = made("folded");
        let pace = Pace {
            sync_every: 3 * PAGE_BYTES,
            pause: std::time::Duration::ZERO,
        };
        fold(&file, &log, log.len(), Some(pace)).unwrap();
        let want = std::fs::read(&every).unwrap();
        assert_eq!(want.len(), 30 * PAGE_BYTES);
        assert!(
            std::fs::read(&folded).unwrap() == want,
            "fold and apply differ"
        );
    }
}
