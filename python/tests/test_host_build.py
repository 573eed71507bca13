"""Hosts that build the legacy library from source (README, "Hosts that build the
old library from source"), as the real host does it.

The host keeps ``native/c_embed_runtime.cpp`` in its tree and compiles it with
exactly ``g++ -O3 -fPIC -shared -std=c++17 native/c_embed_runtime.cpp -I <include>
-L <capi> -l:<soname> -Wl,-rpath,<capi> -o native/libc_embed_runtime.<digest>.so``
(the digest hashes the profile, include folder, capi folder and soname), writes a
``.buildinfo`` beside it, rebuilds when the ``.so`` is older than the ``.cpp`` or
the ``.buildinfo`` differs, and loads the result with ``RTLD_GLOBAL``. Its
profiles: ``default`` on the onnxruntime-openvino 1.22.0 wheel's capi folder,
``gpu`` on onnxruntime-gpu 1.22.0's (the plain onnxruntime 1.22.0 build stands in:
no GPU here). Here the drop-in source (``python -m c_embed_runtime host-source``,
opening the checkout's build) takes the legacy source's place."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from c_embed_runtime import LIBRARY_ENV, PROTOTYPES, _host_source
from conftest import BUILT_LIBRARY, ERRORS, REPO, cargo_version
from ort_builds import build_library
from test_host_scenario import assert_matches_reference, host_rows, run_host

PROFILES = {"default": "onnxruntime-openvino-1.22.0", "gpu": "onnxruntime-1.22.0"}


class HostTree:
    """The host's native/ folder and its builder, as the host writes them."""

    def __init__(self, root: Path, source: str):
        self.native = root / "native"
        self.include = root / "include"  # the host needs one; the drop-in source uses none
        self.native.mkdir(parents=True)
        self.include.mkdir()
        self.source = self.native / "c_embed_runtime.cpp"
        self.source.write_text(source)

    def build(self, profile: str) -> tuple[Path, bool]:
        """The profile's library, and whether it was (re)built now."""
        capi = build_library(PROFILES[profile]).parent
        soname = build_library(PROFILES[profile]).name
        info = json.dumps({"profile": profile, "include": str(self.include), "capi": str(capi), "soname": soname})
        digest = hashlib.sha256(info.encode()).hexdigest()[:16]
        library = self.native / f"libc_embed_runtime.{digest}.so"
        buildinfo = library.with_suffix(".buildinfo")
        fresh = (library.exists() and library.stat().st_mtime >= self.source.stat().st_mtime
                 and buildinfo.exists() and buildinfo.read_text() == info)
        if fresh:
            return library, False
        done = subprocess.run(
            ["g++", "-O3", "-fPIC", "-shared", "-std=c++17", str(self.source), "-I", str(self.include),
             "-L", str(capi), f"-l:{soname}", f"-Wl,-rpath,{capi}", "-o", str(library)],
            capture_output=True, text=True,
        )
        assert done.returncode == 0 and done.stderr == "", done.stderr
        buildinfo.write_text(info)
        return library, True


@pytest.fixture(scope="module")
def drop_in_source() -> str:
    return _host_source.render(BUILT_LIBRARY)


@pytest.fixture
def host_tree(tmp_path, drop_in_source) -> HostTree:
    return HostTree(tmp_path / "host", drop_in_source)


@pytest.fixture(scope="module")
def host_model(test_model):
    return test_model("host_bert_h768")


@pytest.fixture(scope="module")
def tiny_model(test_model):
    return test_model("tiny_bert")


def onnxruntimes(mapped: list[str]) -> list[str]:
    """The ONNX Runtime libraries among a process's mapped files (not its providers)."""
    return [path for path in mapped if os.path.basename(path).startswith("libonnxruntime.so")]


def assert_one_host_run(result, stderr, model, rows, out_dim, capi_library, libraries):
    for profile in result["profiles"]:
        assert (profile["selected"], profile["seq_len"], profile["out_dim"]) == ("CPU", 128, out_dim)
        # No NPU here: OpenVINO's own reason, from the OpenVINO build the process has.
        assert profile["skipped"]["NPU"].startswith(ERRORS["ORT_CREATE_ERROR"] + "Failed to load provider OpenVINO")
        assert_matches_reference(profile, model, 128, rows, out_dim)
    assert str(BUILT_LIBRARY.resolve()) in result["mapped"]
    assert all(str(library) in result["mapped"] for library in libraries)
    assert onnxruntimes(result["mapped"]) == [str(capi_library)]
    assert stderr == ""


def run_host_build(model, rows, libraries, out_dim):
    # The host's environment: no ORT_DYLIB_PATH, no variable of ours.
    env = {LIBRARY_ENV: ""}
    return run_host(model, 128, rows, libraries=libraries, out_dim=out_dim, **env)


@pytest.mark.parametrize("out_dim", [24, 32])
def test_the_hosts_build_runs_the_host_loop_on_its_capi_onnxruntime(host_tree, host_model, tokenizer_json, out_dim):
    library, built = host_tree.build("default")
    assert built
    rows = host_rows(tokenizer_json, 128)
    result, stderr = run_host_build(host_model, rows, [library], out_dim)
    assert_one_host_run(result, stderr, host_model, rows, out_dim, build_library(PROFILES["default"]), [library])


