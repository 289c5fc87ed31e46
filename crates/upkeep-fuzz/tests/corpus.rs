//! Every input under fuzz/corpus/TARGET/ and fuzz/regressions/TARGET/ through
//! its target: what fuzzing found once stays fixed, on the stable toolchain,
//! in the normal test run. Prints how many inputs each target took.

use std::path::PathBuf;

#[test]
fn every_corpus_and_regression_input_passes_its_target() {
    let fuzz = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../fuzz");
    let mut total = 0;
    for (name, target) in upkeep_fuzz::TARGETS {
        let mut n = 0;
        for kind in ["corpus", "regressions"] {
            let dir = fuzz.join(kind).join(name);
            let Ok(entries) = std::fs::read_dir(&dir) else {
                continue;
            };
            for e in entries {
                let p = e.unwrap().path();
                let data = std::fs::read(&p).unwrap();
                let r = std::panic::catch_unwind(|| target(&data));
                assert!(r.is_ok(), "{name}: {} fails", p.display());
                n += 1;
            }
        }
        assert!(n > 0, "fuzz/corpus/{name} is empty");
        eprintln!("{name}: {n} inputs");
        total += n;
    }
    eprintln!("fuzz corpus: {total} inputs, 0 failures");
}
