//! The embedded default's object store: `s3s-fs` (an S3-compatible server
//! from the `s3s` project, files on disk) behind edgeshop's access policy
//! and CORS. This crate holds the parts that are ours, as plain logic:
//! which role may do which operation to which key ([`allows`]), the keys
//! file that names the roles ([`Keys`]), and the CORS answers a browser
//! needs to `PUT` to a signed URL ([`Cors`]).
//!
//! The policy is the least-privilege layout a production bucket gets from
//! its own IAM or bucket policy (see the README):
//!
//! | who                  | may                                            |
//! |----------------------|------------------------------------------------|
//! | `uploader` (origin)  | sign `PutObject` under `uploads/`              |
//! | `processor` (origin) | read and delete `uploads/`, read and write `media/` |
//! | anyone (PoPs)        | `GetObject`, `HeadObject` under `media/`       |
//!
//! Everything else, listing included, is refused.

mod cors;

pub use cors::Cors;

use serde::Deserialize;
use std::collections::BTreeMap;

/// What a key is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Signs vendors' upload URLs: `PutObject` under `uploads/` only.
    Uploader,
    /// Turns uploads into media variants.
    Processor,
}

/// Where uploads land; vendors' clients write here through signed URLs.
pub const UPLOADS: &str = "uploads/";
/// Where processed, content-addressed media live; public to read.
pub const MEDIA: &str = "media/";

/// Whether `role` (`None`: an unsigned request) may run `operation` (S3's
/// name, `PutObject`) on `key` of the store's bucket. A request for
/// another bucket, or for no key, is refused by the caller.
pub fn allows(role: Option<Role>, operation: &str, key: &str) -> bool {
    // A key is a name, not a path, in S3; the files behind this store
    // are paths, so a key that could climb out of its prefix is refused.
    let plain = !key.is_empty()
        && !key.starts_with('/')
        && !key.contains(['\\', '\0'])
        && key
            .split('/')
            .all(|s| !s.is_empty() && s != "." && s != "..");
    if !plain {
        return false;
    }
    let read = matches!(operation, "GetObject" | "HeadObject");
    let under = |prefix: &str| key.starts_with(prefix) && key.len() > prefix.len();
    match role {
        None => read && under(MEDIA),
        Some(Role::Uploader) => operation == "PutObject" && under(UPLOADS),
        Some(Role::Processor) => {
            let on_uploads = read || operation == "DeleteObject";
            let on_media = read || matches!(operation, "PutObject" | "DeleteObject");
            (on_uploads && under(UPLOADS)) || (on_media && under(MEDIA))
        }
    }
}

/// The keys file: `[[key]]` tables of `access_key`, `secret_key`, `role`.
#[derive(Debug, Clone, Default)]
pub struct Keys {
    /// access key → (secret key, role)
    pub keys: BTreeMap<String, (String, Role)>,
}

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum KeysError {
    #[error("the keys file is not valid TOML of [[key]] tables: {0}")]
    Toml(#[from] toml::de::Error),
    #[error("access key {0:?} appears twice")]
    Duplicate(String),
    #[error("the secret key of {0:?} is shorter than 16 characters")]
    WeakSecret(String),
    #[error("access keys are 3 to 128 letters, digits, '-' or '_', not {0:?}")]
    AccessKey(String),
}

impl Keys {
    pub fn parse(text: &str) -> Result<Keys, KeysError> {
        #[derive(Deserialize)]
        #[serde(deny_unknown_fields)]
        struct File {
            #[serde(default)]
            key: Vec<Entry>,
        }
        #[derive(Deserialize)]
        #[serde(deny_unknown_fields)]
        struct Entry {
            access_key: String,
            secret_key: String,
            role: Role,
        }
        let file: File = toml::from_str(text)?;
        let mut keys = Keys::default();
        for e in file.key {
            let ok_name = (3..=128).contains(&e.access_key.len())
                && e.access_key
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
            if !ok_name {
                return Err(KeysError::AccessKey(e.access_key));
            }
            if e.secret_key.len() < 16 {
                return Err(KeysError::WeakSecret(e.access_key));
            }
            if keys.keys.contains_key(&e.access_key) {
                return Err(KeysError::Duplicate(e.access_key));
            }
            keys.keys.insert(e.access_key, (e.secret_key, e.role));
        }
        Ok(keys)
    }

    pub fn role(&self, access_key: &str) -> Option<Role> {
        self.keys.get(access_key).map(|(_, r)| *r)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_role_reaches_its_prefix_and_nothing_else() {
        let up = Some(Role::Uploader);
        let proc = Some(Role::Processor);
        let cases = [
            (up, "PutObject", "uploads/7/a.jpg", true),
            (up, "GetObject", "uploads/7/a.jpg", false),
            (up, "PutObject", "media/x.webp", false),
            (up, "DeleteObject", "uploads/7/a.jpg", false),
            (proc, "GetObject", "uploads/7/a.jpg", true),
            (proc, "DeleteObject", "uploads/7/a.jpg", true),
            (proc, "PutObject", "uploads/7/a.jpg", false),
            (proc, "PutObject", "media/ab.webp", true),
            (proc, "ListObjectsV2", "media/ab.webp", false),
            (None, "GetObject", "media/ab.webp", true),
            (None, "HeadObject", "media/ab.webp", true),
            (None, "GetObject", "uploads/7/a.jpg", false),
            (None, "PutObject", "media/ab.webp", false),
            (None, "GetObject", "media/", false),
        ];
        for (role, op, key, want) in cases {
            assert_eq!(allows(role, op, key), want, "{role:?} {op} {key}");
        }
    }

    #[test]
    fn a_key_that_could_climb_out_of_its_prefix_is_refused() {
        for key in [
            "uploads/../media/x.webp",
            "uploads/./7/a.jpg",
            "uploads//a.jpg",
            "/uploads/a.jpg",
            "uploads/a\\..\\b",
            "media/../uploads/7/a.jpg",
        ] {
            assert!(!allows(Some(Role::Uploader), "PutObject", key), "{key}");
            assert!(!allows(None, "GetObject", key), "{key}");
        }
    }

    #[test]
    fn the_keys_file_names_each_key_once_with_a_strong_secret() {
        let keys = Keys::parse(
            r#"
            [[key]]
            access_key = "edgeshop-uploader"
            secret_key = "0123456789abcdef0123"
            role = "uploader"
            [[key]]
            access_key = "edgeshop-processor"
            secret_key = "fedcba98765432100123"
            role = "processor"
            "#,
        )
        .unwrap();
        assert_eq!(keys.role("edgeshop-uploader"), Some(Role::Uploader));
        assert_eq!(keys.role("nobody"), None);
        let one = |access: &str, secret: &str, role: &str| {
            format!(
                "[[key]]\naccess_key = \"{access}\"\nsecret_key = \"{secret}\"\nrole = \"{role}\"\n"
            )
        };
        let weak = one("a-key", "short", "uploader");
        assert!(matches!(Keys::parse(&weak), Err(KeysError::WeakSecret(_))));
        let twice = one("a-key", "0123456789abcdef", "uploader").repeat(2);
        assert!(matches!(Keys::parse(&twice), Err(KeysError::Duplicate(_))));
        let admin = one("a-key", "0123456789abcdef", "admin");
        assert!(matches!(Keys::parse(&admin), Err(KeysError::Toml(_))));
        let name = one("a key", "0123456789abcdef", "uploader");
        assert!(matches!(Keys::parse(&name), Err(KeysError::AccessKey(_))));
    }
}
