//! Writes the seed corpus (see `quorra_fuzz::seeds`) to `fuzz/corpus/`,
//! one file per seed named by its content's hash, as libFuzzer names the
//! inputs it keeps. Run it after a wire or storage format changes.

// A tool's report is its output.
#![allow(clippy::print_stdout)]

use std::path::Path;

fn main() -> std::io::Result<()> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("corpus");
    let mut written = 0;
    for (target, bytes) in quorra_fuzz::seeds::seeds() {
        let dir = root.join(target);
        std::fs::create_dir_all(&dir)?;
        let name = blake3::hash(&bytes).to_hex()[..16].to_string();
        std::fs::write(dir.join(format!("seed-{name}")), &bytes)?;
        written += 1;
    }
    println!("{written} seeds written under {}", root.display());
    Ok(())
}
