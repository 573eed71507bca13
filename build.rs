//! Generates include/c_embed_runtime.h from the exported functions with cbindgen.
//! The header is committed; `make check-header` verifies it is up to date.

use std::path::PathBuf;

fn main() {
    let crate_dir = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").expect("set by cargo"));
    println!("cargo:rerun-if-changed=src/ffi");
    println!("cargo:rerun-if-changed=cbindgen.toml");
    let config = cbindgen::Config::from_file(crate_dir.join("cbindgen.toml"))
        .expect("cbindgen.toml is valid");
    let bindings = match cbindgen::Builder::new()
        .with_crate(&crate_dir)
        .with_config(config)
        .generate()
    {
        Ok(bindings) => bindings,
        Err(e) => panic!("cbindgen could not generate the header: {e}"),
    };
    // write_to_file leaves the file untouched when the content is unchanged.
    bindings.write_to_file(crate_dir.join("include/c_embed_runtime.h"));
}
