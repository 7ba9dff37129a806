//! Reading SQLite's write-ahead log: the header, the frames, and which of
//! them are committed. Pure: it works on bytes the caller reads.
//!
//! A WAL is a 32-byte header and then frames of a 24-byte header and one
//! page. A frame belongs to the current log only if it carries the
//! header's salts and its checksum continues the running checksum; the
//! first frame that does not is where the log ends. A frame whose
//! "database size after commit" is non-zero ends a transaction, so only
//! frames up to the last such frame are committed.

/// Bytes in the WAL file header.
pub const HEADER_BYTES: usize = 32;
/// Bytes in a frame header.
pub const FRAME_HEADER_BYTES: usize = 24;

const MAGIC_LE: u32 = 0x377f_0682;
const MAGIC_BE: u32 = 0x377f_0683;
const VERSION: u32 = 3_007_000;

fn be32(b: &[u8], at: usize) -> u32 {
    u32::from_be_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

/// The WAL header: what every frame of this log must match.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    /// Checksums read 32-bit words big-endian (else little-endian).
    pub big_endian: bool,
    pub page_size: u32,
    pub checkpoint_seq: u32,
    pub salt: [u32; 2],
    pub checksum: [u32; 2],
}

impl Header {
    /// Parses and verifies a header; `None` if it is not a valid WAL header
    /// (an empty or half-written file, or not a WAL at all).
    pub fn parse(bytes: &[u8]) -> Option<Header> {
        if bytes.len() < HEADER_BYTES {
            return None;
        }
        let big_endian = match be32(bytes, 0) {
            MAGIC_LE => false,
            MAGIC_BE => true,
            _ => return None,
        };
        if be32(bytes, 4) != VERSION {
            return None;
        }
        let checksum = [be32(bytes, 24), be32(bytes, 28)];
        if self::checksum(big_endian, [0, 0], &bytes[..24]) != checksum {
            return None;
        }
        let page_size = match be32(bytes, 8) {
            1 => 65_536,
            n => n,
        };
        Some(Header {
            big_endian,
            page_size,
            checkpoint_seq: be32(bytes, 12),
            salt: [be32(bytes, 16), be32(bytes, 20)],
            checksum,
        })
    }

    /// Bytes in one frame of this log.
    pub fn frame_bytes(&self) -> usize {
        FRAME_HEADER_BYTES + self.page_size as usize
    }

    /// Byte offset of frame `n` (1-based).
    pub fn frame_offset(&self, n: u32) -> u64 {
        HEADER_BYTES as u64 + u64::from(n - 1) * self.frame_bytes() as u64
    }
}

/// SQLite's WAL checksum over `data` (a multiple of 8 bytes), continuing
/// from `init`.
pub fn checksum(big_endian: bool, init: [u32; 2], data: &[u8]) -> [u32; 2] {
    debug_assert!(data.len().is_multiple_of(8));
    let word = |c: &[u8]| {
        let b = [c[0], c[1], c[2], c[3]];
        if big_endian {
            u32::from_be_bytes(b)
        } else {
            u32::from_le_bytes(b)
        }
    };
    let [mut s0, mut s1] = init;
    for pair in data.chunks_exact(8) {
        s0 = s0.wrapping_add(word(&pair[..4])).wrapping_add(s1);
        s1 = s1.wrapping_add(word(&pair[4..])).wrapping_add(s0);
    }
    [s0, s1]
}

/// What a frame header says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrameHeader {
    pub page_no: u32,
    /// Database size in pages after this commit; 0 if not a commit.
    pub size_after: u32,
    pub salt: [u32; 2],
    pub checksum: [u32; 2],
}

impl FrameHeader {
    pub fn parse(bytes: &[u8]) -> FrameHeader {
        FrameHeader {
            page_no: be32(bytes, 0),
            size_after: be32(bytes, 4),
            salt: [be32(bytes, 8), be32(bytes, 12)],
            checksum: [be32(bytes, 16), be32(bytes, 20)],
        }
    }

    pub fn is_commit(&self) -> bool {
        self.size_after > 0
    }
}

/// Walks the frames of one log in order, telling which are valid and
/// which commit. Its position survives between reads, so a log that
/// grows is read once.
#[derive(Debug, Clone)]
pub struct Scanner {
    header: Header,
    /// The last committed frame seen, and the running checksum after it.
    committed: u32,
    committed_sum: [u32; 2],
    /// Frames read past `committed` (valid, but not yet committed).
    next: u32,
    sum: [u32; 2],
}

/// What one more frame turned out to be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// Not part of this log: the log ends before it.
    End,
    /// Valid, inside a transaction that has not committed (yet).
    Pending,
    /// Valid, and it commits every frame since the previous commit.
    Commit,
}

impl Scanner {
    pub fn new(header: Header) -> Scanner {
        Scanner {
            header,
            committed: 0,
            committed_sum: header.checksum,
            next: 1,
            sum: header.checksum,
        }
    }

    pub fn header(&self) -> &Header {
        &self.header
    }

    /// The last committed frame number (0: none yet).
    pub fn committed(&self) -> u32 {
        self.committed
    }

    /// The frame number the next call to [`Scanner::push`] expects.
    pub fn next_frame(&self) -> u32 {
        self.next
    }

