//! The drop-in source: `c_embed_runtime.cpp`, the file a host that builds the
//! legacy library from source compiles in its place (included by build.rs,
//! which writes it as python/c_embed_runtime/c_embed_runtime.cpp.in; its
//! renderer, python/c_embed_runtime/_host_source.py, fills in the library's path).
//!
//! It declares every function of the header (parsed from cbindgen's output, so
//! it cannot miss one), each forwarding to the real library, which it opens at
//! its first call. It is valid C11 and C++17, needs no ONNX Runtime header and
//! calls no ONNX Runtime function: the host's `-l:<soname>` is dropped by the
//! linker's `--as-needed`, or, without it, loads the host's ONNX Runtime (found
//! then as "already loaded"). Either way no versioned ONNX Runtime symbol is
//! referenced, so a second profile's build never fails to load beside the first.

use crate::{env, error_strings};

/// One function of the header.
struct Prototype {
    /// As C spells it: `void *`, `const char *`, `int32_t`, ...
    returns: String,
    name: String,
    /// `(type, name)` each; empty for `(void)`.
    params: Vec<(String, String)>,
}

impl Prototype {
    fn takes_handle(&self) -> bool {
        self.params
            .first()
            .is_some_and(|(ty, name)| ty == "void *" && name == "handle")
    }

    /// Whether its forwarder opens the library when it is not open yet. Those
    /// that take a handle do not (without the library no handle exists), nor
    /// does `last_create_error` (reading an error changes nothing).
    fn opens_library(&self) -> bool {
        !self.takes_handle() && self.name != "c_embed_runtime_last_create_error"
    }

    fn param_list(&self) -> String {
        if self.params.is_empty() {
            return "void".to_owned();
        }
        let params: Vec<String> = self
            .params
            .iter()
            .map(|(ty, name)| join_type(ty, name))
            .collect();
        params.join(", ")
    }

    fn arguments(&self) -> String {
        let names: Vec<&str> = self.params.iter().map(|(_, name)| name.as_str()).collect();
        names.join(", ")
    }

    /// What the function answers when no library is loaded: what the library
    /// itself answers for a NULL handle (python/tests/test_host_build.py checks
    /// each against the library), or for `last_create_error` the reason.
    fn unloaded_answer(&self) -> Option<String> {
        let answer = match self.returns.as_str() {
            "void" => return None,
            "void *" => "NULL".to_owned(),
            "int32_t" | "int64_t" if self.name == "c_embed_runtime_tokenize" => "-1".to_owned(),
            "int32_t" | "int64_t" => "0".to_owned(),
            "const char *" => match self.name.as_str() {
                "c_embed_runtime_last_create_error" => "cer_error".to_owned(),
                "c_embed_runtime_selected_device" => literal(error_strings::INVALID_DEVICE),
                _ if self.takes_handle() => literal(error_strings::INVALID_HANDLE),
                _ => literal(""),
            },
            other => panic!("{}: no answer without the library for a {other}", self.name),
        };
        Some(answer)
    }
}

fn literal(text: &str) -> String {
    assert!(
        !text.contains(['"', '\\']),
        "{text}: a C string literal needs no escapes"
    );
    format!("\"{text}\"")
}

/// `const char *` + `name` -> `const char *name`; `int32_t` + `name` -> `int32_t name`.
fn join_type(ty: &str, name: &str) -> String {
    if ty.ends_with('*') {
        format!("{ty}{name}")
    } else {
        format!("{ty} {name}")
    }
}

