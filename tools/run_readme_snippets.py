#!/usr/bin/env python3
"""Checks the docs (README.md and docs/*.md): their programs, commands and links.

Every fenced block of a checked language (c, cpp, python, sh) is preceded by one
marker line:

    <!-- snippet: c hello.c -->        a program, saved by the reader as hello.c
    <!-- snippet: sh [SESSION] -->     commands, run in order with the page's other
                                       sh snippets of SESSION (default: "reader")
    <!-- not checked: WHY -->          not run in a test, for the reason given

- **Programs** (c, cpp, python): C is compiled as C11 and C++ as C++17 with
  ``-Wall -Wextra -Wpedantic -Werror`` against ``include/`` and the build in
  ``target/release``; Python is compiled. A later sh snippet of the same page
  must run the program (name its file): the page's commands are the check that it
  works.
- **Commands** (sh): the snippets of one page and session run in the order of the
  page, in one ``bash`` (``set -e -o pipefail``), as a reader would in one
  terminal: in a scratch directory that holds the page's programs and a link to
  each top-level entry of the checkout, with ``$HOME`` a fresh directory, ``make``
  running the checkout's Makefile (``make -C``), and none of the variables a page
  tells the reader to set (``PKG_CONFIG_PATH``, ``LD_LIBRARY_PATH``, ...). Each
  session starts fresh, so a command works only if the page says, before it,
  what it needs.
- **Links**: every ``[text](target)`` outside code must be relative, resolve to a
  file or folder inside the repository, and its ``#anchor`` (if any) must be a
  heading of the target page (GitHub's anchors).

Needs ``make setup build`` (``make test-readme`` runs them first).

Usage: run_readme_snippets.py [--only programs,sh,links] [--list] [--keep] [DOC ...]
"""

from __future__ import annotations

import argparse
import os
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
LIB_DIR = ROOT / "target" / "release"
PROGRAMS = {"c": ".c", "cpp": ".cpp", "python": ".py"}
CHECKED = (*PROGRAMS, "sh")
# Fence languages that are commands or programs and so must carry a marker.
MARKED = {"c": "c", "cpp": "cpp", "c++": "cpp", "python": "python", "py": "python",
          "sh": "sh", "bash": "sh", "shell": "sh", "console": "sh"}  # fmt: skip
SNIPPET = re.compile(r"^<!--\s*snippet:\s*(\S+)(?:\s+(\S+))?\s*-->$")
NOT_CHECKED = re.compile(r"^<!--\s*not checked:\s*(.*?)\s*-->$")
FENCE = re.compile(r"^(\s*)(`{3,}|~{3,})\s*([^`\s]*)")
HEADING = re.compile(r"^ {0,3}(#{1,6})\s+(.*?)\s*#*\s*$")
ANCHOR_TAG = re.compile(r"""<a\s+(?:name|id)=["']([^"']+)["']""")
LINK = re.compile(r"!?\[((?:[^\[\]]|\[[^\]]*\])*)\]\(\s*<?([^)\s>]*)>?(?:\s+\"[^\"]*\")?\s*\)")
REFERENCE = re.compile(r"^\s{0,3}\[[^\]]+\]:\s*(\S+)")
SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*:")
WARNINGS = ["-Wall", "-Wextra", "-Wpedantic", "-Werror"]
SESSION_TIMEOUT = 900
DEFAULT_SESSION = "reader"
# What a reader's fresh terminal does not have: the pages set these themselves.
CLEARED = ("PKG_CONFIG_PATH", "LD_LIBRARY_PATH", "LD_PRELOAD", "ORT_DYLIB_PATH", "PYTHONPATH",
           "C_EMBED_RUNTIME_LIB", "C_EMBED_RUNTIME_LIBRARY", "C_EMBED_RUNTIME_PADDED",
           "C_EMBED_RUNTIME_SERIAL_BATCHES", "C_EMBED_RUNTIME_RUN_TIMEOUT_MS", "C_EMBED_RUNTIME_ORT_LOG",
           "MAKEFLAGS", "MFLAGS", "MAKELEVEL", "MAKEOVERRIDES", "VIRTUAL_ENV")  # fmt: skip


@dataclass
class Block:
    doc: Path
    line: int  # of the opening fence, 1-based
    language: str  # the fence's language, normalised ("" if none)
    code: str
    marker: str | None = None  # "snippet" or "not checked"
    name: str | None = None  # a program's file name, or a sh snippet's session
    reason: str | None = None

    @property
    def where(self) -> str:
        return f"{self.doc.relative_to(ROOT)}:{self.line}"


@dataclass
class Doc:
    path: Path
    blocks: list[Block] = field(default_factory=list)
    anchors: set[str] = field(default_factory=set)
    links: list[tuple[int, str]] = field(default_factory=list)


