#!/usr/bin/env python3
"""check-layers.py [ROOT]: fail when a layer of src/ is crossed (CI runs it from .ci/run).

The layers (src/lib.rs and the README describe them): `protocol` is pure (bytes in, typed values out),
`server` owns connections and is the only module that names mio, `python` is the only module that names
pyo3 and sees the request seam, `sys` is the one home of raw libc calls, and `master`/`worker`/`start`
sit on top. The check reads, for every top-level module of src/ (a directory or a file directly under
src/), the `crate::X` paths its code names (`use crate::x::..`, `crate::x::f()`, `use crate::{x, y::z}`),
leaving out comments, string literals and `#[cfg(test)] mod` blocks, and fails when:

  - a module names a module of the same or a higher rank (RANKS below: a module may only name modules
    of a lower rank, so there can be no cycle), unless the edge is a KNOWN_EXCEPTIONS entry;
  - a module is not in RANKS (decide where a new module belongs and add it);
  - a module names an external crate outside its home (FENCES), or libc functions outside `sys`
    (libc's constants, types and the W* status macros are plain values and allowed anywhere);
  - `unsafe` appears outside `sys` and `python` (pyo3-ffi calls);
  - `protocol` names sockets or file descriptors.

Standard library only. Exit status 0 with `ok`, 1 with one line per broken rule.
"""
import os
import re
import sys

# The repository root: the first argument, or the directory above this script.
ROOT = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
SRC = os.path.join(ROOT, "src")

# A module may name only modules of a strictly lower rank. Same rank means "independent of each other".
RANKS = {
    # pure logic and the syscall fence: they name no other module
    "sys": 0,
    "protocol": 0,
    "statics": 0,
    # small services every layer may use
    "log": 1,
    "privileges": 1,
    "usignal": 1,  # uWSGI's signal table, kept in the shared mapping
    # the shared mapping (scoreboard, signal table) and the parsed configuration
    "scoreboard": 2,
    "config": 2,
    # the request seam (what server hands to python) and policies
    "request": 3,
    "recycle": 3,
    # the two sides of the seam: neither names the other
    "server": 4,
    "python": 4,
    # a worker process wires server and python together; the monitoring ports (the stats and
    # metrics documents, and the sockets they are served on: server's Listener, request's Conn)
    "worker": 5,
    "stats": 5,
    "master": 6,
    "start": 7,
    # crate roots
    "lib": 8,
    "main": 8,
}

# Edges that break the design today and are being removed. Each names the issue that removes it; delete
# the entry when the edge is gone (the check then fails if it comes back).
KNOWN_EXCEPTIONS = {
    # Empty since issue 10's request seam landed (python named server internals before it); an entry
    # looks like: ("python", "server"): "issue 10: the request seam",
}

# External crates and the only modules that may name them.
FENCES = {
    "mio": {"server"},
    "pyo3": {"python"},
    "pyo3_ffi": {"python"},
    "libc": {"sys"},  # functions only; see LIBC_VALUE
}
# libc items that are values or types, not calls: signal and errno numbers, flags, c types, W* macros.
LIBC_VALUE = re.compile(r"^(?:[A-Z][A-Z0-9_]*|c_\w+|\w+_t|tm)$")
UNSAFE_HOMES = {"sys", "python"}
# Names that mean sockets or descriptors; the pure protocol layer must not know them.
PROTOCOL_FORBIDDEN = re.compile(
    r"\b(?:std::net|std::os::(?:fd|unix)|socket2|signal_hook|TcpStream|UnixStream|TcpListener|"
    r"UnixListener|RawFd|OwnedFd|BorrowedFd|AsRawFd|mio|pyo3|pyo3_ffi|libc)\b"
)


def strip(text):
    """Drop comments, string and char literals (kept as empty quotes) from Rust source."""
    out, i, n = [], 0, len(text)
    while i < n:
        c = text[i]
        if text.startswith("//", i):
            j = text.find("\n", i)
            i = n if j < 0 else j
        elif text.startswith("/*", i):
            depth, i = 1, i + 2
            while i < n and depth:
                if text.startswith("/*", i):
                    depth, i = depth + 1, i + 2
                elif text.startswith("*/", i):
                    depth, i = depth - 1, i + 2
                else:
                    i += 1
        elif (m := re.compile(r'b?r(#*)"').match(text, i)) and (i == 0 or not (text[i - 1].isalnum() or text[i - 1] == "_")):
            end = text.find('"' + m.group(1), m.end())
            i = n if end < 0 else end + 1 + len(m.group(1))
            out.append('""')
        elif c == '"':
            i += 1
            while i < n and text[i] != '"':
                i += 2 if text[i] == "\\" else 1
            i += 1
            out.append('""')
        elif c == "'" and (m := re.compile(r"'(?:\\.[^']*|[^'\\])'").match(text, i)):
            i = m.end()
            out.append("' '")
        else:
            out.append(c)
            i += 1
    return "".join(out)


