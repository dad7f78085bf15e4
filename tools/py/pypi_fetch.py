#!/usr/bin/env python3
"""Download one release file of a PyPI package and check its SHA-256.

    pypi_fetch.py NAME VERSION SUFFIX DEST_DIR

Finds the file of NAME==VERSION whose name ends with SUFFIX (".tar.gz" for the
source package, "py3-none-any.whl" for a pure wheel) through PyPI's JSON API,
downloads it into DEST_DIR, verifies the digest PyPI publishes, and prints the
file's path. It reads the index's JSON listing (PEP 691), as pip does. Only the standard library is used, so this works before any
virtual environment or pip exists (Debian's python3 as it comes). Proxies are
taken from HTTPS_PROXY / HTTP_PROXY / NO_PROXY; PYPI_URL overrides the index
(default https://pypi.org/simple).
"""

import hashlib
import json
import os
import sys
import urllib.request


def main() -> int:
    if len(sys.argv) != 5:
        print(__doc__.strip().splitlines()[2].strip(), file=sys.stderr)
        return 2
    name, version, suffix, dest = sys.argv[1:]
    index = os.environ.get("PYPI_URL", "https://pypi.org/simple").rstrip("/")
    url = f"{index}/{name}/"
    request = urllib.request.Request(
        url, headers={"Accept": "application/vnd.pypi.simple.v1+json"}
    )
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            listing = json.load(response)
    except OSError as e:
        print(f"cannot reach PyPI for {name} ({url}): {e}", file=sys.stderr)
        return 1
    stems = {f"{name}-{version}", f"{name.replace('-', '_')}-{version}"}
    files = [
        f
        for f in listing.get("files", [])
        if f["filename"].endswith(suffix)
        and any(f["filename"].startswith(stem) for stem in stems)
        and f["filename"][len(name) + len(version) + 1 :][:1] in ("-", ".")
    ]
    if not files:
        print(f"{name}=={version} has no file ending in {suffix!r}", file=sys.stderr)
        return 1
    info = files[0]
    os.makedirs(dest, exist_ok=True)
    path = os.path.join(dest, info["filename"])
    partial = path + ".part"
    digest = hashlib.sha256()
    try:
        with urllib.request.urlopen(info["url"], timeout=60) as response, open(partial, "wb") as out:
            while chunk := response.read(1 << 20):
                digest.update(chunk)
                out.write(chunk)
    except OSError as e:
        print(f"download of {info['url']} failed: {e}", file=sys.stderr)
        return 1
    if digest.hexdigest() != info["hashes"]["sha256"]:
        os.unlink(partial)
        print(f"{info['filename']}: SHA-256 differs from PyPI's", file=sys.stderr)
        return 1
    os.replace(partial, path)
    print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
