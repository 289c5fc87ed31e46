//! Man pages and shell completions of every tool, from `TOOL --generate`:
//! each man page is a page of that tool naming its own flags, each bash and
//! zsh script is valid to the real shell (`bash -n`, `zsh -n` when zsh is
//! there), and `scripts/dist.sh` writes them all where packagers expect them.

use std::path::PathBuf;
use std::process::Command;

/// The tools a user runs (the simulators are test servers, with `--help` only).
const TOOLS: &[&str] = &[
    "upkeep",
    "detect-k3s",
    "detect-flux",
    "detect-longhorn",
    "detect-charts",
    "merge-report",
    "snapshot",
    "restore",
    "validate-flux",
    "validate-apps",
    "validate-storage",
    "validate-net",
    "apply-update",
];

fn bin(name: &str) -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let p = exe.parent().unwrap().parent().unwrap().join(name);
    assert!(
        p.exists(),
        "{} is not built: cargo build --workspace --bins",
        p.display()
    );
    p
}

fn generate(name: &str, kind: &str) -> String {
    let out = Command::new(bin(name))
        .args(["--generate", kind])
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{name} --generate {kind}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.stderr.is_empty(),
        "{name}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

fn shell_accepts(shell: &str, script: &str) -> Option<bool> {
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("completion");
    std::fs::write(&f, script).unwrap();
    let out = Command::new(shell).arg("-n").arg(&f).output().ok()?;
    Some(out.status.success())
}

#[test]
fn every_tool_has_a_man_page_and_completions_from_its_flags() {
    let mut checked = 0;
    for name in TOOLS {
        let help = String::from_utf8(
            Command::new(bin(name))
                .arg("--help")
                .output()
                .unwrap()
                .stdout,
        )
        .unwrap();
        let man = generate(name, "man");
        assert!(
            man.contains(&format!(".TH {name} 1")),
            "{name}: {}",
            &man[..man.len().min(200)]
        );
        // Every long flag --help shows is in the page (roff escapes the dashes).
        for flag in help
            .split_whitespace()
            .filter(|w| w.starts_with("--") && w.len() > 3)
        {
            let flag = flag
                .trim_end_matches([',', '.', ']', ')'])
                .split(['=', '[', '<'])
                .next()
                .unwrap();
            assert!(
                man.contains(&flag.replace('-', "\\-")),
                "{name}: {flag} missing from the man page"
            );
        }
        let bash = generate(name, "complete-bash");
        assert!(
            bash.contains(&format!("complete -F _{}", name.replace('-', "__"))),
            "{name}: {bash}"
        );
        assert_eq!(
            shell_accepts("bash", &bash),
            Some(true),
            "{name}: bash -n refused the completion"
        );
        let zsh = generate(name, "complete-zsh");
        assert!(zsh.starts_with(&format!("#compdef {name}")), "{name}");
        if let Some(ok) = shell_accepts("zsh", &zsh) {
            assert!(ok, "{name}: zsh -n refused the completion");
        }
        generate(name, "complete-fish");
        checked += 1;
    }
    assert_eq!(checked, TOOLS.len());
    // Subcommands of upkeep are in its page.
    let man = generate("upkeep", "man");
    for sub in [
        "scan", "plan", "run", "rollback", "history", "report", "notify", "metrics", "impact",
    ] {
        assert!(man.contains(sub), "upkeep man page lacks {sub}");
    }
}

#[test]
fn dist_script_writes_every_page_and_completion() {
    let dir = tempfile::tempdir().unwrap();
    let exe = std::env::current_exe().unwrap();
    let bin_dir = exe.parent().unwrap().parent().unwrap();
    let out = Command::new("bash")
        .arg(PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../scripts/dist.sh"))
        .arg(bin_dir)
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for name in TOOLS {
        for f in [
            format!("share/man/man1/{name}.1"),
            format!("share/bash-completion/completions/{name}"),
            format!("share/zsh/site-functions/_{name}"),
            format!("share/fish/vendor_completions.d/{name}.fish"),
        ] {
            let p = dir.path().join(&f);
            assert!(
                p.metadata().is_ok_and(|m| m.len() > 100),
                "{f} missing or empty"
            );
        }
    }
}