def slug(heading: str) -> str:
    """GitHub's anchor of a heading: its text lower-cased, punctuation dropped
    (but `-` and `_`), spaces as `-`."""
    text = re.sub(r"!?\[([^\]]*)\]\([^)]*\)", r"\1", heading)  # links: their text
    text = re.sub(r"<[^>]+>", "", text).replace("`", "").lower()
    text = "".join(ch for ch in text if ch.isalnum() or ch in " -_")
    return text.replace(" ", "-")


def without_code_spans(line: str) -> str:
    return re.sub(r"(`+)(?:(?!\1).)+?\1", "", line)


def parse(path: Path) -> Doc:
    """The fenced blocks (with their markers), headings and links of one page;
    raises ValueError on a malformed marker or an unclosed fence."""
    doc = Doc(path)
    lines = path.read_text(encoding="utf-8").splitlines()
    counts: dict[str, int] = {}
    rel = path.relative_to(ROOT)
    index = 0
    while index < len(lines):
        line = lines[index]
        fence = FENCE.match(line)
        if fence:
            indent, ticks, info = fence.groups()
            body, end = [], index + 1
            while end < len(lines) and not re.match(rf"^\s*{re.escape(ticks[0])}{{{len(ticks)},}}\s*$", lines[end]):
                body.append(lines[end][len(indent):] if lines[end].startswith(indent) else lines[end].lstrip())
                end += 1
            if end == len(lines):
                raise ValueError(f"{rel}:{index + 1}: a fence that is never closed")
            language = MARKED.get(info.lower(), info.lower())
            block = Block(path, index + 1, language, "\n".join(body) + "\n")
            previous = lines[index - 1].strip() if index > 0 else ""
            snippet, skipped = SNIPPET.match(previous), NOT_CHECKED.match(previous)
            if snippet:
                kind, name = snippet.groups()
                if kind not in CHECKED:
                    raise ValueError(f"{rel}:{index}: unknown snippet language {kind!r} ({', '.join(CHECKED)})")
                if kind != language:
                    raise ValueError(f"{rel}:{index}: a {kind} marker before a {info or 'plain'} fence")
                if kind in PROGRAMS and (not name or not name.endswith(PROGRAMS[kind]) or "/" in name):
                    raise ValueError(f"{rel}:{index}: a {kind} snippet needs a file name ending {PROGRAMS[kind]}")
                block.marker, block.name = "snippet", name if kind in PROGRAMS else (name or DEFAULT_SESSION)
            elif skipped:
                if not skipped.group(1):
                    raise ValueError(f"{rel}:{index}: say why the block is not checked")
                block.marker, block.reason = "not checked", skipped.group(1)
            doc.blocks.append(block)
            index = end + 1
            continue
        heading = HEADING.match(line)
        if heading:
            base = slug(heading.group(2))
            count = counts.get(base, 0)
            counts[base] = count + 1
            doc.anchors.add(base if count == 0 else f"{base}-{count}")
        doc.anchors.update(ANCHOR_TAG.findall(line))
        text = without_code_spans(line)
        doc.links += [(index + 1, target) for _, target in LINK.findall(text)]
        reference = REFERENCE.match(text)
        if reference:
            doc.links.append((index + 1, reference.group(1)))
        index += 1
    return doc


def check_markers(doc: Doc) -> list[str]:
    errors = []
    names = set()
    for block in doc.blocks:
        if block.language in CHECKED and block.marker is None:
            errors.append(
                f"{block.where}: a {block.language} block without a marker: "
                f"<!-- snippet: {block.language}{' FILE' if block.language in PROGRAMS else ''} --> "
                "or <!-- not checked: WHY -->"
            )
        if block.marker == "snippet" and block.language in PROGRAMS:
            if block.name in names:
                errors.append(f"{block.where}: a second program named {block.name}")
            names.add(block.name)
            runs = [
                b for b in doc.blocks
                if b.marker == "snippet" and b.language == "sh" and b.line > block.line and uses(b.code, block.name)
            ]  # fmt: skip
            if not runs:
                errors.append(f"{block.where}: no later sh snippet of the page runs {block.name}")
    for block in doc.blocks:
        if block.marker == "snippet" and block.language == "sh":
            for program in doc.blocks:
                if (
                    program.marker == "snippet" and program.language in PROGRAMS
                    and program.line > block.line and uses(block.code, program.name)
                ):  # fmt: skip
                    errors.append(f"{block.where}: uses {program.name} before the page shows it ({program.where})")
    return errors


def uses(code: str, name: str) -> bool:
    return re.search(rf"(?<![\w./-]){re.escape(name)}(?![\w-])", code) is not None


