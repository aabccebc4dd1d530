"""Group-readable report archive: Snakemake writes ``report.html`` into ``report.zip`` with
``ZipFile.writestr``, which stores mode 0600, so the unzipped report is owner-only whatever the
umask. :func:`normalise_modes` rewrites the archive with the modes the umask gives new files
(0644 under umask 022), for every member."""

from __future__ import annotations

import os
import sys
import tempfile
import zipfile
from pathlib import Path

from .errors import DataContractError


def current_umask() -> int:
    """The process umask (read without changing it for longer than the call)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def normalise_modes(path: str | os.PathLike[str], umask: int | None = None) -> Path:
    """Rewrite the zip archive ``path`` in place: file members get mode 0666 & ~umask,
    directories 0777 & ~umask; contents, names, dates and order are kept. Atomic.

    Example:
        >>> import tempfile, zipfile
        >>> d = tempfile.mkdtemp()
        >>> with zipfile.ZipFile(f"{d}/r.zip", "w") as z:
        ...     z.writestr("report/report.html", "<html></html>")
        >>> oct(zipfile.ZipFile(f"{d}/r.zip").infolist()[0].external_attr >> 16)
        '0o600'
        >>> _ = normalise_modes(f"{d}/r.zip", umask=0o022)
        >>> oct(zipfile.ZipFile(f"{d}/r.zip").infolist()[0].external_attr >> 16)
        '0o100644'
    """
    path = Path(path)
    if not path.is_file():
        raise DataContractError(f"report archive {path}: file not found")
    mask = current_umask() if umask is None else umask
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        with zipfile.ZipFile(path) as src, zipfile.ZipFile(tmp, "w") as dst:
            for info in src.infolist():
                new = zipfile.ZipInfo(info.filename, date_time=info.date_time)
                new.compress_type = info.compress_type
                new.create_system = 3  # Unix: the modes below are honoured by unzip
                kind, mode = (0o040000, 0o777) if info.is_dir() else (0o100000, 0o666)
                new.external_attr = (kind | (mode & ~mask)) << 16
                dst.writestr(new, src.read(info.filename))
        os.chmod(tmp, 0o666 & ~mask)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def main(argv: list[str] | None = None) -> int:
    """``python -m systpipe.report_zip results/report.zip``."""
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        print("usage: python -m systpipe.report_zip REPORT.zip", file=sys.stderr)
        return 2
    try:
        normalise_modes(args[0])
    except (DataContractError, zipfile.BadZipFile) as exc:
        print(f"systpipe.report_zip: {args[0]}: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())


__all__ = ["current_umask", "main", "normalise_modes"]
