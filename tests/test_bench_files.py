"""Every file qbench writes is written whole: a full disk (injected, and a real 64 KiB tmpfs where mount is allowed),
a crash, an unusable path or a bad GITHUB_STEP_SUMMARY leaves the old file byte for byte and no temporary file."""

from __future__ import annotations

import errno
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from matplotlib.figure import Figure

from bench import files
from bench.cli import main
from bench.errors import OutputError
from bench.results import ResultsWriter, load_suite
from tests.synthetic_results import Spec, write_results

SPEC = Spec(layouts=("naive", "optimized"), ns=(100, 1000), limits=(100,), statuses=("none",), rtts=(0,), values=3)
OLD_REPORT = {
    "index.html": b"<p>old report</p>",
    "README.md": b"# old report\n",
    "counts_vs_n.png": b"old png",
    "bytes_written.png": b"old png",
    "results.json": b"",  # filled with a real results file by old_report()
    "notes.txt": b"the user's own notes\n",
}

Snapshot = dict[str, bytes]


def snapshot(directory: Path) -> Snapshot:
    """Every entry of a directory (hidden ones too) with its bytes: what 'left as it was' is compared on."""
    return {p.name: (p.read_bytes() if p.is_file() else b"<dir>") for p in directory.iterdir()}


def one_line(err: str) -> str:
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in err, err
    return lines[0]