def strip_test_modules(code):
    out, i = [], 0
    for m in re.finditer(r"#\[cfg\(test\)\]\s*(?:pub(?:\([^)]*\))?\s+)?mod\s+\w+\s*\{", code):
        if m.start() < i:
            continue
        out.append(code[i : m.start()])
        depth, j = 1, m.end()
        while j < len(code) and depth:
            depth += {"{": 1, "}": -1}.get(code[j], 0)
            j += 1
        i = j
    out.append(code[i:])
    return "".join(out)


def crate_targets(code):
    """Top-level module names a file's code reaches through `crate::`."""
    found = set(re.findall(r"\bcrate::(\w+)", code))
    for m in re.finditer(r"\bcrate::\{", code):
        depth, j, item, items = 1, m.end(), "", []
        while j < len(code) and depth:
            ch = code[j]
            if ch == "{":
                depth += 1
            elif ch == "}":
                depth -= 1
            if depth == 1 and ch == ",":
                items.append(item)
                item = ""
            elif depth >= 1 and not (depth == 1 and ch == "{"):
                item += ch
            j += 1
        items.append(item)
        for it in items:
            head = re.match(r"\s*(\w+)", it)
            if head and head.group(1) != "self":
                found.add(head.group(1))
    return found


def module_of(path):
    head = os.path.relpath(path, SRC).split(os.sep)[0]
    return head[:-3] if head.endswith(".rs") else head


def main():
    problems = []
    edges = {}  # (from, to) -> first file
    for d, _, fs in os.walk(SRC):
        for f in sorted(fs):
            if not f.endswith(".rs"):
                continue
            path = os.path.join(d, f)
            rel = os.path.relpath(path, ROOT)
            mod = module_of(path)
            code = strip(open(path, encoding="utf-8").read())
            if f == "tests.rs":
                continue
            code = strip_test_modules(code)
            if mod not in RANKS:
                problems.append(f"{rel}: module `{mod}` has no rank: add it to RANKS in scripts/check-layers.py")
                continue
            for tgt in crate_targets(code):
                if tgt != mod:
                    edges.setdefault((mod, tgt), rel)
            for crate, homes in FENCES.items():
                for m in re.finditer(r"\b%s::(\w+)|\buse\s+%s\b" % (crate, crate), code):
                    if mod in homes:
                        continue
                    if crate == "libc" and m.group(1) and LIBC_VALUE.match(m.group(1)):
                        continue
                    what = f"{crate}::{m.group(1)}" if m.group(1) else crate
                    problems.append(f"{rel}: names {what}; only {', '.join(sorted(homes))} may")
                    break
            if mod not in UNSAFE_HOMES and re.search(r"\bunsafe\b", code):
                problems.append(f"{rel}: `unsafe` outside {', '.join(sorted(UNSAFE_HOMES))} (wrap the call in src/sys/)")
            if mod == "protocol":
                m = PROTOCOL_FORBIDDEN.search(code)
                if m:
                    problems.append(f"{rel}: the pure protocol layer names `{m.group(0)}`")

    for (a, b), rel in sorted(edges.items()):
        if b not in RANKS:
            continue  # `crate::X` where X is not a module (a re-exported item or macro)
        if RANKS[b] < RANKS[a]:
            continue
        if (a, b) in KNOWN_EXCEPTIONS:
            continue
        why = "same rank (independent layers)" if RANKS[a] == RANKS[b] else "a higher layer"
        problems.append(
            f"{rel}: `{a}` (rank {RANKS[a]}) names `{b}` (rank {RANKS[b]}), {why}; "
            f"move the code or change RANKS deliberately"
        )
    for (a, b), why in sorted(KNOWN_EXCEPTIONS.items()):
        if (a, b) not in edges:
            print(f"note: known exception {a} -> {b} ({why}) is gone: delete it from KNOWN_EXCEPTIONS")

    graph = {}
    for a, b in edges:
        if b in RANKS:
            graph.setdefault(a, set()).add(b)
    # Ranks rule out cycles except through a known exception; look for them anyway.
    cycles = find_cycles(graph)
    for c in cycles:
        problems.append("module cycle among: " + ", ".join(c))

    print("module graph (module -> modules it names):")
    for a in sorted(graph, key=lambda m: (-RANKS.get(m, 0), m)):
        marks = [b + (" (known exception)" if (a, b) in KNOWN_EXCEPTIONS else "") for b in sorted(graph[a])]
        print(f"  {a} -> {', '.join(marks)}")
    if problems:
        print("layers crossed:")
        for p in problems:
            print("  " + p)
        return 1
    print("ok")
    return 0


def find_cycles(graph):
    index, low, onstack, stack, sccs = {}, {}, set(), [], []

    def visit(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        onstack.add(v)
        for w in sorted(graph.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in onstack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                onstack.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                sccs.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return sccs


if __name__ == "__main__":
    sys.exit(main())
