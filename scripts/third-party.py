#!/usr/bin/env python3
"""Lists the crates linked into a workspace package's build, for the
release artefacts' notices: one line per crate, with its version, license
and source, from `cargo metadata` (normal dependencies on x86_64 Linux;
build scripts and dev-dependencies are not in the binaries).

    scripts/third-party.py PACKAGE [PACKAGE...] > THIRD-PARTY
"""

import json
import subprocess
import sys


def main(roots: list[str]) -> None:
    meta = json.loads(
        subprocess.run(
            ["cargo", "metadata", "--format-version", "1", "--locked",
             "--filter-platform", "x86_64-unknown-linux-gnu"],
            check=True, capture_output=True, text=True,
        ).stdout
    )
    packages = {p["id"]: p for p in meta["packages"]}
    nodes = {n["id"]: n for n in meta["resolve"]["nodes"]}
    workspace = set(meta["workspace_members"])
    by_name = {packages[i]["name"]: i for i in workspace}
    missing = [r for r in roots if r not in by_name]
    if missing:
        sys.exit(f"third-party.py: not workspace packages: {missing}")
    seen: set[str] = set()
    todo = [by_name[r] for r in roots]
    while todo:
        pid = todo.pop()
        if pid in seen:
            continue
        seen.add(pid)
        for dep in nodes[pid]["deps"]:
            if any(k["kind"] is None for k in dep["dep_kinds"]):
                todo.append(dep["pkg"])
    crates = sorted(
        (packages[p] for p in seen - workspace),
        key=lambda p: (p["name"], p["version"]),
    )
    print(f"Third-party crates in {', '.join(roots)} (qcic's own code is MPL-2.0):")
    print()
    for p in crates:
        source = p.get("repository") or f"https://crates.io/crates/{p['name']}"
        print(f"{p['name']} {p['version']}  {p.get('license') or p.get('license_file') or '?'}  {source}")


if __name__ == "__main__":
    main(sys.argv[1:])