    /// Forgets frames read past the last commit, so they are read again:
    /// SQLite may still rewrite an uncommitted frame in place.
    pub fn rewind(&mut self) {
        self.next = self.committed + 1;
        self.sum = self.committed_sum;
    }

    /// Takes frame number [`Scanner::next_frame`] (header and page).
    pub fn push(&mut self, frame: &[u8]) -> Step {
        if frame.len() != self.header.frame_bytes() {
            return Step::End;
        }
        let fh = FrameHeader::parse(frame);
        if fh.salt != self.header.salt {
            return Step::End;
        }
        let sum = checksum(self.header.big_endian, self.sum, &frame[..8]);
        let sum = checksum(self.header.big_endian, sum, &frame[FRAME_HEADER_BYTES..]);
        if sum != fh.checksum {
            return Step::End;
        }
        self.sum = sum;
        self.next += 1;
        if fh.is_commit() {
            self.committed = self.next - 1;
            self.committed_sum = sum;
            Step::Commit
        } else {
            Step::Pending
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Builds a WAL the way SQLite lays one out.
    fn wal(big_endian: bool, frames: &[(u32, u32)]) -> Vec<u8> {
        let page = 512u32;
        let put = |v: &mut Vec<u8>, x: u32| v.extend_from_slice(&x.to_be_bytes());
        let mut out = Vec::new();
        put(&mut out, if big_endian { MAGIC_BE } else { MAGIC_LE });
        put(&mut out, VERSION);
        put(&mut out, page);
        put(&mut out, 7);
        put(&mut out, 0xdead_beef);
        put(&mut out, 0x1234_5678);
        let mut sum = checksum(big_endian, [0, 0], &out);
        put(&mut out, sum[0]);
        put(&mut out, sum[1]);
        for (i, &(page_no, size_after)) in frames.iter().enumerate() {
            let mut f = Vec::new();
            put(&mut f, page_no);
            put(&mut f, size_after);
            put(&mut f, 0xdead_beef);
            put(&mut f, 0x1234_5678);
            let data = vec![i as u8; page as usize];
            sum = checksum(big_endian, sum, &f[..8]);
            sum = checksum(big_endian, sum, &data);
            put(&mut f, sum[0]);
            put(&mut f, sum[1]);
            f.extend(data);
            out.extend(f);
        }
        out
    }

    fn scan(bytes: &[u8]) -> (Scanner, Vec<Step>) {
        let header = Header::parse(bytes).expect("header");
        let mut s = Scanner::new(header);
        let mut steps = Vec::new();
        loop {
            let at = header.frame_offset(s.next_frame()) as usize;
            let end = (at + header.frame_bytes()).min(bytes.len());
            let step = s.push(&bytes[at.min(end)..end]);
            steps.push(step);
            if step == Step::End {
                return (s, steps);
            }
        }
    }

    #[test]
    fn commits_are_found_in_both_byte_orders() {
        for be in [false, true] {
            let bytes = wal(be, &[(1, 0), (2, 3), (3, 3)]);
            let (s, steps) = scan(&bytes);
            assert_eq!(
                steps,
                [Step::Pending, Step::Commit, Step::Commit, Step::End]
            );
            assert_eq!(s.committed(), 3);
            assert_eq!(s.header().page_size, 512);
        }
    }

    #[test]
    fn a_torn_or_uncommitted_tail_is_not_committed() {
        let mut bytes = wal(false, &[(1, 2), (2, 0), (3, 0)]);
        let (s, _) = scan(&bytes);
        assert_eq!(s.committed(), 1);
        // A flipped byte in the second frame ends the log there.
        let at = Header::parse(&bytes).unwrap().frame_offset(2) as usize + 100;
        bytes[at] ^= 1;
        let (s, steps) = scan(&bytes);
        assert_eq!(steps, [Step::Commit, Step::End]);
        assert_eq!(s.committed(), 1);
    }

    #[test]
    fn frames_from_an_older_log_end_the_log() {
        let old = wal(false, &[(1, 1), (2, 2), (3, 3)]);
        let mut new = wal(false, &[(9, 9)]);
        // Same layout, different salt: what a restarted log leaves behind.
        new[16] ^= 0xff;
        let h = checksum(false, [0, 0], &new[..24]);
        new[24..28].copy_from_slice(&h[0].to_be_bytes());
        new[28..32].copy_from_slice(&h[1].to_be_bytes());
        let mut bytes = new.clone();
        bytes.extend_from_slice(&old[new.len()..]);
        let (s, _) = scan(&bytes);
        assert_eq!(
            s.committed(),
            0,
            "the re-salted header invalidates the old frame"
        );
    }

    #[test]
    fn rewind_rereads_uncommitted_frames() {
        let bytes = wal(false, &[(1, 1), (2, 0)]);
        let (mut s, _) = scan(&bytes);
        assert_eq!(s.next_frame(), 3);
        s.rewind();
        assert_eq!(s.next_frame(), 2);
    }

    #[test]
    fn garbage_is_not_a_header() {
        assert_eq!(Header::parse(&[0u8; 32]), None);
        assert_eq!(Header::parse(&[1u8; 10]), None);
        let mut bytes = wal(false, &[]);
        bytes[10] ^= 1;
        assert_eq!(Header::parse(&bytes), None, "checksum mismatch");
    }
}
