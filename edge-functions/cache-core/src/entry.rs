//! A stored response as bytes in a key-value store, and back.
//!
//! The format is length-prefixed fields behind a version tag. Decoding
//! checks every length against what is left, so a truncated or foreign
//! value is an error, never a panic or a wrong response.

/// A stored response and what judging it needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// The keys it was stored under (store keys are digests of these; a
    /// lookup compares them).
    pub primary: String,
    pub secondary: String,
    pub status: u16,
    /// Field lines as received, minus the ones a cache must not store
    /// (the caller's choice).
    pub headers: Vec<(String, Vec<u8>)>,
    pub body: Vec<u8>,
    /// Ms since the epoch.
    pub response_time: u64,
    /// Ms.
    pub initial_age: u64,
    /// Ms.
    pub lifetime: u64,
    /// The newest change in the replicated `changes` table when it was
    /// stored (see [`crate::tags`]).
    pub as_of_change: u64,
    pub tags: Vec<String>,
}

const VERSION: &[u8; 4] = b"ec01";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DecodeError;

impl std::fmt::Display for DecodeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("not a stored response of this version")
    }
}

impl std::error::Error for DecodeError {}

impl Entry {
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.body.len() + 256);
        out.extend_from_slice(VERSION);
        bytes(&mut out, self.primary.as_bytes());
        bytes(&mut out, self.secondary.as_bytes());
        out.extend_from_slice(&self.status.to_le_bytes());
        for n in [
            self.response_time,
            self.initial_age,
            self.lifetime,
            self.as_of_change,
        ] {
            out.extend_from_slice(&n.to_le_bytes());
        }
        out.extend_from_slice(&(self.headers.len() as u32).to_le_bytes());
        for (name, value) in &self.headers {
            bytes(&mut out, name.as_bytes());
            bytes(&mut out, value);
        }
        out.extend_from_slice(&(self.tags.len() as u32).to_le_bytes());
        for tag in &self.tags {
            bytes(&mut out, tag.as_bytes());
        }
        bytes(&mut out, &self.body);
        out
    }

    pub fn decode(data: &[u8]) -> Result<Entry, DecodeError> {
        let mut r = Reader(data);
        if r.take(4)? != VERSION {
            return Err(DecodeError);
        }
        let primary = r.string()?;
        let secondary = r.string()?;
        let status = u16::from_le_bytes(r.take(2)?.try_into().map_err(|_| DecodeError)?);
        let response_time = r.u64()?;
        let initial_age = r.u64()?;
        let lifetime = r.u64()?;
        let as_of_change = r.u64()?;
        let n = r.u32()?;
        let mut headers = Vec::new();
        for _ in 0..n {
            headers.push((r.string()?, r.bytes()?.to_vec()));
        }
        let n = r.u32()?;
        let mut tags = Vec::new();
        for _ in 0..n {
            tags.push(r.string()?);
        }
        let body = r.bytes()?.to_vec();
        if !r.0.is_empty() {
            return Err(DecodeError);
        }
        Ok(Entry {
            primary,
            secondary,
            status,
            headers,
            body,
            response_time,
            initial_age,
            lifetime,
            as_of_change,
            tags,
        })
    }
}

fn bytes(out: &mut Vec<u8>, b: &[u8]) {
    out.extend_from_slice(&(b.len() as u32).to_le_bytes());
    out.extend_from_slice(b);
}

struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], DecodeError> {
        if self.0.len() < n {
            return Err(DecodeError);
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Ok(head)
    }

    fn u32(&mut self) -> Result<u32, DecodeError> {
        Ok(u32::from_le_bytes(
            self.take(4)?.try_into().map_err(|_| DecodeError)?,
        ))
    }

    fn u64(&mut self) -> Result<u64, DecodeError> {
        Ok(u64::from_le_bytes(
            self.take(8)?.try_into().map_err(|_| DecodeError)?,
        ))
    }

    fn bytes(&mut self) -> Result<&'a [u8], DecodeError> {
        let n = self.u32()? as usize;
        self.take(n)
    }

    fn string(&mut self) -> Result<String, DecodeError> {
        String::from_utf8(self.bytes()?.to_vec()).map_err(|_| DecodeError)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Entry {
        Entry {
            primary: "GET /api/v1/products/7".into(),
            secondary: "accept=application/json\n".into(),
            status: 200,
            headers: vec![
                ("content-type".into(), b"application/json".to_vec()),
                ("etag".into(), b"\"v3\"".to_vec()),
            ],
            body: b"{\"id\":7}".to_vec(),
            response_time: 1_700_000_000_123,
            initial_age: 250,
            lifetime: 60_000,
            as_of_change: 42,
            tags: vec!["product:7".into(), "vendor:3".into()],
        }
    }

    #[test]
    fn round_trips() {
        let e = sample();
        assert_eq!(Entry::decode(&e.encode()), Ok(e));
        let empty = Entry {
            headers: vec![],
            tags: vec![],
            body: vec![],
            ..sample()
        };
        assert_eq!(Entry::decode(&empty.encode()), Ok(empty));
    }

    #[test]
    fn damaged_values_are_errors_not_panics() {
        let bytes = sample().encode();
        for n in 0..bytes.len() {
            assert_eq!(Entry::decode(&bytes[..n]), Err(DecodeError), "cut at {n}");
        }
        let mut longer = bytes.clone();
        longer.push(0);
        assert_eq!(Entry::decode(&longer), Err(DecodeError));
        let mut other = bytes.clone();
        other[3] = b'9';
        assert_eq!(Entry::decode(&other), Err(DecodeError));
        // A length field claiming more than there is.
        let mut huge = bytes;
        huge[4..8].copy_from_slice(&u32::MAX.to_le_bytes());
        assert_eq!(Entry::decode(&huge), Err(DecodeError));
        assert_eq!(Entry::decode(b""), Err(DecodeError));
    }
}
