#!/usr/bin/env python3
"""Compiles and runs the README's usage snippets, so the documented code works.

A snippet is a fenced code block whose previous line is a marker comment:

    <!-- snippet: c -->
    ```c
    ...
    ```

The languages are ``c`` (compiled as C11), ``cpp`` (C++17) and ``python``; the
README must hold exactly one snippet of each. C and C++ are compiled with
``-Wall -Wextra -Wpedantic -Werror`` against ``include/`` and linked with the
build in ``target/release`` (with an rpath, so they run as they are). Every
snippet runs from the repository root with the model path as its one argument
and must exit 0 and print something; the Python one runs with ``PYTHONPATH=python``
and this interpreter (``make test-readme`` uses ``.venv/bin/python``).

Usage: run_readme_snippets.py [--model PATH] [--only c,cpp,python] [--keep]
"""

from __future__ import annotations

import argparse
import os
import re
import shlex
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
DEFAULT_MODEL = "models/all-MiniLM-L6-v2/model.onnx"
LIB_DIR = ROOT / "target" / "release"
MARKER = re.compile(r"^<!--\s*snippet:\s*([A-Za-z+]+)\s*-->\s*$")
FENCE = {"c": "```c", "cpp": "```cpp", "python": "```python"}
WARNINGS = ["-Wall", "-Wextra", "-Wpedantic", "-Werror"]
RUN_TIMEOUT = 300


@dataclass
class Snippet:
    language: str
    line: int  # of the opening fence, 1-based
    code: str


def extract(text: str, source: str = "README.md") -> dict[str, Snippet]:
    """The marked snippets of `text`, by language; raises ValueError on a bad marker."""
    lines = text.splitlines()
    snippets: dict[str, Snippet] = {}
    for index, line in enumerate(lines):
        match = MARKER.match(line.strip())
        if not match:
            continue
        language = match.group(1)
        where = f"{source}:{index + 1}"
        if language not in FENCE:
            raise ValueError(f"{where}: unknown snippet language {language!r}")
        if language in snippets:
            raise ValueError(f"{where}: a second {language} snippet")
        if index + 1 >= len(lines) or lines[index + 1].strip() != FENCE[language]:
            raise ValueError(f"{where}: the marker must be followed by a {FENCE[language]} fence")
        body = []
        for end in range(index + 2, len(lines)):
            if lines[end].strip() == "```":
                break
            body.append(lines[end])
        else:
            raise ValueError(f"{where}: the {language} snippet's fence is never closed")
        snippets[language] = Snippet(language, index + 2, "\n".join(body) + "\n")
    return snippets


def run(command: list[str], **kwargs) -> subprocess.CompletedProcess:
    print("+", shlex.join(command), flush=True)
    return subprocess.run(command, cwd=ROOT, text=True, capture_output=True, **kwargs)


def build(snippet: Snippet, workdir: Path) -> list[str] | None:
    """Compiles a C or C++ snippet; returns the command that runs it (None on failure)."""
    if snippet.language == "c":
        compiler, standard, suffix = os.environ.get("CC", "cc"), "-std=c11", ".c"
    else:
        compiler, standard, suffix = os.environ.get("CXX", "c++"), "-std=c++17", ".cpp"
    source = workdir / f"snippet_{snippet.language}{suffix}"
    binary = workdir / f"snippet_{snippet.language}"
    source.write_text(snippet.code)
    command = [
        compiler, standard, *WARNINGS, f"-I{ROOT / 'include'}", str(source),
        f"-L{LIB_DIR}", "-lc_embed_runtime", f"-Wl,-rpath,{LIB_DIR}", "-o", str(binary),
    ]  # fmt: skip
    result = run(command)
    if result.returncode != 0:
        print(result.stdout + result.stderr, file=sys.stderr)
        return None
    return [str(binary)]


def check(snippet: Snippet, command: list[str], model: str, python_path: str) -> bool:
    env = dict(os.environ)
    if snippet.language == "python":
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [python_path, env.get("PYTHONPATH")]))
    try:
        result = run([*command, model], env=env, timeout=RUN_TIMEOUT)
    except subprocess.TimeoutExpired:
        print(f"README.md:{snippet.line}: the {snippet.language} snippet timed out", file=sys.stderr)
        return False
    output = result.stdout.strip()
    if result.returncode != 0 or not output:
        print(result.stdout + result.stderr, file=sys.stderr)
        print(
            f"README.md:{snippet.line}: the {snippet.language} snippet "
            f"{'failed (exit %d)' % result.returncode if result.returncode else 'printed nothing'}",
            file=sys.stderr,
        )
        return False
    print(f"{snippet.language} snippet (README.md:{snippet.line}): {output}")
    return True


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=DEFAULT_MODEL, help=f"the model (default {DEFAULT_MODEL})")
    parser.add_argument("--only", default="c,cpp,python", help="comma-separated languages to run")
    parser.add_argument("--readme", type=Path, default=README)
    parser.add_argument("--keep", action="store_true", help="keep the sources and binaries in build/readme")
    args = parser.parse_args(argv)

    try:
        snippets = extract(args.readme.read_text(encoding="utf-8"), args.readme.name)
    except ValueError as e:
        print(e, file=sys.stderr)
        return 1
    missing = [language for language in FENCE if language not in snippets]
    if missing:
        print(f"{args.readme}: no snippet marked for {', '.join(missing)}", file=sys.stderr)
        return 1
    if not (ROOT / args.model).exists():
        print(f"{args.model}: no such model (run `make setup`)", file=sys.stderr)
        return 1
    if not (LIB_DIR / "libc_embed_runtime.so").exists():
        print(f"{LIB_DIR}: no library (run `make build`)", file=sys.stderr)
        return 1

    selected = [language.strip() for language in args.only.split(",") if language.strip()]
    unknown = [language for language in selected if language not in FENCE]
    if unknown:
        print(f"--only: unknown language {', '.join(unknown)} (c, cpp, python)", file=sys.stderr)
        return 2
    if args.keep:
        workdir = ROOT / "build" / "readme"
        workdir.mkdir(parents=True, exist_ok=True)
        context = None
    else:
        context = tempfile.TemporaryDirectory(prefix="readme-snippets-")
        workdir = Path(context.name)
    failed = []
    try:
        for language in selected:
            snippet = snippets[language]
            if language == "python":
                source = workdir / "snippet_python.py"
                source.write_text(snippet.code)
                command = [sys.executable, str(source)]
            else:
                command = build(snippet, workdir)
            if command is None or not check(snippet, command, args.model, str(ROOT / "python")):
                failed.append(language)
    finally:
        if context is not None:
            context.cleanup()
    if failed:
        print(f"README snippets failed: {', '.join(failed)}", file=sys.stderr)
        return 1
    print(f"README snippets ok: {', '.join(selected)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
