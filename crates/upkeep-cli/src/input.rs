use std::io::{IsTerminal, Read};
use std::path::{Path, PathBuf};

use crate::CliError;

/// Largest input read from one file or stdin. Documents are small; this
/// only stops a runaway pipe from eating the machine.
pub const INPUT_LIMIT_BYTES: u64 = 256 * 1024 * 1024;

/// Reads each named file (`-` is stdin), or stdin when none is named.
/// Returns `(name, bytes)` pairs; `name` is what error messages call it.
pub fn read_inputs(paths: &[PathBuf]) -> Result<Vec<(String, Vec<u8>)>, CliError> {
    if paths.is_empty() {
        // Waiting silently on a terminal looks like a hang.
        if std::io::stdin().is_terminal() {
            return Err(CliError::usage(
                "no input: pipe documents in or name files (- is stdin)",
            ));
        }
        return Ok(vec![("stdin".to_string(), read_stdin()?)]);
    }
    paths
        .iter()
        .map(|p| {
            if p.as_os_str() == "-" {
                return Ok(("stdin".to_string(), read_stdin()?));
            }
            let name = p.display().to_string();
            let file = std::fs::File::open(p).map_err(|e| match e.kind() {
                std::io::ErrorKind::NotFound => CliError::usage(format!("{name}: no such file")),
                std::io::ErrorKind::PermissionDenied => {
                    CliError::environment(format!("{name}: permission denied"))
                }
                _ => CliError::usage(format!("{name}: {e}")),
            })?;
            Ok((name.clone(), read_limited(file, &name)?))
        })
        .collect()
}

fn read_stdin() -> Result<Vec<u8>, CliError> {
    read_limited(std::io::stdin().lock(), "stdin")
}

fn read_limited(r: impl Read, name: &str) -> Result<Vec<u8>, CliError> {
    let mut buf = Vec::new();
    r.take(INPUT_LIMIT_BYTES + 1)
        .read_to_end(&mut buf)
        .map_err(|e| CliError::usage(format!("{name}: cannot read: {e}")))?;
    if buf.len() as u64 > INPUT_LIMIT_BYTES {
        return Err(CliError::usage(format!(
            "{name}: input larger than {} MiB",
            INPUT_LIMIT_BYTES / (1024 * 1024)
        )));
    }
    Ok(buf)
}

/// Reads exactly one document of kind `T` from the file a flag names (`-`
/// is stdin): `--plan`, `--baseline`, `--rollback`. Every error names the
/// flag, the input and what was wrong.
pub fn read_document<T: upkeep_contract::DocumentKind>(
    path: &Path,
    flag: &str,
) -> Result<T, CliError> {
    let (name, bytes) = read_inputs(&[path.to_path_buf()])
        .map_err(|e| e.prefixed(flag))?
        .remove(0);
    let mut docs = upkeep_contract::read_kind::<T>(&bytes, &name)
        .map_err(|e| CliError::usage(format!("{flag}: {e}")))?;
    match docs.len() {
        1 => Ok(docs.remove(0)),
        n => Err(CliError::usage(format!(
            "{flag} {name}: expected one {}, found {n}",
            T::KIND
        ))),
    }
}
