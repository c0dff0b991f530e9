"""`clbudget data download NAME --root DIR`: fetch, verify and safely extract a data set.

The archives are the canonical ones other CL toolkits download (torchvision's CIFAR
datasets, torchvision/datasets/cifar.py, which PyCIL and Mammoth use; cs231n's
Tiny-ImageNet-200 zip, as Avalanche and many repositories fetch it), with their published
MD5 checksums.  The steps, each guarding one failure:

1. download to `DIR/<archive>.part` with a progress bar; a `.part` left by an interrupted
   download is resumed with an HTTP Range request (a server that ignores Range restarts it);
   a body shorter than its Content-Length is kept as `.part` and reported ("rerun to resume");
2. MD5 of the whole file checked *before* extracting; a mismatch deletes the file;
3. extraction refuses any member that would land outside DIR (absolute paths, `..`, links
   pointing out, device files), before anything is written;
4. `DIR/<folder>/.clbudget-verified` marks a finished extraction: a rerun does nothing.

Offline (or the server unreachable), the error names the URL, the file, its MD5, and where to
put an archive fetched elsewhere (the command then verifies and extracts it).  The base URL
is `base_url=`, else $CLBUDGET_DOWNLOAD_URL, else the canonical one (tests serve archives
from a loopback server).
"""
from __future__ import annotations

import hashlib
import os
import tarfile
import zipfile
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from clbudget.progress import progress_bar

BASE_URL_ENV = "CLBUDGET_DOWNLOAD_URL"
MARKER = ".clbudget-verified"


class DownloadError(ValueError):
    """A download or extraction that cannot go on; the message says what to do."""


@dataclass(frozen=True)
class Archive:
    dataset: str
    url: str          # canonical location
    md5: str          # published checksum of the archive
    folder: str       # what extraction creates under DIR: the --data-root to pass
    size_bytes: int   # published size, for the message only

    @property
    def filename(self) -> str:
        return self.url.rsplit("/", 1)[-1]


ARCHIVES: dict[str, Archive] = {a.dataset: a for a in (
    # torchvision/datasets/cifar.py: CIFAR10.url / tgz_md5, CIFAR100.url / tgz_md5
    Archive("cifar10", "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz",
            "c58f30108f718f92721af3b95e74349a", "cifar-10-batches-py", 170_498_071),
    Archive("cifar100", "https://www.cs.toronto.edu/~kriz/cifar-100-python.tar.gz",
            "eb9058c3a382ffc7106e4002c42a8d85", "cifar-100-python", 169_001_437),
    # cs231n's Tiny-ImageNet-200 (the MD5 several loaders check, e.g. in their `resources`)
    Archive("tinyimagenet", "http://cs231n.stanford.edu/tiny-imagenet-200.zip",
            "90528d7ca1a48142e341f4ef8d21d0de", "tiny-imagenet-200", 248_100_043),
)}


def archive_of(name: str) -> Archive:
    from clbudget.streams.catalog import dataset_info, nearest
    key = dataset_info(name).name
    if key not in ARCHIVES:
        raise DownloadError(f"no download for {key!r}; downloadable: {', '.join(ARCHIVES)} "
                            f"(nearest: {nearest(key, ARCHIVES)}); place other data sets "
                            f"yourself and pass --data-root")
    return ARCHIVES[key]


def download_hint(name: str) -> str:
    """The command that fetches data set `name`, for 'missing --data-root' errors ('' if none)."""
    if name not in ARCHIVES:
        return ""
    a = ARCHIVES[name]
    return (f"; fetch it with `clbudget data download {name} --root DATA` and pass "
            f"--data-root DATA/{a.folder}")


def download(name: str, root, *, base_url: str | None = None, progress: bool = False,
             timeout_s: float = 60.0, chunk_bytes: int = 1 << 20) -> Path:
    """Fetch, verify and extract data set `name` under `root`; returns the data root."""
    archive = archive_of(name)
    root = Path(root).expanduser().resolve()
    root.mkdir(parents=True, exist_ok=True)
    target = root / archive.folder
    if (target / MARKER).is_file():
        return target
    base = base_url or os.environ.get(BASE_URL_ENV)
    url = f"{base.rstrip('/')}/{archive.filename}" if base else archive.url
    path = root / archive.filename
    if not (path.is_file() and md5_of(path) == archive.md5):
        fetch(url, path.with_name(path.name + ".part"), archive, root,
              progress=progress, timeout_s=timeout_s, chunk_bytes=chunk_bytes)
        part = path.with_name(path.name + ".part")
        found = md5_of(part)
        if found != archive.md5:
            part.unlink()
            raise DownloadError(f"{url}: MD5 {found} does not match the published "
                                f"{archive.md5}; the file was deleted, rerun to download again")
        part.replace(path)
    safe_extract(path, root)
    if not target.is_dir():
        raise DownloadError(f"{path} did not hold {archive.folder}/; is it the right archive?")
    (target / MARKER).write_text(f"{archive.filename} md5 {archive.md5}\n")
    return target


