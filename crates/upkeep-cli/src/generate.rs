//! `TOOL --generate KIND`: the tool's man page or a shell completion script,
//! generated from the same clap definitions that parse its flags (as
//! ripgrep's `rg --generate`), so they never drift from `--help`.

use std::ffi::OsString;
use std::io::Write;

use clap_complete::Shell;

/// What `--generate` accepts.
pub const KINDS: &[&str] = &[
    "man",
    "complete-bash",
    "complete-zsh",
    "complete-fish",
    "complete-elvish",
    "complete-powershell",
];

/// `Some(exit code)` when `argv` is `TOOL --generate KIND` (and the output
/// was written to `out`), `None` for every other command line.
pub(crate) fn generate(
    name: &str,
    argv: &[OsString],
    mut command: clap::Command,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> Option<u8> {
    if argv.get(1).map(|a| a.as_os_str()) != Some("--generate".as_ref()) {
        return None;
    }
    let kind = match argv {
        [_, _, kind] => kind.to_string_lossy().into_owned(),
        _ => {
            let _ = writeln!(
                err,
                "{name}: error: --generate takes one of {} and nothing else",
                KINDS.join(", ")
            );
            return Some(2);
        }
    };
    command = command
        .display_name(name.to_string())
        .bin_name(name.to_string());
    // Rendered into memory first: the completion generators panic when a
    // write fails (a closed pipe), and nothing half-written should reach `out`.
    let mut text = Vec::new();
    let rendered = match kind.as_str() {
        "man" => clap_mangen::Man::new(command).render(&mut text),
        other => {
            let shell = match other.strip_prefix("complete-") {
                Some("bash") => Shell::Bash,
                Some("zsh") => Shell::Zsh,
                Some("fish") => Shell::Fish,
                Some("elvish") => Shell::Elvish,
                Some("powershell") => Shell::PowerShell,
                _ => {
                    let _ = writeln!(
                        err,
                        "{name}: error: --generate {other:?}: expected one of {}",
                        KINDS.join(", ")
                    );
                    return Some(2);
                }
            };
            clap_complete::generate(shell, &mut command, name, &mut text);
            Ok(())
        }
    };
    match rendered
        .and_then(|()| out.write_all(&text))
        .and_then(|()| out.flush())
    {
        Ok(()) => Some(0),
        // `TOOL --generate man | head`: the reader had what it wanted.
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Some(0),
        Err(e) => {
            let _ = writeln!(err, "{name}: error: writing the {kind} output: {e}");
            Some(3)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::{CommandFactory, Parser, Subcommand};

    /// A tool with a subcommand.
    #[derive(Parser)]
    struct Tool {
        /// The thing.
        #[arg(long)]
        thing: Option<String>,
        #[command(subcommand)]
        cmd: Cmd,
    }
    #[derive(Subcommand)]
    enum Cmd {
        /// Runs it.
        Run,
    }

    fn gen_(args: &[&str]) -> (Option<u8>, String, String) {
        let argv: Vec<OsString> = args.iter().map(OsString::from).collect();
        let (mut out, mut err) = (Vec::new(), Vec::new());
        let code = generate("tool", &argv, Tool::command(), &mut out, &mut err);
        (
            code,
            String::from_utf8(out).unwrap(),
            String::from_utf8(err).unwrap(),
        )
    }

    #[test]
    fn man_page_and_completions_name_the_flags_and_subcommands() {
        let (code, man, _) = gen_(&["tool", "--generate", "man"]);
        assert_eq!(code, Some(0));
        assert!(man.contains(".TH tool"), "{man}");
        assert!(man.contains("\\-\\-thing") && man.contains("run"), "{man}");
        let (code, bash, _) = gen_(&["tool", "--generate", "complete-bash"]);
        assert_eq!(code, Some(0));
        assert!(
            bash.contains("--thing") && bash.contains("complete -F"),
            "{bash}"
        );
        for k in KINDS {
            assert_eq!(gen_(&["tool", "--generate", k]).0, Some(0), "{k}");
        }
    }

    #[test]
    fn other_command_lines_are_left_to_the_parser_and_bad_kinds_are_exit_2() {
        assert_eq!(gen_(&["tool", "run"]).0, None);
        assert_eq!(gen_(&["tool", "--thing", "--generate"]).0, None);
        let (code, out, err) = gen_(&["tool", "--generate", "complete-tcsh"]);
        assert_eq!(code, Some(2));
        assert!(out.is_empty());
        assert_eq!(err.lines().count(), 1);
        assert!(err.contains("complete-tcsh"), "{err}");
        assert_eq!(gen_(&["tool", "--generate"]).0, Some(2));
        assert_eq!(gen_(&["tool", "--generate", "man", "extra"]).0, Some(2));
    }
}
