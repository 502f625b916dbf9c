//! `certs-gen files`: writes `ca.crt`, `tls.crt` and `tls.key` into a directory.

use std::io::Write;
use std::path::{Path, PathBuf};

use crate::cert::Bundle;
use crate::{Error, Outcome};

/// Name of the CA certificate file.
pub const CA_CRT: &str = "ca.crt";
/// Name of the serving certificate file.
pub const TLS_CRT: &str = "tls.crt";
/// Name of the serving key file.
pub const TLS_KEY: &str = "tls.key";

/// Writes `bundle` into `dir` (created if missing). Existing files are an error unless `force`,
/// checked for all three before anything is written so a refusal leaves the directory as it was.
/// Each file is written to a temporary name and renamed, so a reader never sees half a key, and
/// the key is created with mode 0600 rather than narrowed afterwards.
pub fn write_bundle(
    dir: &Path,
    bundle: &Bundle,
    force: bool,
) -> Result<Vec<(Outcome, PathBuf)>, Error> {
    let outputs = [
        (CA_CRT, bundle.ca_pem.as_str(), 0o644),
        (TLS_CRT, bundle.cert_pem.as_str(), 0o644),
        (TLS_KEY, bundle.key_pem.as_str(), 0o600),
    ];
    let existing: Vec<PathBuf> = outputs
        .iter()
        .map(|(name, _, _)| dir.join(name))
        .filter(|path| path.symlink_metadata().is_ok())
        .collect();
    if !existing.is_empty() && !force {
        return Err(Error::FilesExist(existing));
    }
    std::fs::create_dir_all(dir).map_err(|source| Error::Io {
        path: dir.to_owned(),
        source,
    })?;
    let mut done = Vec::with_capacity(outputs.len());
    for (name, contents, mode) in outputs {
        let path = dir.join(name);
        write_atomically(&path, contents.as_bytes(), mode)?;
        let outcome = if existing.contains(&path) {
            Outcome::Rotated
        } else {
            Outcome::Created
        };
        done.push((outcome, path));
    }
    Ok(done)
}

fn write_atomically(path: &Path, contents: &[u8], mode: u32) -> Result<(), Error> {
    let io = |source| Error::Io {
        path: path.to_owned(),
        source,
    };
    let file_name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = path.with_file_name(format!(".{file_name}.{}.tmp", std::process::id()));
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(mode);
    }
    #[cfg(not(unix))]
    let _ = mode;
    let result = options.open(&tmp).and_then(|mut file| {
        file.write_all(contents)?;
        file.sync_all()
    });
    if let Err(e) = result.and_then(|()| std::fs::rename(&tmp, path)) {
        let _ = std::fs::remove_file(&tmp);
        return Err(io(e));
    }
    Ok(())
}