def test_a_changed_source_is_rebuilt_and_a_second_profile_loads_beside(host_tree, host_model, tokenizer_json):
    first, _ = host_tree.build("default")
    assert host_tree.build("default") == (first, False)
    before = first.stat().st_mtime_ns
    later = host_tree.source.stat().st_mtime + 10  # what a `git pull` does to its time
    os.utime(host_tree.source, (later, later))
    rebuilt, built = host_tree.build("default")
    assert (rebuilt, built) == (first, True) and first.stat().st_mtime_ns != before
    gpu, _ = host_tree.build("gpu")
    assert gpu != first
    rows = host_rows(tokenizer_json, 128)
    result, stderr = run_host_build(host_model, rows, [first, gpu], 24)
    assert len(result["profiles"]) == 2
    # One ONNX Runtime in the process: the first profile's, which the second one's handles use.
    assert_one_host_run(result, stderr, host_model, rows, 24, build_library(PROFILES["default"]), [first, gpu])


def test_the_drop_in_source_compiles_warning_free_as_cpp17_and_c11(tmp_path, drop_in_source):
    assert "onnxruntime_c_api.h" not in drop_in_source and "#include <onnxruntime" not in drop_in_source
    (tmp_path / "c_embed_runtime.cpp").write_text(drop_in_source)
    (tmp_path / "c_embed_runtime.c").write_text(drop_in_source)
    strict = ["-Wall", "-Wextra", "-Wpedantic", "-Werror", "-fPIC", "-shared"]
    for compiler, standard, source in (("g++", "-std=c++17", "c_embed_runtime.cpp"), ("gcc", "-std=c11", "c_embed_runtime.c")):
        out = tmp_path / f"lib_{compiler}.so"
        done = subprocess.run([compiler, standard, *strict, str(tmp_path / source), "-o", str(out)],
                              capture_output=True, text=True)
        assert done.returncode == 0 and done.stderr == "", done.stderr
        exported = subprocess.run(["nm", "-D", "--defined-only", str(out)], capture_output=True, text=True, check=True)
        names = {line.split()[-1] for line in exported.stdout.splitlines() if " T " in line}
        # The whole ABI and the additions, and the marker of a drop-in build.
        assert names == set(PROTOTYPES) | {"c_embed_runtime_drop_in_source_version"}
        undefined = subprocess.run(["nm", "-D", "--undefined-only", str(out)], capture_output=True, text=True, check=True)
        assert "Ort" not in undefined.stdout


# A child that calls every function with NULL / 0 arguments on a library file,
# with PROTOTYPES' declarations, and prints the answers (strings decoded).
NULL_CALLS = textwrap.dedent(
    """
    import ctypes, json, sys
    sys.path.insert(0, {python!r})
    from c_embed_runtime import PROTOTYPES
    lib = ctypes.CDLL(sys.argv[1], mode=ctypes.RTLD_GLOBAL)
    answers = {{}}
    for name, (restype, argtypes) in PROTOTYPES.items():
        function = getattr(lib, name)
        function.restype, function.argtypes = restype, argtypes
        if name == "c_embed_runtime_create":
            got = function(b"model.onnx", b"CPU", 128, 24, 1, 1)
        elif name == "c_embed_runtime_create_with_tokenizer":
            got = function(b"model.onnx", b"tokenizer.json", b"CPU", 128, 24, 1, 1)
        else:
            got = function(*[None if t is not ctypes.c_int64 else 0 for t in argtypes])
        answers[name] = got.decode() if isinstance(got, bytes) else got
    print(json.dumps(answers))
    """
).format(python=str(REPO / "python"))


def null_answers(library: Path, **env) -> tuple[dict, str]:
    environment = {k: v for k, v in os.environ.items() if k != "ORT_DYLIB_PATH"} | env
    done = subprocess.run([sys.executable, "-c", NULL_CALLS, str(library)], env=environment,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout), done.stderr


@pytest.fixture(scope="module")
def a_host_build(tmp_path_factory, drop_in_source) -> Path:
    return HostTree(tmp_path_factory.mktemp("host"), drop_in_source).build("default")[0]


@pytest.fixture(scope="module")
def not_ours(tmp_path_factory) -> Path:
    """A library with the legacy create but none of this library's additions."""
    folder = tmp_path_factory.mktemp("legacy")
    (folder / "legacy.c").write_text("void *c_embed_runtime_create(void) { return 0; }\n")
    subprocess.run(["gcc", "-shared", "-fPIC", str(folder / "legacy.c"), "-o", str(folder / "legacy.so")], check=True)
    return folder / "legacy.so"