def check_links(doc: Doc, docs: dict[Path, Doc]) -> list[str]:
    errors = []
    rel = doc.path.relative_to(ROOT)
    for line, target in doc.links:
        where = f"{rel}:{line}"
        if SCHEME.match(target) or target.startswith("//"):
            errors.append(f"{where}: {target}: the docs link nothing outside the repository")
            continue
        path_part, _, anchor = target.partition("#")
        resolved = (doc.path.parent / path_part).resolve() if path_part else doc.path
        if resolved != ROOT and ROOT not in resolved.parents:
            errors.append(f"{where}: {target}: outside the repository")
            continue
        if not resolved.exists():
            errors.append(f"{where}: {target}: no such file or folder")
            continue
        if not anchor:
            continue
        if resolved.suffix != ".md" or resolved.is_dir():
            errors.append(f"{where}: {target}: an anchor into a file that is not a page")
            continue
        if resolved not in docs:
            try:
                docs[resolved] = parse(resolved)
            except ValueError as e:
                errors.append(f"{where}: {target}: {e}")
                continue
        if anchor not in docs[resolved].anchors:
            errors.append(f"{where}: {target}: no heading #{anchor} in {resolved.relative_to(ROOT)}")
    return errors


def run(command: list[str], **kwargs) -> subprocess.CompletedProcess:
    print("+", shlex.join(command), flush=True)
    return subprocess.run(command, text=True, capture_output=True, **kwargs)


def check_program(block: Block, workdir: Path) -> bool:
    """Compiles one program as the docs' check does (stricter than the page's commands)."""
    source = workdir / "programs" / block.doc.stem / block.name
    source.parent.mkdir(parents=True, exist_ok=True)
    source.write_text(block.code)
    if block.language == "python":
        try:
            compile(block.code, str(source), "exec")
        except SyntaxError as e:
            print(f"{block.where}: {block.name}: {e}", file=sys.stderr)
            return False
        print(f"ok {block.where}: {block.name} compiles")
        return True
    if block.language == "c":
        command = [os.environ.get("CC", "cc"), "-std=c11"]
    else:
        command = [os.environ.get("CXX", "c++"), "-std=c++17"]
    command += [
        *WARNINGS, f"-I{ROOT / 'include'}", str(source), f"-L{LIB_DIR}", "-lc_embed_runtime",
        f"-Wl,-rpath,{LIB_DIR}", "-o", str(source.with_suffix("")),
    ]  # fmt: skip
    result = run(command, cwd=ROOT)
    if result.returncode != 0:
        print(result.stdout + result.stderr, file=sys.stderr)
        print(f"{block.where}: {block.name} does not compile with {' '.join(WARNINGS)}", file=sys.stderr)
        return False
    print(f"ok {block.where}: {block.name} compiles with {' '.join(WARNINGS)}")
    return True


def session_env(home: Path, bin_dir: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in CLEARED}
    real_home = Path(os.environ.get("HOME", str(Path.home())))
    # A fresh $HOME must not hide the Rust toolchain from `make build`.
    for name, default in (("CARGO_HOME", real_home / ".cargo"), ("RUSTUP_HOME", real_home / ".rustup")):
        if name not in env and default.is_dir():
            env[name] = str(default)
    env["HOME"] = str(home)
    env["PATH"] = os.pathsep.join([str(bin_dir), env.get("PATH", "")])
    return env


def run_session(doc: Doc, session: str, blocks: list[Block], workdir: Path) -> bool:
    """Runs one page's sh snippets of `session` in order, in one shell."""
    rel = doc.path.relative_to(ROOT)
    base = workdir / "sessions" / f"{rel.as_posix().replace('/', '_')}-{session}"
    scratch, home, bin_dir = base / "work", base / "home", base / "bin"
    for folder in (scratch, home, bin_dir):
        folder.mkdir(parents=True)
    programs = {b.name: b for b in doc.blocks if b.marker == "snippet" and b.language in PROGRAMS}
    for entry in ROOT.iterdir():
        if entry.name not in programs and entry.name != ".git":
            (scratch / entry.name).symlink_to(entry)
    for name, program in programs.items():
        (scratch / name).write_text(program.code)
    make = shutil.which("make") or "make"
    wrapper = bin_dir / "make"
    wrapper.write_text(f'#!/bin/sh\nexec {shlex.quote(make)} --no-print-directory -C {shlex.quote(str(ROOT))} "$@"\n')
    wrapper.chmod(0o755)
    script = ["set -e -o pipefail", "PS4='+ '"]
    for block in blocks:
        script += [f"printf '\\n=== %s\\n' {shlex.quote(block.where)} >&2", "set -x", block.code.rstrip("\n"), "{ set +x; } 2>/dev/null"]
    script.append("printf '\\n=== done\\n' >&2")
    where = ", ".join(b.where for b in blocks)
    print(f"+ bash: {rel} session {session!r} ({len(blocks)} snippets: {where})", flush=True)
    try:
        result = subprocess.run(
            ["bash", "-c", "\n".join(script) + "\n"], cwd=scratch, env=session_env(home, bin_dir),
            text=True, capture_output=True, timeout=SESSION_TIMEOUT,
        )  # fmt: skip
    except subprocess.TimeoutExpired as e:
        output = (x.decode(errors="replace") if isinstance(x, bytes) else x or "" for x in (e.stdout, e.stderr))
        print("".join(output), file=sys.stderr)
        print(f"{rel}: session {session!r} timed out after {SESSION_TIMEOUT} s", file=sys.stderr)
        return False
    if result.returncode != 0:
        print(result.stdout + result.stderr, file=sys.stderr)
        failed = re.findall(r"^=== (\S+)$", result.stderr, re.M)
        print(
            f"{failed[-1] if failed else rel}: the commands failed (exit {result.returncode}), "
            f"in the order of the page, session {session!r}",
            file=sys.stderr,
        )
        return False
    output = result.stdout.strip().splitlines()
    print(f"ok {rel} session {session!r}: {len(blocks)} snippets" + (f"; last line: {output[-1]}" if output else ""))
    return True


