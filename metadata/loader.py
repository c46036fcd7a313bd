"""Reading metadata documents from files, folders and template packages (folders or zips).

Reading never raises on bad content: a file that is not JSON becomes a MetadataError with
its name, so `metacrm validate` can report every problem of a package in one run.
"""
from __future__ import annotations

import fnmatch
import json
import zipfile
from dataclasses import dataclass
from importlib import resources
from pathlib import Path, PurePosixPath
from typing import Any, Iterable

from .documents import Document, MetadataError, pointer


@dataclass(frozen=True)
class Package:
    """A template package: its manifest (`template.json`) and the documents it lists."""

    manifest: Document | None
    documents: tuple[Document, ...]
    errors: tuple[MetadataError, ...]
    demo_data: tuple[Document, ...] = ()

    @property
    def name(self) -> str | None:
        return self.manifest.data.get("name") if self.manifest else None

    @property
    def version(self) -> str | None:
        return self.manifest.data.get("version") if self.manifest else None


def parse_json(source: str, text: str | bytes) -> tuple[list[Document], list[MetadataError]]:
    """One file's documents: a JSON object, or a list of objects."""
    try:
        data = json.loads(text)
    except (ValueError, UnicodeDecodeError) as exc:
        return [], [MetadataError(source, "", f"not valid JSON: {exc}")]
    if isinstance(data, dict):
        return [Document(source, data)], []
    if isinstance(data, list):
        docs, errors = [], []
        for i, item in enumerate(data):
            if isinstance(item, dict):
                docs.append(Document(f"{source}[{i}]", item))
            else:
                errors.append(MetadataError(source, pointer(i), "expected a JSON object"))
        return docs, errors
    return [], [MetadataError(source, "", "expected a JSON object or a list of objects")]


class _Tree:
    """Uniform read access to a folder, a zip file, or a package resource folder."""

    def __init__(self, root: Any, label: str):
        self.root, self.label = root, label

    def names(self) -> list[str]:
        raise NotImplementedError

    def read(self, name: str) -> bytes:
        raise NotImplementedError


class _DirTree(_Tree):
    def names(self) -> list[str]:
        base = Path(self.root)
        return sorted(p.relative_to(base).as_posix() for p in base.rglob("*") if p.is_file())

    def read(self, name: str) -> bytes:
        return (Path(self.root) / name).read_bytes()


def _is_junk(name: str) -> bool:
    """Entries archivers add that aren't part of a package: macOS Finder's `__MACOSX/`
    resource forks and `._*` / `.DS_Store` files (which would also hide the package's
    folder prefix, since the zip then has two top-level entries)."""
    parts = PurePosixPath(name).parts
    return bool(parts) and (parts[0] == "__MACOSX" or parts[-1].startswith("._") or parts[-1] == ".DS_Store")


class _ZipTree(_Tree):
    def __init__(self, root: Any, label: str):
        super().__init__(zipfile.ZipFile(root), label)
        names = [n for n in self.root.namelist() if not n.endswith("/") and not _is_junk(n)]
        # A zip made by zipping a folder holds "folder/template.json": strip that prefix.
        prefix = ""
        if "template.json" not in names:
            tops = {n.split("/", 1)[0] for n in names}
            if len(tops) == 1 and f"{next(iter(tops))}/template.json" in names:
                prefix = next(iter(tops)) + "/"
        self.prefix = prefix
        self._names = sorted(n[len(prefix):] for n in names if n.startswith(prefix))

    def names(self) -> list[str]:
        return self._names

    def read(self, name: str) -> bytes:
        return self.root.read(self.prefix + name)


class _ResourceTree(_Tree):
    def names(self) -> list[str]:
        out: list[str] = []

        def walk(node: Any, prefix: str) -> None:
            for child in node.iterdir():
                rel = f"{prefix}{child.name}"
                if child.is_dir():
                    walk(child, rel + "/")
                elif child.is_file():
                    out.append(rel)

        walk(self.root, "")
        return sorted(out)

    def read(self, name: str) -> bytes:
        node = self.root
        for part in PurePosixPath(name).parts:
            node = node / part
        return node.read_bytes()


def _match(name: str, patterns: Iterable[str]) -> bool:
    return any(fnmatch.fnmatchcase(name, p) or fnmatch.fnmatchcase(name, p.replace("*/", "**/")) for p in patterns)


def _read_package(tree: _Tree) -> Package:
    names = tree.names()
    errors: list[MetadataError] = []
    manifest_docs, manifest_errors = parse_json(f"{tree.label}/template.json", tree.read("template.json"))
    errors += manifest_errors
    manifest = manifest_docs[0] if manifest_docs else None
    patterns = (manifest.data.get("files") if manifest else None) or ["*.json", "*/*.json"]
    if not isinstance(patterns, list):
        patterns = ["*.json", "*/*.json"]
    demo_pattern = manifest.data.get("demo_data") if manifest else None
    demo_patterns = [demo_pattern] if isinstance(demo_pattern, str) else list(demo_pattern or [])
    documents: list[Document] = []
    demo: list[Document] = []
    for name in names:
        if name == "template.json" or not name.endswith(".json"):
            continue
        if demo_patterns and _match(name, demo_patterns):
            docs, errs = parse_json(f"{tree.label}/{name}", tree.read(name))
            demo += docs
            errors += errs
        elif _match(name, [str(p) for p in patterns]):
            docs, errs = parse_json(f"{tree.label}/{name}", tree.read(name))
            documents += docs
            errors += errs
    return Package(manifest, tuple(documents), tuple(errors), tuple(demo))


def load_package(path: str | Path) -> Package:
    """A template package from a folder holding `template.json`, or a `.zip` of one."""
    p = Path(path)
    if p.is_file() and zipfile.is_zipfile(p):
        tree: _Tree = _ZipTree(p, p.name)
        if "template.json" not in tree.names():
            return Package(None, (), (MetadataError(p.name, "", "no template.json in the zip"),))
        return _read_package(tree)
    if p.is_dir() and (p / "template.json").is_file():
        return _read_package(_DirTree(p, p.name))
    return Package(None, (), (MetadataError(str(p), "", "not a template package (no template.json)"),))


def load_seed_package(name: str) -> Package:
    """A template package shipped in `metacrm.seeds` (read with importlib.resources)."""
    root = resources.files("metacrm.seeds") / name
    return _read_package(_ResourceTree(root, name))


def load_path(path: str | Path) -> tuple[list[Document], list[MetadataError]]:
    """Documents from a file, a folder (all *.json below it) or a template package."""
    p = Path(path)
    if not p.exists():
        return [], [MetadataError(str(p), "", "no such file or folder")]
    if (p.is_dir() and (p / "template.json").is_file()) or (p.is_file() and zipfile.is_zipfile(p)):
        pkg = load_package(p)
        docs = ([pkg.manifest] if pkg.manifest else []) + list(pkg.documents)
        return docs, list(pkg.errors)
    if p.is_dir():
        docs: list[Document] = []
        errors: list[MetadataError] = []
        for f in sorted(p.rglob("*.json")):
            d, e = parse_json(str(f.relative_to(p.parent)), f.read_bytes())
            docs += d
            errors += e
        return docs, errors
    return parse_json(p.name, p.read_bytes())


def load_paths(paths: Iterable[str | Path]) -> tuple[list[Document], list[MetadataError]]:
    docs: list[Document] = []
    errors: list[MetadataError] = []
    for path in paths:
        d, e = load_path(path)
        docs += d
        errors += e
    return docs, errors