@pytest.mark.parametrize("case", ["missing", "not ours", "itself"])
def test_without_the_library_create_fails_saying_where_it_looked(a_host_build, not_ours, case):
    library = {"missing": "/nonexistent/libc_embed_runtime.so", "not ours": str(not_ours), "itself": str(a_host_build)}[case]
    why = {
        "missing": "/nonexistent/libc_embed_runtime.so: cannot open shared object file",
        "not ours": "it is not c_embed_runtime",
        "itself": "it is a build of this drop-in source, not the library",
    }[case]
    answers, stderr = null_answers(a_host_build, **{LIBRARY_ENV: library})
    assert answers["c_embed_runtime_create"] is None
    error = answers["c_embed_runtime_last_create_error"]
    assert error.startswith(f"{ERRORS['COULD_NOT_LOAD_LIBRARY']} {library} (${LIBRARY_ENV}): "), error
    assert why in error
    # Every other function answers as the library answers for a NULL handle.
    expected, _ = null_answers(BUILT_LIBRARY)
    for name in ("c_embed_runtime_create", "c_embed_runtime_last_create_error", "c_embed_runtime_version",
                 "c_embed_runtime_register_host_build"):
        expected.pop(name)
        answers.pop(name)
    assert expected["c_embed_runtime_selected_device"] == ERRORS["INVALID_DEVICE"]
    assert answers == expected | {"c_embed_runtime_onnxruntime_path": "", "c_embed_runtime_onnxruntime_version": ""}
    assert stderr == ""


def test_the_generated_path_is_used_without_the_variable(a_host_build):
    answers, stderr = null_answers(a_host_build, **{LIBRARY_ENV: ""})
    assert answers["c_embed_runtime_version"] == cargo_version()
    assert answers["c_embed_runtime_last_create_error"].startswith(ERRORS["STD_CREATE_ERROR"])  # model.onnx is missing
    assert ERRORS["COULD_NOT_LOAD_LIBRARY"] not in answers["c_embed_runtime_last_create_error"]
    assert stderr == ""


# ---- which ONNX Runtime: the process's own first ---------------------------------

LOADED_FIRST = textwrap.dedent(
    """
    import ctypes, sys
    if sys.argv[2] == "python":
        import onnxruntime  # the Python package: ONNX Runtime inside its extension module
    lib = ctypes.CDLL(sys.argv[1], mode=ctypes.RTLD_GLOBAL)
    for name in ("c_embed_runtime_onnxruntime_path", "c_embed_runtime_onnxruntime_version",
                 "c_embed_runtime_last_create_error"):
        getattr(lib, name).restype = ctypes.c_char_p
    lib.c_embed_runtime_create.restype = ctypes.c_void_p
    lib.c_embed_runtime_create.argtypes = [ctypes.c_char_p, ctypes.c_char_p, ctypes.c_int64] + [ctypes.c_int32] * 3
    assert lib.c_embed_runtime_onnxruntime_path() == b""
    handle = lib.c_embed_runtime_create(sys.argv[3].encode(), b"CPU", 128, 24, 1, 1)
    assert handle, lib.c_embed_runtime_last_create_error()
    print(lib.c_embed_runtime_onnxruntime_path().decode(), lib.c_embed_runtime_onnxruntime_version().decode())
    """
)


def onnxruntime_in_use(library, how: str, model, **env) -> tuple[str, str]:
    environment = {k: v for k, v in os.environ.items() if k != "ORT_DYLIB_PATH"} | env
    done = subprocess.run([sys.executable, "-c", LOADED_FIRST, str(library), how, str(model)], env=environment,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and done.stderr == "", done.stderr
    path, version = done.stdout.split()
    return path, version


def test_an_onnxruntime_preloaded_in_the_process_is_used(tiny_model):
    preloaded = build_library("onnxruntime-1.22.0")
    got = onnxruntime_in_use(BUILT_LIBRARY, "plain", tiny_model, LD_PRELOAD=str(preloaded))
    assert got == (str(preloaded), "1.22.0")
    # ORT_DYLIB_PATH keeps first place.
    explicit = build_library("onnxruntime-1.24.4")
    got = onnxruntime_in_use(BUILT_LIBRARY, "plain", tiny_model, LD_PRELOAD=str(preloaded), ORT_DYLIB_PATH=str(explicit))
    assert got == (str(explicit), "1.24.4")


def test_the_python_onnxruntime_packages_runtime_is_used(tiny_model):
    import onnxruntime

    capi = Path(onnxruntime.__file__).parent / "capi"
    (expected,) = capi.glob("libonnxruntime.so.*")
    got = onnxruntime_in_use(BUILT_LIBRARY, "python", tiny_model)
    assert got == (str(expected), onnxruntime.__version__)


def test_the_host_builds_rpath_comes_before_the_librarys_own_onnxruntime(a_host_build, tiny_model):
    capi_library = build_library(PROFILES["default"])
    assert onnxruntime_in_use(a_host_build, "plain", tiny_model, **{LIBRARY_ENV: ""}) == (str(capi_library), "1.22.0")
    # The library alone takes the one beside it (make build's).
    path, _ = onnxruntime_in_use(BUILT_LIBRARY, "plain", tiny_model)
    assert Path(path).parent == BUILT_LIBRARY.parent
