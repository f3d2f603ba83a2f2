//! The fuzz targets on stable, in every `cargo test`: each committed seed
//! (`fuzz/seeds/<target>/`), each input a fuzzing run found crashing
//! (`fuzz/regressions/<target>/`, kept once fixed), and a bounded number of mutations of
//! the seeds (bit flips, cuts, repeats, splices; the same ones every run). Coverage-guided
//! fuzzing is `scripts/fuzz.sh`; this keeps what it found from coming back.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};

/// Mutations of each seed per run.
const MUTATIONS: usize = 150;

fn fuzz_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz")
}

/// The files of `dir/<target>/`, sorted (none when the folder does not exist).
fn inputs(dir: &str, target: &str) -> Vec<PathBuf> {
    let Ok(rd) = std::fs::read_dir(fuzz_dir().join(dir).join(target)) else { return Vec::new() };
    let mut v: Vec<PathBuf> = rd.filter_map(|e| Some(e.ok()?.path())).filter(|p| p.is_file()).collect();
    v.sort();
    v
}

/// Run `t` on `data`; the panic's message if it panicked.
fn run(t: qmoi_fuzz::Target, data: &[u8]) -> Option<String> {
    catch_unwind(AssertUnwindSafe(|| t(data))).err().map(|p| {
        p.downcast_ref::<String>()
            .cloned()
            .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
            .unwrap_or_default()
    })
}

/// xorshift64*: the same mutations every run.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, n: usize) -> usize {
        if n == 0 { 0 } else { (self.next() % n as u64) as usize }
    }
}

fn mutate(seed: &[u8], other: &[u8], rng: &mut Rng) -> Vec<u8> {
    let mut d = seed.to_vec();
    for _ in 0..1 + rng.below(4) {
        match rng.below(7) {
            0 if !d.is_empty() => {
                let i = rng.below(d.len());
                d[i] ^= 1 << rng.below(8);
            }
            1 if !d.is_empty() => {
                let i = rng.below(d.len());
                d[i] = [0, 0xff, b'"', b'\n', b'%', b'{', b'9', 0x80][rng.below(8)];
            }
            2 => d.truncate(rng.below(d.len() + 1)),
            3 if !d.is_empty() => {
                // Repeat a slice: long lines, deep nesting, big numbers.
                let a = rng.below(d.len());
                let b = (a + 1 + rng.below(64)).min(d.len());
                let piece = d[a..b].to_vec();
                for _ in 0..1 + rng.below(50) {
                    d.splice(a..a, piece.iter().copied());
                }
            }
            4 if !other.is_empty() => {
                // Splice in part of another seed of the target.
                let a = rng.below(other.len());
                let b = (a + rng.below(other.len() - a + 1)).min(other.len());
                let at = rng.below(d.len() + 1);
                d.splice(at..at, other[a..b].iter().copied());
            }
            5 if !d.is_empty() => {
                let i = rng.below(d.len());
                d.remove(i);
            }
            _ => {
                let at = rng.below(d.len() + 1);
                d.insert(at, (rng.next() & 0xff) as u8);
            }
        }
    }
    d
}

#[test]
fn every_folder_names_a_target_and_every_target_has_seeds() {
    let known: Vec<&str> = qmoi_fuzz::TARGETS.iter().map(|(n, _)| *n).collect();
    for dir in ["seeds", "regressions"] {
        let Ok(rd) = std::fs::read_dir(fuzz_dir().join(dir)) else { continue };
        for e in rd.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            assert!(known.contains(&name.as_str()), "fuzz/{dir}/{name} is not a target (targets: {known:?})");
        }
    }
    for t in &known {
        assert!(!inputs("seeds", t).is_empty(), "fuzz/seeds/{t}/ has no seed");
        let bin = fuzz_dir().join("fuzz_targets").join(format!("{t}.rs"));
        assert!(bin.is_file(), "{} is missing: cargo fuzz would not know the target", bin.display());
    }
}

#[test]
fn seeds_regressions_and_their_mutations_never_panic() {
    // The panics are collected and listed at the end, not printed as they happen.
    std::panic::set_hook(Box::new(|_| {}));
    let mut failures = Vec::new();
    let mut runs = 0usize;
    for (name, t) in qmoi_fuzz::TARGETS {
        let seeds: Vec<Vec<u8>> = inputs("seeds", name).iter().map(|p| std::fs::read(p).unwrap()).collect();
        for p in inputs("seeds", name).into_iter().chain(inputs("regressions", name)) {
            runs += 1;
            if let Some(msg) = run(*t, &std::fs::read(&p).unwrap()) {
                failures.push(format!("{name}: {}: {msg}", p.display()));
            }
        }
        let mut rng = Rng(0x9E37_79B9_7F4A_7C15 ^ name.len() as u64);
        for (i, s) in seeds.iter().enumerate() {
            let other = &seeds[(i + 1) % seeds.len()];
            for _ in 0..MUTATIONS {
                let d = mutate(s, other, &mut rng);
                runs += 1;
                if let Some(msg) = run(*t, &d) {
                    // Kept where `cargo test` can be pointed at it again.
                    let out = std::env::temp_dir().join(format!("qmoi-fuzz-{name}-{}", failures.len()));
                    let _ = std::fs::write(&out, &d);
                    failures.push(format!("{name}: a mutation of seed {i} (saved as {}): {msg}", out.display()));
                }
            }
        }
    }
    eprintln!("{runs} inputs run");
    assert!(failures.is_empty(), "{} inputs panicked:\n{}", failures.len(), failures.join("\n"));
}