def fetch(url: str, part: Path, archive: Archive, root: Path, *, progress: bool,
          timeout_s: float, chunk_bytes: int) -> None:
    """Download url into `part`, resuming what `part` already holds (HTTP Range)."""
    import http.client
    import urllib.error
    import urllib.request
    have = part.stat().st_size if part.is_file() else 0
    request = urllib.request.Request(url, headers={"Range": f"bytes={have}-"} if have else {})
    try:
        response = urllib.request.urlopen(request, timeout=timeout_s)
    except urllib.error.HTTPError as e:
        if e.code == 416 and have:       # nothing beyond what we hold: verify it as it is
            return
        raise DownloadError(f"{url}: HTTP {e.code} {e.reason}{_manual(archive, root)}") from None
    except (urllib.error.URLError, OSError) as e:
        reason = getattr(e, "reason", e)
        raise DownloadError(f"cannot reach {url} ({reason}); offline?"
                            f"{_manual(archive, root)}") from None
    with response:
        resumed = response.status == 206
        if not resumed:
            have = 0                      # the server sent the whole file: start over
        length = response.headers.get("Content-Length")
        expected = have + int(length) if length is not None else None
        got = have
        bar = progress_bar(None, desc=archive.filename, enabled=progress, total=expected,
                           initial=have, unit="B", unit_scale=True, unit_divisor=1024)
        try:
            with open(part, "ab" if resumed else "wb") as f:
                while chunk := response.read(chunk_bytes):
                    f.write(chunk)
                    got += len(chunk)
                    bar.update(len(chunk))
        except (OSError, http.client.HTTPException) as e:
            raise DownloadError(f"{url}: download broke off at {got:,} bytes ({e}); rerun "
                                f"the command to resume from {part}") from None
        finally:
            bar.close()
    if expected is not None and got < expected:
        raise DownloadError(f"{url}: got {got:,} of {expected:,} bytes (the connection "
                            f"closed early); rerun the command to resume from {part}")


def _manual(archive: Archive, root: Path) -> str:
    return (f"; or download {archive.url} elsewhere, put {archive.filename} (MD5 "
            f"{archive.md5}) in {root} and rerun: it is verified and extracted")


def md5_of(path: Path, chunk_bytes: int = 1 << 20) -> str:
    digest = hashlib.md5()
    with open(path, "rb") as f:
        while chunk := f.read(chunk_bytes):
            digest.update(chunk)
    return digest.hexdigest()


# ---------------------------------------------------------------------------- extraction

def _inside(root: Path, relative: str) -> bool:
    """Would `relative` (an archive member name or link target) land inside root?"""
    pure = PurePosixPath(relative.replace("\\", "/"))
    if pure.is_absolute() or (pure.parts and ":" in pure.parts[0]):   # /etc, C:/...
        return False
    return (root / pure).resolve().is_relative_to(root.resolve())


def check_members(archive: Path, root: Path) -> None:
    """Refuse an archive any member of which would be written outside root."""
    def refuse(name, why):
        raise DownloadError(f"{archive}: member {name!r} {why}; refusing to extract "
                            f"(a damaged or malicious archive)")

    if zipfile.is_zipfile(archive):
        with zipfile.ZipFile(archive) as z:
            for name in z.namelist():
                if not _inside(root, name):
                    refuse(name, f"escapes {root}")
        return
    with tarfile.open(archive) as tar:
        for m in tar.getmembers():
            if not _inside(root, m.name):
                refuse(m.name, f"escapes {root}")
            if m.issym() or m.islnk():
                base = str(PurePosixPath(m.name).parent) if m.issym() else ""
                link = f"{base}/{m.linkname}" if base and base != "." else m.linkname
                if PurePosixPath(m.linkname).is_absolute() or not _inside(root, link):
                    refuse(m.name, f"links to {m.linkname!r}, outside {root}")
            elif not (m.isfile() or m.isdir()):
                refuse(m.name, "is a device or special file")


def safe_extract(archive: Path, root: Path) -> None:
    """Extract a .tar.gz or .zip into root after `check_members` accepted every member."""
    check_members(archive, root)
    try:
        if zipfile.is_zipfile(archive):
            with zipfile.ZipFile(archive) as z:
                z.extractall(root)
        else:
            with tarfile.open(archive) as tar:
                tar.extractall(root, **({"filter": "data"} if hasattr(tarfile, "data_filter")
                                        else {}))
    except (tarfile.TarError, zipfile.BadZipFile, EOFError, OSError) as e:
        raise DownloadError(f"cannot extract {archive}: {e}; delete it and rerun") from None
