//! The snapshot CLI tests' helpers: the shared sim harness, age keys, and
//! reading an archive back.

#![allow(dead_code)]

#[path = "sim.rs"]
mod sim;

use std::path::{Path, PathBuf};

pub use sim::*;

/// A fresh age key pair: the public key and an identity file holding the secret one.
pub fn age_key(dir: &Path, name: &str) -> (String, PathBuf) {
    use age::secrecy::ExposeSecret;
    let id = age::x25519::Identity::generate();
    let path = dir.join(name);
    std::fs::write(
        &path,
        format!(
            "# public key: {}\n{}\n",
            id.to_public(),
            id.to_string().expose_secret()
        ),
    )
    .unwrap();
    (id.to_public().to_string(), path)
}

/// The decompressed bytes of a .tar.zst, to look for plain text in.
pub fn unzstd(path: &Path) -> Vec<u8> {
    zstd::decode_all(std::fs::File::open(path).unwrap()).unwrap()
}
