//! age encryption of the sensitive parts: to X25519 recipients (`age1...`),
//! in memory, before anything touches disk.

use std::io::{Read, Write};
use std::path::Path;
use std::str::FromStr;

use crate::SnapshotError;

/// The public keys secrets are encrypted to.
#[derive(Clone, Default)]
pub struct Recipients {
    keys: Vec<age::x25519::Recipient>,
    text: Vec<String>,
}

impl Recipients {
    /// Parses `age1...` public keys; a bad one is named by its position.
    pub fn parse(keys: &[String]) -> Result<Recipients, SnapshotError> {
        let mut out = Recipients::default();
        for (i, k) in keys.iter().enumerate() {
            let k = k.trim();
            let key = age::x25519::Recipient::from_str(k).map_err(|e| {
                SnapshotError::input(
                    format!("--age-recipient #{}", i + 1),
                    format!("not an age public key (age1...): {e}"),
                )
            })?;
            out.keys.push(key);
            out.text.push(k.to_string());
        }
        Ok(out)
    }

    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    pub fn as_strings(&self) -> &[String] {
        &self.text
    }

    pub(crate) fn encrypt(&self, plain: &[u8]) -> Result<Vec<u8>, SnapshotError> {
        let failed = |e: String| SnapshotError::input("age encryption", e);
        let enc =
            age::Encryptor::with_recipients(self.keys.iter().map(|k| k as &dyn age::Recipient))
                .map_err(|e| failed(e.to_string()))?;
        let mut out = Vec::with_capacity(plain.len() + 256);
        let mut w = enc
            .wrap_output(&mut out)
            .map_err(|e| failed(e.to_string()))?;
        w.write_all(plain).map_err(|e| failed(e.to_string()))?;
        w.finish().map_err(|e| failed(e.to_string()))?;
        Ok(out)
    }
}

/// The private keys to open the encrypted parts with: an age identity
/// file as `age-keygen` writes it (`AGE-SECRET-KEY-1...` lines, `#`
/// comments).
#[derive(Clone)]
pub struct Identity {
    keys: Vec<age::x25519::Identity>,
}

impl Identity {
    pub fn from_file(path: &Path) -> Result<Identity, SnapshotError> {
        let what = || path.display().to_string();
        let text = std::fs::read_to_string(path)
            .map_err(|e| SnapshotError::input(what(), format!("cannot read: {e}")))?;
        Identity::parse(&text).map_err(|m| SnapshotError::input(what(), m))
    }

    fn parse(text: &str) -> Result<Identity, String> {
        let mut keys = Vec::new();
        for (i, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            // Never echo the line: it is a secret key.
            let key = age::x25519::Identity::from_str(line).map_err(|_| {
                format!(
                    "line {}: not an age secret key (AGE-SECRET-KEY-1...)",
                    i + 1
                )
            })?;
            keys.push(key);
        }
        if keys.is_empty() {
            return Err("no age secret key in the file".to_string());
        }
        Ok(Identity { keys })
    }

    pub(crate) fn decrypt(&self, path: &str, bytes: &[u8]) -> Result<Vec<u8>, SnapshotError> {
        let bad = |m: String| SnapshotError::corrupt(path, m);
        let dec = age::Decryptor::new_buffered(bytes).map_err(|e| bad(e.to_string()))?;
        let mut r = dec
            .decrypt(self.keys.iter().map(|k| k as &dyn age::Identity))
            .map_err(|e| match e {
                age::DecryptError::NoMatchingKeys => SnapshotError::input(
                    path,
                    "the --age-identity key is not one this part was encrypted to",
                ),
                e => bad(format!("cannot decrypt: {e}")),
            })?;
        let mut out = Vec::new();
        r.read_to_end(&mut out)
            .map_err(|e| bad(format!("cannot decrypt: {e}")))?;
        Ok(out)
    }
}

/// Writes a new identity to `path` (created 0600, never overwritten) and
/// returns its public key, for users without the age tools.
pub fn keygen(path: &Path) -> Result<String, SnapshotError> {
    use age::secrecy::ExposeSecret;
    use std::os::unix::fs::OpenOptionsExt;
    let id = age::x25519::Identity::generate();
    let public = id.to_public().to_string();
    let text = format!(
        "# created by upkeep snapshot keygen\n# public key: {public}\n{}\n",
        id.to_string().expose_secret()
    );
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(|e| {
            SnapshotError::input(path.display().to_string(), format!("cannot create: {e}"))
        })?;
    f.write_all(text.as_bytes())
        .and_then(|()| f.sync_all())
        .map_err(|e| SnapshotError::io(path, e))?;
    Ok(public)
}

#[cfg(test)]
pub(crate) fn test_key() -> (Recipients, Identity, String) {
    use age::secrecy::ExposeSecret;
    let id = age::x25519::Identity::generate();
    let public = id.to_public().to_string();
    let secret = id.to_string().expose_secret().to_string();
    let recipients = Recipients::parse(std::slice::from_ref(&public)).unwrap();
    let identity = Identity::parse(&format!(
        "# created: now\n# public key: {public}\n{secret}\n"
    ))
    .unwrap();
    (recipients, identity, secret)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_wrong_key() {
        let (r, id, _) = test_key();
        let sealed = r.encrypt(b"hunter2").unwrap();
        assert!(!sealed.windows(7).any(|w| w == b"hunter2"));
        assert_eq!(id.decrypt("s", &sealed).unwrap(), b"hunter2");
        let (_, other, _) = test_key();
        let e = other.decrypt("s", &sealed).unwrap_err();
        assert!(e.is_input(), "{e}");
        let mut broken = sealed.clone();
        let n = broken.len();
        broken[n - 3] ^= 1;
        assert!(id.decrypt("s", &broken).unwrap_err().is_corrupt());
    }

    #[test]
    fn keygen_writes_a_private_identity_that_opens_what_its_key_seals() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("key.txt");
        let public = keygen(&path).unwrap();
        assert!(public.starts_with("age1"));
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let sealed = Recipients::parse(&[public]).unwrap().encrypt(b"x").unwrap();
        assert_eq!(
            Identity::from_file(&path)
                .unwrap()
                .decrypt("p", &sealed)
                .unwrap(),
            b"x"
        );
        // Never overwritten.
        assert!(keygen(&path).unwrap_err().is_input());
    }

    #[test]
    fn bad_keys_are_named_not_echoed() {
        let e = Recipients::parse(&["age1qqq".to_string()]).err().unwrap();
        assert!(e.to_string().starts_with("--age-recipient #1: "), "{e}");
        let e = Identity::parse("# c\nAGE-SECRET-KEY-1NOTAKEY\n")
            .err()
            .unwrap();
        assert_eq!(e, "line 2: not an age secret key (AGE-SECRET-KEY-1...)");
        assert!(Identity::parse("# only comments\n").is_err());
    }
}
