//! Generates include/c_embed_runtime.h from the exported functions with cbindgen.
//! The header is committed; `make check-header` verifies it is up to date.

use std::path::PathBuf;

fn main() {
    let crate_dir = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").expect("set by cargo"));
    println!("cargo:rerun-if-changed=src/ffi");
    // The soname carries the major version, as C hosts expect of a native
    // library (`make install` adds the libc_embed_runtime.so link legacy hosts load).
    let major = std::env::var("CARGO_PKG_VERSION_MAJOR").expect("set by cargo");
    println!("cargo:rustc-cdylib-link-arg=-Wl,-soname,libc_embed_runtime.so.{major}");
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