@pytest.fixture(scope="module")
def good(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_results(tmp_path_factory.mktemp("files") / "good.json", SPEC)


@pytest.fixture(scope="module")
def other(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A different valid results file: the 'old' baseline that a failed update must keep."""
    return write_results(tmp_path_factory.mktemp("files") / "other.json", Spec(**{**SPEC.__dict__, "seed": 2}))


@pytest.fixture
def immutable() -> Iterator[Callable[[Path], None]]:
    """chattr +i (root only); skipped with the reason where it is not permitted. Always undone afterwards."""
    done: list[Path] = []

    def fix(path: Path) -> None:
        run = subprocess.run(["chattr", "+i", str(path)], capture_output=True, text=True, check=False)
        if run.returncode != 0:
            pytest.skip(f"chattr +i is not permitted here: {run.stderr.strip()}")
        done.append(path)

    yield fix
    for path in done:
        subprocess.run(["chattr", "-i", str(path)], check=False)


@pytest.fixture
def disk(tmp_path: Path) -> Iterator[Path]:
    """A real 64 KiB tmpfs: writes fail with ENOSPC once it is full. Skipped with the reason where mount is refused."""
    mountpoint = tmp_path / "disk"
    mountpoint.mkdir()
    run = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(mountpoint)],
        capture_output=True,
        text=True,
        check=False,
    )
    if run.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here (needs root): {run.stderr.strip()}")
    try:
        yield mountpoint
    finally:
        subprocess.run(["umount", str(mountpoint)], check=True)


def fill(disk: Path, leave: int) -> Path:
    """Fill the tmpfs until at most `leave` bytes are free; returns the filler file."""
    filler = disk / "filler"
    stats = os.statvfs(disk)
    filler.write_bytes(b"\0" * max(0, stats.f_bavail * stats.f_frsize - leave))
    return filler


@pytest.fixture
def enospc(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every whole-file write runs its real writer, then the disk 'fills up': half the bytes stay, then ENOSPC."""
    real = files._fill

    def full(tmp: Path, write: Callable[[Path], object]) -> None:
        real(tmp, write)
        tmp.write_bytes(tmp.read_bytes()[: tmp.stat().st_size // 2])
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(files, "_fill", full)


# -- one file: results, baseline, export -----------------------------------------------------------------------


def write_with(kind: str, good: Path, out: Path) -> int:
    """Write `good` (or its CSV) to `out` the way each command does; returns the command's exit status."""
    if kind == "results":  # qbench run's writer: the whole suite again after each benchmark
        writer = ResultsWriter(out)
        try:
            for bench in load_suite(good):
                writer.add(bench)
        except OutputError as exc:
            print(f"qbench run: error: {exc}", file=sys.stderr)
            return exc.exit_status
        return 0
    argv = {
        "baseline": ["baseline", "update", str(good), "-o", str(out)],
        "export": ["export", str(good), "-o", str(out)],
    }
    return main(argv[kind])


WRITERS = ("results", "baseline", "export")


@pytest.mark.parametrize("kind", WRITERS)
@pytest.mark.usefixtures("enospc")
def test_a_full_disk_keeps_the_old_file(
    kind: str, good: Path, other: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "out.json"
    shutil.copyfile(other, out)
    before = snapshot(tmp_path)
    assert write_with(kind, good, out) == 2
    line = one_line(capsys.readouterr().err)
    assert f"cannot write {out}: No space left on device; the old file is unchanged" in line
    assert snapshot(tmp_path) == before  # old bytes, and no temporary file


@pytest.mark.parametrize("kind", WRITERS)
@pytest.mark.usefixtures("enospc")
def test_a_full_disk_writes_no_file_where_there_was_none(
    kind: str, good: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert write_with(kind, good, tmp_path / "new.json") == 2
    assert "nothing was written" in one_line(capsys.readouterr().err)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("kind", WRITERS)
def test_a_full_tmpfs_keeps_the_old_file(
    kind: str, good: Path, other: Path, disk: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = disk / "out.json"
    shutil.copyfile(other, out)
    filler = fill(disk, leave=0)
    before = snapshot(disk)
    assert write_with(kind, good, out) == 2
    assert "No space left on device" in one_line(capsys.readouterr().err)
    assert snapshot(disk) == before
    filler.unlink()  # with room again, the same write succeeds: it was the disk
    assert write_with(kind, good, out) == 0
    assert sorted(p.name for p in disk.iterdir()) == ["out.json"]


def test_a_full_disk_mid_run_keeps_the_benchmarks_that_finished(
    good: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = tmp_path / "results.json"
    writer = ResultsWriter(out)
    benchmarks = load_suite(good).get_benchmarks()
    for bench in benchmarks[:3]:
        writer.add(bench)
    before = snapshot(tmp_path)
    monkeypatch.setattr(files, "_fill", lambda tmp, write: (_ for _ in ()).throw(OSError(errno.ENOSPC, "full")))
    with pytest.raises(OutputError, match="the old file is unchanged"):
        writer.add(benchmarks[3])
    assert snapshot(tmp_path) == before and writer.written == 3
    assert [b.get_name() for b in load_suite(out)] == [b.get_name() for b in benchmarks[:3]]


def test_a_crash_mid_write_keeps_the_old_file(good: Path, other: Path, tmp_path: Path) -> None:
    out = tmp_path / "baseline.json"
    shutil.copyfile(other, out)
    before = snapshot(tmp_path)

    def crash(tmp: Path) -> None:
        tmp.write_bytes(b'{"half": ')
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        files.write_file(out, crash)
    assert snapshot(tmp_path) == before


def test_a_written_file_keeps_the_old_permissions_and_follows_a_symlink(good: Path, tmp_path: Path) -> None:
    real = tmp_path / "real.json"
    real.write_text("old")
    real.chmod(0o640)
    (tmp_path / "link.json").symlink_to(real)
    assert main(["baseline", "update", str(good), "-o", str(tmp_path / "link.json")]) == 0
    assert (tmp_path / "link.json").is_symlink() and real.read_bytes() == good.read_bytes()
    assert real.stat().st_mode & 0o777 == 0o640


# -- unusable output paths ---------------------------------------------------------------------------------------


def argv_for(command: str, good: Path, out: Path) -> list[str]:
    return {
        "run": ["run", "--suite", "smoke", "--layouts", "naive", "-o", str(out)],
        "baseline": ["baseline", "update", str(good), "-o", str(out)],
        "export": ["export", str(good), "-o", str(out)],
        "report": ["report", str(good), "-o", str(out)],
    }[command]


COMMANDS = ("run", "baseline", "export", "report")


@pytest.mark.parametrize("command", COMMANDS)
def test_an_unwritable_directory_is_one_line(
    command: str,
    good: Path,
    tmp_path: Path,
    immutable: Callable[[Path], None],
    capsys: pytest.CaptureFixture[str],
) -> None:
    locked = tmp_path / "locked"
    locked.mkdir()
    immutable(locked)
    assert main(argv_for(command, good, locked / "out")) == 2
    assert f"cannot create a {'directory' if command == 'report' else 'file'} in {locked}" in one_line(
        capsys.readouterr().err
    )
    assert list(locked.iterdir()) == []


@pytest.mark.parametrize("command", ("run", "baseline", "export"))
def test_an_immutable_file_is_one_line_and_left_as_it_was(
    command: str,
    good: Path,
    tmp_path: Path,
    immutable: Callable[[Path], None],
    capsys: pytest.CaptureFixture[str],
) -> None:
    out = tmp_path / "out.json"
    out.write_text("old")
    immutable(out)
    before = snapshot(tmp_path)
    assert main(argv_for(command, good, out)) == 2
    assert "is immutable or append-only" in one_line(capsys.readouterr().err)
    assert snapshot(tmp_path) == before


@pytest.mark.parametrize("command", COMMANDS)
def test_the_wrong_kind_of_path_is_one_line(
    command: str, good: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    wrong = tmp_path / "wrong"
    if command == "report":
        wrong.write_text("a file, not a directory")
    else:
        wrong.mkdir()
    before = snapshot(tmp_path)
    assert main(argv_for(command, good, wrong)) == 2
    expected = "it is a file; expected a directory" if command == "report" else "it is a directory; expected a file"
    assert expected in one_line(capsys.readouterr().err)
    assert snapshot(tmp_path) == before


@pytest.mark.parametrize("command", COMMANDS)
def test_a_parent_that_cannot_be_created_is_one_line(
    command: str, good: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "plain").write_text("a file where a directory should be")
    assert main(argv_for(command, good, tmp_path / "plain" / "sub" / "out")) == 2
    assert "cannot create its directory" in one_line(capsys.readouterr().err)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["plain"]


@pytest.mark.parametrize("command", ("baseline", "export"))
def test_a_missing_parent_that_can_be_created_is_created(command: str, good: Path, tmp_path: Path) -> None:
    assert main(argv_for(command, good, tmp_path / "new" / "dir" / "out")) == 0
    assert sorted(p.name for p in (tmp_path / "new" / "dir").iterdir()) == ["out"]


# -- the report directory ----------------------------------------------------------------------------------------


def old_report(directory: Path, good: Path) -> Snapshot:
    directory.mkdir()
    for name, data in OLD_REPORT.items():
        (directory / name).write_bytes(data or good.read_bytes())
    return snapshot(directory)


def test_a_report_replaces_the_old_one_whole_and_keeps_other_files(
    good: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "latest"
    old = old_report(out, good)
    out.chmod(0o750)
    drop = json.loads(good.read_text())  # no write_path, so no bytes_written plot: the old one must go
    drop["benchmarks"] = [b for b in drop["benchmarks"] if b["metadata"]["kvq_scenario"] != "write_path"]
    (out / "results.json").write_text(json.dumps(drop))
    assert main(["report", str(out / "results.json"), "-o", str(out)]) == 0, capsys.readouterr().err
    names = set(os.listdir(out))
    assert {"index.html", "README.md", "counts_vs_n.png", "results.json", "notes.txt"} <= names
    assert "bytes_written.png" not in names  # a stale plot of the old report is not left beside the new one
    assert (out / "notes.txt").read_bytes() == old["notes.txt"]
    assert json.loads((out / "results.json").read_text()) == drop
    assert (out / "index.html").read_bytes() != old["index.html"]
    assert out.stat().st_mode & 0o777 == 0o750
    assert sorted(os.listdir(tmp_path)) == ["latest"]  # no staging or old directory left beside it


def test_a_full_disk_while_building_keeps_the_old_report(
    good: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "latest"
    old = old_report(out, good)
    saved: list[str] = []
    real = Figure.savefig

    def savefig(self: Figure, fname: Path, **kwargs: object) -> None:
        if saved:  # the second plot: half a file, then the disk is full
            Path(fname).write_bytes(b"\x89PNG half")
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        saved.append(str(fname))
        real(self, fname, **kwargs)

    monkeypatch.setattr(Figure, "savefig", savefig)
    assert main(["report", str(good), "-o", str(out)]) == 2
    assert "No space left on device; the old report is unchanged" in one_line(capsys.readouterr().err)
    assert snapshot(out) == old
    assert sorted(os.listdir(tmp_path)) == ["latest"]


def test_a_report_on_a_full_tmpfs_keeps_the_old_report(
    good: Path, disk: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = disk / "latest"
    old = old_report(out, good)
    assert main(["report", str(good), "-o", str(out)]) == 2  # the new report needs far more than 64 KiB
    assert "No space left on device" in one_line(capsys.readouterr().err)
    assert snapshot(out) == old
    assert sorted(os.listdir(disk)) == ["latest"]


def test_an_old_report_whose_index_cannot_be_removed_is_left_whole(
    good: Path, tmp_path: Path, immutable: Callable[[Path], None], capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "latest"
    old = old_report(out, good)
    immutable(out / "index.html")
    assert main(["report", str(good), "-o", str(out)]) == 2
    assert "index.html is immutable or append-only" in one_line(capsys.readouterr().err)
    assert snapshot(out) == old
    assert sorted(os.listdir(tmp_path)) == ["latest"]


def test_a_directory_in_the_old_report_is_refused_before_anything_is_written(
    good: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "latest"
    (out / "index.html").mkdir(parents=True)
    assert main(["report", str(good), "-o", str(out)]) == 2
    assert "holds the directory 'index.html'" in one_line(capsys.readouterr().err)
    assert os.listdir(out) == ["index.html"] and sorted(os.listdir(tmp_path)) == ["latest"]


def test_the_current_directory_is_never_swapped_out(
    good: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    for out in (".", str(tmp_path.parent)):
        assert main(["report", str(good), "-o", out]) == 2
        assert "is (or holds) the current directory" in one_line(capsys.readouterr().err)


def build_small(staging: Path) -> None:
    (staging / "index.html").write_text("new")


def test_without_an_atomic_exchange_the_swap_renames_twice(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    out = tmp_path / "latest"
    out.mkdir()
    (out / "index.html").write_text("old")
    monkeypatch.setattr(files, "_exchange", lambda a, b: False)
    files.replace_directory(out, build_small, owned=lambda name: name == "index.html")
    assert snapshot(out) == {"index.html": b"new"} and os.listdir(tmp_path) == ["latest"]


def test_a_failed_swap_puts_the_old_directory_back(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    out = tmp_path / "latest"
    out.mkdir()
    (out / "index.html").write_text("old")
    real = os.rename

    def rename(src: str | Path, dst: str | Path) -> None:
        if Path(dst) == out and str(src).endswith(".tmp"):  # the new directory cannot be moved into place
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        real(src, dst)

    monkeypatch.setattr(files, "_exchange", lambda a, b: False)
    monkeypatch.setattr(files.os, "rename", rename)
    with pytest.raises(OutputError, match="the old report is unchanged"):
        files.replace_directory(out, build_small, owned=lambda name: name == "index.html")
    assert snapshot(out) == {"index.html": b"old"} and os.listdir(tmp_path) == ["latest"]


# -- GITHUB_STEP_SUMMARY -----------------------------------------------------------------------------------------


@pytest.fixture
def summary(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "step_summary.md"
    path.write_text("## an earlier step\n")
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(path))
    return path


def test_the_verdict_is_appended_to_the_step_summary(
    summary: Path, good: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["gate", "--baseline", str(good), str(good)]) == 0
    verdict = capsys.readouterr().out
    assert summary.read_text() == "## an earlier step\n" + verdict


@pytest.mark.parametrize("status", [0, 1])
def test_a_summary_path_that_is_a_directory_is_a_warning_and_the_verdict_stands(
    status: int,
    good: Path,
    other: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(tmp_path))
    results = good
    if status:
        data = json.loads(good.read_text())
        counts = json.loads(data["benchmarks"][0]["metadata"]["kvq_counts"])
        counts["total_calls"] += 1
        data["benchmarks"][0]["metadata"]["kvq_counts"] = json.dumps(counts)
        results = tmp_path / "worse.json"
        results.write_text(json.dumps(data))
    assert main(["gate", "--baseline", str(good), str(results), "--times", "report-only"]) == status
    out, err = capsys.readouterr()
    assert out.startswith("## qbench gate: ")
    assert one_line(err) == f"qbench gate: warning: GITHUB_STEP_SUMMARY: cannot append to {tmp_path}: Is a directory"


def test_an_immutable_summary_is_a_warning(
    summary: Path, good: Path, immutable: Callable[[Path], None], capsys: pytest.CaptureFixture[str]
) -> None:
    immutable(summary)
    assert main(["gate", "--baseline", str(good), str(good)]) == 0
    assert "qbench gate: warning: GITHUB_STEP_SUMMARY: cannot append to" in one_line(capsys.readouterr().err)
    assert summary.read_text() == "## an earlier step\n"


@pytest.mark.parametrize("how", ["raises", "short write"])
def test_a_full_disk_never_leaves_half_a_summary(
    how: str, summary: Path, good: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    real = os.write

    def write(fd: int, data: bytes) -> int:
        written = real(fd, data[: len(data) // 2])
        if how == "raises":
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return written

    monkeypatch.setattr(files.os, "write", write)
    assert main(["gate", "--baseline", str(good), str(good)]) == 0
    assert "warning: GITHUB_STEP_SUMMARY" in one_line(capsys.readouterr().err)
    assert summary.read_text() == "## an earlier step\n"


def test_a_summary_on_a_full_tmpfs_is_left_as_it_was(
    good: Path, disk: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    summary = disk / "step_summary.md"
    earlier = "## an earlier step\n" + "x" * 4000 + "\n"  # most of one page: the verdict needs a second one
    summary.write_text(earlier)
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(summary))
    fill(disk, leave=0)
    assert main(["gate", "--baseline", str(good), str(good)]) == 0
    assert "No space left on device" in one_line(capsys.readouterr().err)
    assert summary.read_text() == earlier


# -- standard output and the seed cache ----------------------------------------------------------------------------


def qbench(*args: str, stdout: int | None = subprocess.PIPE) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "bench", *args],
        stdout=stdout,
        stderr=subprocess.PIPE,
        text=True,
        timeout=120,
        check=False,
    )


@pytest.mark.skipif(not Path("/dev/full").exists(), reason="no /dev/full on this system")
@pytest.mark.parametrize("command", ["export", "compare", "gate"])
def test_a_full_standard_output_is_one_line(command: str, good: Path) -> None:
    argv = {"export": ["export", str(good)], "compare": ["compare", str(good), str(good)]}
    with open("/dev/full", "w") as full:
        done = qbench(*argv.get(command, ["gate", "--baseline", str(good), str(good)]), stdout=full.fileno())
    assert done.returncode == 2
    assert one_line(done.stderr) == f"qbench {command}: error: [Errno 28] No space left on device"


def test_a_closed_pipe_stops_quietly(good: Path) -> None:
    read, write = os.pipe()
    os.close(read)  # the reader has gone before the first byte, like `| head -0`: deterministic
    try:
        done = qbench("export", str(good), stdout=write)
    finally:
        os.close(write)
    assert done.returncode == 141 and done.stderr == ""


@pytest.mark.parametrize("case", ["a file", "immutable parent"])
def test_an_unusable_cache_dir_is_one_line_before_anything_runs(
    case: str, tmp_path: Path, immutable: Callable[[Path], None], capsys: pytest.CaptureFixture[str]
) -> None:
    cache = tmp_path / "cache"
    if case == "a file":
        cache.write_text("not a directory")
    else:
        immutable(tmp_path)
    out = tmp_path.parent / f"{tmp_path.name}-results.json"
    assert main(["run", "--suite", "smoke", "--cache-dir", str(cache), "-o", str(out)]) == 2
    assert "cannot" in one_line(capsys.readouterr().err)
    assert not out.exists()


@pytest.mark.skipif(not Path("/dev/full").exists(), reason="no /dev/full on this system")
def test_a_device_is_written_in_place(good: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["export", str(good), "-o", "/dev/null"]) == 0
    assert main(["export", str(good), "-o", "/dev/full"]) == 2
    assert one_line(capsys.readouterr().err) == "qbench export: error: cannot write /dev/full: No space left on device"
