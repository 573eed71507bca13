//! Questions to the dynamic loader about this process: which shared objects are
//! loaded, which file holds an address (and so where this library is), and
//! which directories a loaded object's own `-rpath` adds to the library search
//! (where its build pointed the linker).

use std::ffi::{c_char, c_int, c_uint, c_void, CStr, CString, OsStr};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

/// The file of every shared object loaded in the process, in load order (the
/// main program and the loader's own nameless entries left out).
pub(crate) fn loaded_objects() -> Vec<PathBuf> {
    unsafe extern "C" fn visit(
        info: *mut libc::dl_phdr_info,
        _size: usize,
        data: *mut c_void,
    ) -> c_int {
        // SAFETY: `data` is the `Vec<PathBuf>` passed to dl_iterate_phdr below,
        // borrowed for its duration; `info` is the loader's valid entry for this call.
        let (found, info) = unsafe { (&mut *(data as *mut Vec<PathBuf>), &*info) };
        if !info.dlpi_name.is_null() {
            // SAFETY: a non-NULL dlpi_name is a NUL-terminated path owned by the
            // loader, valid during the callback; it is copied at once.
            let name = unsafe { CStr::from_ptr(info.dlpi_name) };
            if !name.is_empty() {
                found.push(PathBuf::from(OsStr::from_bytes(name.to_bytes())));
            }
        }
        0
    }
    let mut found: Vec<PathBuf> = Vec::new();
    // SAFETY: `visit` matches the callback type and only touches `found`, which
    // outlives the call; dl_iterate_phdr holds the loader's lock meanwhile.
    unsafe { libc::dl_iterate_phdr(Some(visit), (&mut found as *mut Vec<PathBuf>).cast()) };
    found
}

/// The file of the loaded object that holds `address`, as the loader mapped it.
pub(crate) fn file_of(address: *const c_void) -> Option<CString> {
    let mut info = libc::Dl_info {
        dli_fname: std::ptr::null(),
        dli_fbase: std::ptr::null_mut(),
        dli_sname: std::ptr::null(),
        dli_saddr: std::ptr::null_mut(),
    };
    // SAFETY: dladdr only reads the loader's tables; `info` is a valid, writable Dl_info.
    if unsafe { libc::dladdr(address, &mut info) } == 0 || info.dli_fname.is_null() {
        return None;
    }
    // SAFETY: on success dli_fname is a NUL-terminated path owned by the loader,
    // valid while the object stays loaded; it is copied at once.
    Some(unsafe { CStr::from_ptr(info.dli_fname) }.to_owned())
}

/// The directory of the file this code was loaded from (the shared library, or
/// the executable it is linked into).
pub(crate) fn own_directory() -> Option<PathBuf> {
    let file = file_of(own_directory as *const c_void)?;
    let path = PathBuf::from(OsStr::from_bytes(file.to_bytes()));
    std::fs::canonicalize(&path)
        .unwrap_or(path)
        .parent()
        .map(Path::to_path_buf)
}

/// glibc's `Dl_serpath` (`<dlfcn.h>`).
#[repr(C)]
struct SearchPath {
    name: *const c_char,
    flags: c_uint,
}

/// glibc's `Dl_serinfo` header; the `SearchPath` entries follow it.
#[repr(C)]
struct SearchInfo {
    size: usize,
    count: c_uint,
    first: [SearchPath; 1],
}

/// The directories the loader would search for a library needed by the object
/// behind `handle` (its RPATH or RUNPATH, `LD_LIBRARY_PATH`, the system's).
///
/// # Safety
/// `handle` is a live handle from `dlopen`.
unsafe fn search_path(handle: *mut c_void) -> Vec<PathBuf> {
    let mut sizes = SearchInfo {
        size: 0,
        count: 0,
        first: [SearchPath {
            name: std::ptr::null(),
            flags: 0,
        }],
    };
    // SAFETY: `handle` is live (the caller's contract); SERINFOSIZE writes only
    // the size and count fields of the struct it is given.
    if unsafe {
        libc::dlinfo(
            handle,
            libc::RTLD_DI_SERINFOSIZE,
            (&mut sizes as *mut SearchInfo).cast(),
        )
    } != 0
    {
        return Vec::new();
    }
    // u64 words: the buffer is aligned for the struct's pointers and sizes.
    let words = sizes
        .size
        .div_ceil(size_of::<u64>())
        .max(size_of::<SearchInfo>() / 8);
    let mut buffer = vec![0u64; words];
    let info = buffer.as_mut_ptr().cast::<SearchInfo>();
    // SAFETY: the buffer is at least `sizes.size` bytes, aligned, and starts
    // with room for a SearchInfo header; SERINFO fills `count` entries and the
    // strings after them within `size` bytes, as SERINFOSIZE measured.
    unsafe {
        (*info).size = sizes.size;
        (*info).count = sizes.count;
        if libc::dlinfo(handle, libc::RTLD_DI_SERINFO, info.cast()) != 0 {
            return Vec::new();
        }
        let entries = std::ptr::addr_of!((*info).first).cast::<SearchPath>();
        (0..(*info).count as usize)
            .map(|i| &*entries.add(i))
            .filter(|entry| !entry.name.is_null())
            .map(|entry| PathBuf::from(OsStr::from_bytes(CStr::from_ptr(entry.name).to_bytes())))
            .collect()
    }
}

/// The directories the loaded object at `object` adds to the library search
/// with its own RPATH or RUNPATH (its build's `-Wl,-rpath`): its search path
/// less the main program's, which holds `LD_LIBRARY_PATH` and the system's.
/// `None` when `object` is not loaded in this process.
pub(crate) fn own_run_path(object: &Path) -> Option<Vec<PathBuf>> {
    let path = CString::new(object.as_os_str().as_bytes()).ok()?;
    // SAFETY: NUL-terminated; RTLD_NOLOAD only looks the object up (a reference
    // is taken and given back below), it never loads one.
    let handle = unsafe { libc::dlopen(path.as_ptr(), libc::RTLD_LAZY | libc::RTLD_NOLOAD) };
    if handle.is_null() {
        return None;
    }
    // SAFETY: a NULL name gives the main program's handle, live for the process.
    let program = unsafe { libc::dlopen(std::ptr::null(), libc::RTLD_LAZY) };
    // SAFETY: both handles are live here.
    let (own, common) = unsafe { (search_path(handle), search_path(program)) };
    // SAFETY: each handle came from a successful dlopen above, which took a reference.
    unsafe {
        libc::dlclose(handle);
        libc::dlclose(program);
    }
    Some(
        own.into_iter()
            .filter(|dir| !common.contains(dir))
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_c_library_is_among_the_loaded_objects() {
        let loaded = loaded_objects();
        assert!(
            loaded.iter().any(|p| p
                .file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with("libc.so"))),
            "{loaded:?}"
        );
    }

    #[test]
    fn own_directory_is_found() {
        let dir = own_directory().expect("dladdr finds this test binary");
        assert!(dir.is_dir());
    }

    #[test]
    fn an_object_not_loaded_has_no_run_path() {
        assert_eq!(own_run_path(Path::new("/nonexistent/libnothing.so")), None);
    }

    #[test]
    fn the_c_library_adds_no_directory_of_its_own() {
        let libc = loaded_objects()
            .into_iter()
            .find(|p| {
                p.file_name()
                    .is_some_and(|n| n.to_string_lossy().starts_with("libc.so"))
            })
            .expect("libc is loaded");
        assert_eq!(own_run_path(&libc), Some(Vec::new()));
    }
}