def default_docs() -> list[Path]:
    return [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("docs", nargs="*", type=Path, help="pages to check (default: README.md and docs/*.md)")
    parser.add_argument("--only", default="programs,sh,links", help="comma-separated: programs, sh, links")
    parser.add_argument("--list", action="store_true", help="list every checked-language block and its status")
    parser.add_argument("--keep", action="store_true", help="keep the scratch directories in build/readme")
    args = parser.parse_args(argv)
    selected = {part.strip() for part in args.only.split(",") if part.strip()}
    if selected - {"programs", "sh", "links"}:
        print(f"--only: unknown {', '.join(sorted(selected - {'programs', 'sh', 'links'}))}", file=sys.stderr)
        return 2

    paths = [path.resolve() for path in args.docs] or default_docs()
    docs: dict[Path, Doc] = {}
    errors = []
    for path in paths:
        try:
            docs[path] = parse(path)
        except ValueError as e:
            errors.append(str(e))
    for path in paths:
        if path in docs:
            errors += check_markers(docs[path])
    if args.list:
        for path in paths:
            for b in docs.get(path, Doc(path)).blocks:
                if b.language in CHECKED or b.marker:
                    status = f"not checked: {b.reason}" if b.marker == "not checked" else (
                        f"program {b.name}" if b.language in PROGRAMS else f"sh, session {b.name}"
                    ) if b.marker else "NO MARKER"
                    print(f"{b.where}: {b.language}: {status}")
        return 1 if errors else 0
    if "links" in selected:
        for path in paths:
            if path in docs:
                errors += check_links(docs[path], docs)
    if errors:
        print("\n".join(errors), file=sys.stderr)
        print(f"docs check failed: {len(errors)} problems", file=sys.stderr)
        return 1
    if selected & {"programs", "sh"} and not (LIB_DIR / "libc_embed_runtime.so").exists():
        print(f"{LIB_DIR}: no library (run `make build`)", file=sys.stderr)
        return 1

    if args.keep:
        workdir = ROOT / "build" / "readme"
        shutil.rmtree(workdir, ignore_errors=True)
        workdir.mkdir(parents=True)
        context = None
    else:
        context = tempfile.TemporaryDirectory(prefix="docs-check-")
        workdir = Path(context.name)
    failed = []
    counts = {"programs": 0, "sessions": 0, "skipped": 0}
    try:
        for path in paths:
            doc = docs[path]
            checked = [b for b in doc.blocks if b.marker == "snippet"]
            counts["skipped"] += sum(b.marker == "not checked" for b in doc.blocks)
            if "programs" in selected:
                for block in (b for b in checked if b.language in PROGRAMS):
                    counts["programs"] += 1
                    if not check_program(block, workdir):
                        failed.append(f"{block.where} ({block.name})")
            if "sh" in selected:
                sessions: dict[str, list[Block]] = {}
                for block in (b for b in checked if b.language == "sh"):
                    sessions.setdefault(block.name, []).append(block)
                for session, blocks in sessions.items():
                    counts["sessions"] += 1
                    if not run_session(doc, session, blocks, workdir):
                        failed.append(f"{doc.path.relative_to(ROOT)} session {session!r}")
    finally:
        if context is not None:
            context.cleanup()
    if failed:
        print(f"docs check failed: {', '.join(failed)}", file=sys.stderr)
        return 1
    print(
        f"docs ok: {len(paths)} pages; {counts['programs']} programs, {counts['sessions']} command sessions"
        f"{', links' if 'links' in selected else ''}; {counts['skipped']} blocks marked not checked"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
