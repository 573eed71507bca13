//! Rules of the source tree, checked: the layers of src/ (lib.rs lists them;
//! a module names only the layers below its own, so there is no import cycle
//! between them), and every environment variable named through `crate::env`.

use std::path::{Path, PathBuf};

/// Each layer, top down, and the crate modules it is made of.
const LAYERS: &[(&str, &[&str])] = &[
    ("ffi", &["ffi"]),
    ("text", &["text"]),
    ("run", &["run"]),
    ("ort", &["ort"]),
    ("model", &["model"]),
    (
        "base",
        &[
            "tokens",
            "postprocess",
            "panics",
            "error",
            "error_strings",
            "env",
            "alloc_counter",
        ],
    ),
];

fn layer_of(module: &str) -> usize {
    LAYERS
        .iter()
        .position(|(_, modules)| modules.contains(&module))
        .unwrap_or_else(|| panic!("module `{module}` is in no layer of tests/source_rules.rs"))
}

fn sources(dir: &Path, found: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            sources(&path, found);
        } else if path.extension().is_some_and(|e| e == "rs") {
            found.push(path);
        }
    }
}

/// The crate module a source file belongs to (`src/run/x.rs` -> `run`).
fn module_of(src: &Path, file: &Path) -> Option<String> {
    let first = file.strip_prefix(src).ok()?.components().next()?;
    let name = first.as_os_str().to_str()?;
    Some(name.trim_end_matches(".rs").to_owned())
}

#[test]
fn no_module_names_a_layer_above_its_own() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    sources(&src, &mut files);
    let mut checked = 0;
    for file in &files {
        let Some(module) = module_of(&src, file).filter(|m| m != "lib") else {
            continue;
        };
        let own = layer_of(&module);
        let text = std::fs::read_to_string(file).unwrap();
        for line in text.lines().filter(|l| !l.trim_start().starts_with("//")) {
            for (at, _) in line.match_indices("crate::") {
                let named: String = line[at + 7..]
                    .chars()
                    .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                    .collect();
                if named.is_empty() || named == module {
                    continue;
                }
                checked += 1;
                assert!(
                    layer_of(&named) > own || (own == LAYERS.len() - 1 && layer_of(&named) == own),
                    "{}: `{module}` names `crate::{named}`, a layer not below its own",
                    file.display()
                );
            }
        }
    }
    assert!(
        checked > 50,
        "only {checked} crate paths seen: is the scan broken?"
    );
}

#[test]
fn no_file_but_env_rs_spells_a_variable() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    sources(&src, &mut files);
    for file in files.iter().filter(|f| !f.ends_with("env.rs")) {
        let text = std::fs::read_to_string(file).unwrap();
        for name in c_embed_runtime::env::ALL {
            assert!(
                !text.contains(&format!("\"{name}\"")),
                "{} spells \"{name}\": name it as crate::env does",
                file.display()
            );
        }
    }
}
