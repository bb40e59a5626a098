#!/usr/bin/env bash
# Checks that the workspace's `rust-version` (Cargo.toml) is true: not below the highest
# `rust-version` among the dependencies locked in Cargo.lock for this platform, and the same
# as the README's "Rust N or newer" line. Cheap (no build, no other toolchain needed); what
# our own code uses of the standard library is checked by clippy's `incompatible_msrv` lint,
# which reads the same `rust-version`. See docs/dependencies.md.
set -euo pipefail
cd "$(dirname "$0")/.."

host=$(rustc -vV | sed -n 's/^host: //p')
cargo metadata --locked --format-version 1 --filter-platform "$host" | python3 -c '
import json, re, sys

def version(text):
    parts = [int(x) for x in text.split(".")]
    return tuple(parts + [0] * (3 - len(parts)))

def show(v):
    return ".".join(map(str, v))

meta = json.load(sys.stdin)
ours = set(meta["workspace_members"])
needed = {id for node in meta["resolve"]["nodes"] for id in node["dependencies"]}
declared = {version(p["rust_version"]) for p in meta["packages"] if p["id"] in ours}
if len(declared) != 1:
    sys.exit(f"workspace crates declare different rust-versions: {sorted(map(show, declared))}")
(ws,) = declared
deps = sorted(
    ((version(p["rust_version"]), p["name"], p["version"])
     for p in meta["packages"]
     if p["id"] not in ours and p["id"] in needed and p.get("rust_version")),
    reverse=True,
)
top = deps[0][0] if deps else (1, 0, 0)
if ws < top:
    names = ", ".join(f"{n} {v} ({show(r)})" for r, n, v in deps if r > ws)
    sys.exit(f"rust-version {show(ws)} is too low: the lock needs {show(top)}: {names}")
readme = open("README.md", encoding="utf-8").read()
want = f"Rust {show(ws[:2])} or newer"
if want not in readme:
    sys.exit(f"README.md does not say \"{want}\" (the workspace rust-version is {show(ws)})")
print(f"rust-version {show(ws)}: ok (highest among {len(deps)} locked dependencies: "
      f"{show(top)}, {deps[0][1]} {deps[0][2]})")
'