/// The function prototypes of a cbindgen header: comments and preprocessor
/// lines dropped, then each `;`-ended declaration of a `c_embed_runtime_` name.
fn prototypes(header: &str) -> Vec<Prototype> {
    let mut code = String::new();
    let mut rest = header;
    while let Some(start) = rest.find("/*") {
        code.push_str(&rest[..start]);
        let end = rest[start..].find("*/").expect("comments are closed") + start + 2;
        rest = &rest[end..];
    }
    code.push_str(rest);
    let code: String = code
        .lines()
        .map(|line| line.split("//").next().unwrap_or(""))
        .filter(|line| !line.trim_start().starts_with('#'))
        .collect::<Vec<_>>()
        .join(" ");
    code.split(';')
        .map(|declaration| declaration.split_whitespace().collect::<Vec<_>>().join(" "))
        .filter_map(|declaration| {
            let declaration = declaration.rsplit(['{', '}']).next()?.trim().to_owned();
            let name_at = declaration.find("c_embed_runtime_")?;
            let open = declaration.find('(')?;
            let close = declaration.rfind(')')?;
            let name = declaration[name_at..open].trim().to_owned();
            let returns = declaration[..name_at].trim().to_owned();
            let params = declaration[open + 1..close]
                .split(',')
                .map(str::trim)
                .filter(|param| !param.is_empty() && *param != "void")
                .map(|param| {
                    let split = param
                        .rfind(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                        .expect("a parameter has a type and a name");
                    (
                        param[..=split].trim().to_owned(),
                        param[split + 1..].to_owned(),
                    )
                })
                .collect();
            Some(Prototype {
                returns,
                name,
                params,
            })
        })
        .collect()
}

/// The drop-in source for `header`, with `@C_EMBED_RUNTIME_LIBRARY@` where the
/// renderer puts the library's path as a C string literal.
pub fn generate(header: &str, version: &str, major: &str) -> String {
    let functions = prototypes(header);
    assert!(
        functions.iter().any(|f| f.name == "c_embed_runtime_create")
            && functions
                .iter()
                .any(|f| f.name == "c_embed_runtime_register_host_build"),
        "the header's prototypes were not found"
    );
    let mut table = String::new();
    let mut bind = String::new();
    let mut forwarders = String::new();
    for function in &functions {
        let field = &function.name["c_embed_runtime_".len()..];
        table.push_str(&format!(
            "    {}(*{field})({});\n",
            spaced(&function.returns),
            function.param_list()
        ));
        bind.push_str(&format!(
            "    cer_bind(library, \"{}\", &cer_storage.{field});\n",
            function.name
        ));
        let table_of = if function.opens_library() {
            "cer_load()"
        } else {
            "cer_current()"
        };
        let call = format!("t->{field}({})", function.arguments());
        let body = match function.unloaded_answer() {
            None => format!("    if (t && t->{field}) {{\n        {call};\n    }}\n"),
            Some(answer) => format!("    if (t && t->{field}) {{\n        return {call};\n    }}\n    return {answer};\n"),
        };
        forwarders.push_str(&format!(
            "{}{}({}) {{\n    const struct cer_table *t = {table_of};\n{body}}}\n\n",
            spaced(&function.returns),
            function.name,
            function.param_list()
        ));
    }
    TEMPLATE
        .replace("@VERSION@", version)
        .replace("@MAJOR@", major)
        .replace("@LIBRARY_ENV@", env::LIBRARY_ENV)
        .replace(
            "@COULD_NOT_LOAD@",
            error_strings::whole::COULD_NOT_LOAD_LIBRARY,
        )
        .replace("@TABLE@", table.trim_end())
        .replace("@BIND@", bind.trim_end())
        .replace("@FORWARDERS@", forwarders.trim_end())
}

/// `int32_t` -> `int32_t `; `void *` stays (the name follows the star).
fn spaced(returns: &str) -> String {
    if returns.ends_with('*') {
        returns.to_owned()
    } else {
        format!("{returns} ")
    }
}

const TEMPLATE: &str = r#"/*
 * c_embed_runtime.cpp: the drop-in source of c_embed_runtime @VERSION@, for hosts
 * that build the legacy libc_embed_runtime from source. Generated by the
 * project's build.rs from its header: do not edit; regenerate it instead
 * (make host-source, make install, or python -m c_embed_runtime host-source).
 *
 * Put it where the legacy source was (e.g. native/c_embed_runtime.cpp) and build
 * it with the host's own command line, for example
 *   g++ -O3 -fPIC -shared -std=c++17 c_embed_runtime.cpp -I <include> \
 *       -L <capi> -l:<soname> -Wl,-rpath,<capi> -o libc_embed_runtime.so
 * It is valid C++17 and C11, includes no ONNX Runtime header and calls no ONNX
 * Runtime function (on glibc older than 2.34, link -ldl unless the host has it).
 *
 * Every function forwards to the real libc_embed_runtime, opened at the first
 * call from $@LIBRARY_ENV@ when that is set, else from the path below.
 * The library then takes ONNX Runtime from, in order: $ORT_DYLIB_PATH; one
 * already loaded in the process; directories the process registered
 * (c_embed_runtime_register_onnxruntime_dir); the directories of this build's
 * -Wl,-rpath (the capi/ folder above); its own places. When the library cannot be opened
 * or is not c_embed_runtime @MAJOR@.x, create returns NULL and
 * c_embed_runtime_last_create_error says which file was tried, why it was
 * tried and why it failed; the getters give their invalid-handle answers.
 * Nothing is printed.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* dladdr */
#endif
#include <dlfcn.h>
#include <sched.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#ifdef __cplusplus
#define CER_THREAD_LOCAL thread_local
extern "C" {
#else
#define CER_THREAD_LOCAL _Thread_local
#endif

/* The library's path when $@LIBRARY_ENV@ is not set. */
#define CER_DEFAULT_LIBRARY @C_EMBED_RUNTIME_LIBRARY@
#define CER_LIBRARY_ENV "@LIBRARY_ENV@"
/* The library's version must start so (same major version). */
#define CER_VERSION_PREFIX "@MAJOR@."

/* The library's functions; NULL where it lacks one (an ids-only build has no
 * text functions): that function then answers as without the library. */
struct cer_table {
@TABLE@
};

static struct cer_table cer_storage;
/* &cer_storage once it is filled; never changes after (the library stays loaded). */
static const struct cer_table *cer_loaded;
static char cer_loading;
/* Why the library could not be opened, for this thread's last_create_error. */
static CER_THREAD_LOCAL char cer_error[2048];
/* An address inside this build, to find its file. */
static const char cer_anchor = 0;

/* Marks this file's builds, so that one is never taken for the library. */
const char *c_embed_runtime_drop_in_source_version(void) {
    return "@VERSION@";
}

static const struct cer_table *cer_current(void) {
    return __atomic_load_n(&cer_loaded, __ATOMIC_ACQUIRE);
}

static void cer_bind(void *library, const char *name, void *slot) {
    void *symbol = dlsym(library, name);
    memcpy(slot, &symbol, sizeof symbol); /* a function pointer, as POSIX allows */
}

static const struct cer_table *cer_fail(void *library, const char *path, const char *where,
                                        const char *why, const char *detail) {
    snprintf(cer_error, sizeof cer_error, "@COULD_NOT_LOAD@ %s (%s): %s%s", path, where, why,
             detail ? detail : "");
    if (library) {
        dlclose(library);
    }
    return NULL;
}

/* Opens the library and fills the table; NULL after recording why not. */
static const struct cer_table *cer_open(void) {
    const char *path = getenv(CER_LIBRARY_ENV);
    const char *where = "$" CER_LIBRARY_ENV;
    Dl_info own, found;
    void *library, *version, *marker;
    const char *(*version_of)(void);
    if (!path || !*path) {
        path = CER_DEFAULT_LIBRARY;
        where = "the path generated into this drop-in source; set $" CER_LIBRARY_ENV " to use another";
    }
    library = dlopen(path, RTLD_NOW | RTLD_LOCAL);
    if (!library) {
        const char *why = dlerror();
        return cer_fail(NULL, path, where, why ? why : "dlopen failed", NULL);
    }
    version = dlsym(library, "c_embed_runtime_version");
    marker = dlsym(library, "c_embed_runtime_drop_in_source_version");
    if (marker || !dladdr(&cer_anchor, &own) ||
        (version && dladdr(version, &found) && found.dli_fbase == own.dli_fbase)) {
        return cer_fail(library, path, where, "it is a build of this drop-in source, not the library", NULL);
    }
    if (!version || !dlsym(library, "c_embed_runtime_register_host_build")) {
        return cer_fail(library, path, where,
                        "it is not c_embed_runtime (no c_embed_runtime_version or "
                        "c_embed_runtime_register_host_build: the legacy library?)", NULL);
    }
    memcpy(&version_of, &version, sizeof version);
    if (strncmp(version_of(), CER_VERSION_PREFIX, strlen(CER_VERSION_PREFIX)) != 0) {
        return cer_fail(library, path, where, "this drop-in source needs c_embed_runtime @MAJOR@.x, not ",
                        version_of());
    }
@BIND@
    cer_storage.register_host_build(own.dli_fname);
    return &cer_storage;
}

/* The table, opening the library at the first call (again after a failure). */
static const struct cer_table *cer_load(void) {
    const struct cer_table *loaded = cer_current();
    if (loaded) {
        return loaded;
    }
    while (__atomic_test_and_set(&cer_loading, __ATOMIC_ACQUIRE)) {
        sched_yield();
    }
    loaded = cer_current();
    if (!loaded) {
        loaded = cer_open();
        __atomic_store_n(&cer_loaded, loaded, __ATOMIC_RELEASE);
    }
    __atomic_clear(&cer_loading, __ATOMIC_RELEASE);
    return loaded;
}

@FORWARDERS@

#ifdef __cplusplus
} /* extern "C" */
#endif
"#;
