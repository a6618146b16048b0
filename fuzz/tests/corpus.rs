//! The fuzz targets' checks without a fuzzer: every committed corpus input
//! and every input that once crashed a target (`fuzz/regressions/TARGET/`,
//! kept for good) passes its target's checks, and so does every seed the
//! current code makes, so a message a node sends always decodes back to
//! itself.

use std::path::Path;

use quorra_fuzz::TARGETS;

fn inputs(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut files: Vec<_> = entries
        .map(|e| e.expect("a readable directory").path())
        .filter(|p| p.is_file())
        .collect();
    files.sort();
    files
        .into_iter()
        .map(|p| {
            (
                p.display().to_string(),
                std::fs::read(&p).expect("readable"),
            )
        })
        .collect()
}

#[test]
fn every_committed_input_passes_its_targets_checks() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    for (name, check) in TARGETS {
        let corpus = inputs(&root.join("corpus").join(name));
        assert!(!corpus.is_empty(), "no committed corpus for {name}");
        for (path, bytes) in corpus
            .iter()
            .chain(&inputs(&root.join("regressions").join(name)))
        {
            eprintln!("{name}: {path}");
            check(bytes);
        }
    }
}

#[test]
fn every_seed_the_code_makes_passes_its_targets_checks() {
    let seeds = quorra_fuzz::seeds::seeds();
    for (name, _) in TARGETS {
        let count = seeds.iter().filter(|(t, _)| t == name).count();
        assert!(count > 0, "no seed for {name}");
    }
    for (name, bytes) in &seeds {
        let (_, check) = TARGETS.iter().find(|(t, _)| t == name).expect("a target");
        check(bytes);
    }
}
