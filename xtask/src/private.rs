//! Owner-only files and directories for what `cargo xtask` keeps in the
//! state directory: secrets, databases, topology. Whatever the umask, the
//! state directory is 0700 and every secret 0600, and a checkout whose
//! files were made looser by an earlier version is tightened on the next
//! run.

use anyhow::{Context, Result};
use std::path::Path;

/// Creates `dir` (and missing parents) owner-only; tightens it if it
/// already exists.
pub fn dir(dir: &Path) -> Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .with_context(|| format!("creating {}", dir.display()))?;
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
            .with_context(|| format!("making {} owner-only", dir.display()))?;
    }
    #[cfg(not(unix))]
    std::fs::create_dir_all(dir)?;
    Ok(())
}

/// Writes `bytes` to `path` owner-only, through a temporary file created
/// 0600 and renamed, so no reader ever sees the secret readable by others
/// or half written.
pub fn write(path: &Path, bytes: &[u8]) -> Result<()> {
    use std::io::Write;
    let tmp = path.with_extension("tmp");
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let _ = std::fs::remove_file(&tmp);
    let mut file = options
        .open(&tmp)
        .with_context(|| format!("creating {}", tmp.display()))?;
    file.write_all(bytes)?;
    file.sync_all()?;
    std::fs::rename(&tmp, path).with_context(|| format!("writing {}", path.display()))?;
    Ok(())
}

/// Makes the state directory owner-only, and its `secrets` directory and
/// every file in it, as they may have been written with the default umask.
pub fn tighten(state: &Path) -> Result<()> {
    dir(state)?;
    let secrets = state.join("secrets");
    if secrets.is_dir() {
        dir(&secrets)?;
        #[cfg(unix)]
        for entry in std::fs::read_dir(&secrets)? {
            use std::os::unix::fs::PermissionsExt;
            let path = entry?.path();
            if path.is_file() {
                std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600))
                    .with_context(|| format!("making {} owner-only", path.display()))?;
            }
        }
    }
    Ok(())
}

#[cfg(all(test, unix))]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn mode(path: &Path) -> u32 {
        std::fs::metadata(path).unwrap().permissions().mode() & 0o777
    }

    #[test]
    fn secrets_are_owner_only_whatever_they_were() {
        let root = std::env::temp_dir().join(format!("xtask-private-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        let state = root.join("state");
        // As an earlier version left them: world-readable.
        std::fs::create_dir_all(state.join("secrets")).unwrap();
        std::fs::write(state.join("secrets/edge_token"), "old").unwrap();
        for p in [
            &state,
            &state.join("secrets"),
            &state.join("secrets/edge_token"),
        ] {
            std::fs::set_permissions(p, std::fs::Permissions::from_mode(0o755)).unwrap();
        }
        tighten(&state).unwrap();
        assert_eq!(mode(&state), 0o700);
        assert_eq!(mode(&state.join("secrets")), 0o700);
        assert_eq!(mode(&state.join("secrets/edge_token")), 0o600);

        write(&state.join("secrets/new"), b"s3cret").unwrap();
        assert_eq!(mode(&state.join("secrets/new")), 0o600);
        assert_eq!(std::fs::read(state.join("secrets/new")).unwrap(), b"s3cret");
        dir(&root.join("fresh/deeper")).unwrap();
        assert_eq!(mode(&root.join("fresh/deeper")), 0o700);
        std::fs::remove_dir_all(&root).unwrap();
    }
}
