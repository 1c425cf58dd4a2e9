"""The repo is pushable to a Hugging Face Space: the Hub refuses a push holding binary files as plain git blobs,
so .gitattributes must route every binary file through LFS, and no text file the app reads through it.

Binary is decided by content, not by name. `git check-attr` only reads .gitattributes: git-lfs need not be installed.
Files are the tracked ones plus the untracked ones git would add (not ignored), so a new binary file fails here
before it is committed; CI runs on a clean clone, where that is just the tracked ones.
"""
import codecs
import io
import json
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.helpers import ROOT

SNIFF = 8192  # what git itself looks at to call a file binary
HUB_MAX_TEXT = 10 * 2**20  # the Hub refuses plain git files above 10 MB, binary or not
LFS_LINE = "filter=lfs diff=lfs merge=lfs -text"
HUB_DEFAULT = ("*.7z *.arrow *.bin *.bz2 *.ckpt *.ftz *.gz *.h5 *.joblib *.lfs.* *.mlmodel *.model *.msgpack *.npy "
               "*.npz *.onnx *.ot *.parquet *.pb *.pickle *.pkl *.pt *.pth *.rar *.safetensors saved_model/**/* "
               "*.tar.* *.tar *.tflite *.tgz *.wasm *.xz *.zip *.zst *tfevents*").split()
APP_TEXT = (".py", ".json", ".md", ".txt", ".toml", ".yaml", ".yml", ".sh", ".cfg", ".ini", ".gitattributes",
            ".gitignore")


def is_binary(head: bytes, complete: bool = True) -> bool:
    """Binary content: a NUL byte in the first 8 KiB, or bytes there that are not UTF-8. `complete`: `head` is
    the whole file (else a multi-byte character cut at the 8 KiB boundary is not held against it)."""
    head = head[:SNIFF]
    if b"\0" in head:
        return True
    try:
        codecs.getincrementaldecoder("utf-8")().decode(head, final=complete)
    except UnicodeDecodeError:
        return True
    return False


def is_binary_file(path: Path) -> bool:
    with open(path, "rb") as f:
        head = f.read(SNIFF + 1)
    return is_binary(head[:SNIFF], complete=len(head) <= SNIFF)


def _git(*args: str, stdin: bytes | None = None) -> bytes:
    return subprocess.run(["git", "-C", str(ROOT), *args], input=stdin, capture_output=True, check=True,
                          timeout=60).stdout


def _repo_files() -> list[str]:
    if shutil.which("git") is None:
        pytest.skip("git is not installed")
    try:
        if _git("rev-parse", "--show-toplevel").decode().strip() != str(ROOT.resolve()):
            pytest.skip(f"{ROOT} is not the root of a git work tree")
    except subprocess.CalledProcessError:
        pytest.skip(f"{ROOT} is not a git checkout")
    out = _git("ls-files", "-z", "--cached", "--others", "--exclude-standard")
    paths = sorted({p for p in out.decode().split("\0") if p})
    return [p for p in paths if (ROOT / p).is_file() and not (ROOT / p).is_symlink()]  # (deleted, not yet staged)


def lfs_filter(paths: list[str]) -> dict[str, str]:
    """path -> its `filter` attribute ("lfs", "unspecified", ...), for paths that need not exist."""
    out = _git("check-attr", "-z", "--stdin", "filter", stdin="".join(f"{p}\0" for p in paths).encode())
    fields = out.decode().split("\0")
    return {fields[i]: fields[i + 2] for i in range(0, len(fields) - 2, 3)}


@pytest.fixture(scope="module")
def files() -> dict[str, tuple[bool, str]]:
    """Every file of the repo: (binary by content, filter attribute)."""
    paths = _repo_files()
    attrs = lfs_filter(paths)
    return {p: (is_binary_file(ROOT / p), attrs[p]) for p in paths}


# --------------------------------------------------------------------------------------------- classifier

def _tiny_png() -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.new("L", (2, 2), 128).save(buf, format="PNG")
    return buf.getvalue()


def test_classifier_png_is_binary_json_is_text():
    assert is_binary(_tiny_png())
    assert not is_binary(json.dumps({"method": "relu", "acc": 0.7644, "note": "± → ‖W‖"},
                                    ensure_ascii=False).encode())
    assert not is_binary(b"")


def test_classifier_edge_cases():
    assert is_binary("café".encode("latin-1"))  # not UTF-8
    assert is_binary(b"text\0text")
    assert not is_binary(b"x" * (SNIFF - 1) + "→".encode()[:1], complete=False)  # character cut by the window
    assert is_binary(b"x" * (SNIFF - 1) + "→".encode()[:1], complete=True)  # ... or a truncated file
    assert not is_binary(b"a" * SNIFF + b"\0")  # past the window: git would not look either


def test_classifier_on_files(tmp_path):
    (tmp_path / "a.png").write_bytes(_tiny_png())
    (tmp_path / "a.json").write_text(json.dumps({"x": [1.5] * 5000}))  # longer than the window
    assert is_binary_file(tmp_path / "a.png")
    assert not is_binary_file(tmp_path / "a.json")


# ---------------------------------------------------------------------------------------------- the repo

def test_every_binary_file_goes_through_lfs(files):
    binary = [p for p, (b, _) in files.items() if b]
    assert binary, "expected binary files (checkpoints, assets) in the repo"
    plain = [p for p in binary if files[p][1] != "lfs"]
    assert not plain, f"binary files not routed through LFS by .gitattributes (the Hub refuses the push): {plain}"


def test_committed_kinds_are_covered(files):
    # the kinds the repo holds today, whatever else changes: weights, the sample, example images
    for suffix in (".safetensors", ".npz", ".png", ".jpg"):
        matching = [p for p in files if p.endswith(suffix)]
        assert matching, f"no {suffix} file in the repo?"
        assert all(files[p] == (True, "lfs") for p in matching), suffix


def test_no_app_text_file_goes_through_lfs(files):
    text = [p for p, (b, _) in files.items() if not b and (p.endswith(APP_TEXT) or Path(p).name in APP_TEXT)]
    for must in ("app.py", "README.md", "requirements.txt", ".gitattributes"):
        assert must in text, must
    assert any(p.startswith("core/") for p in text) and any(p.endswith("/metrics.json") for p in text)
    routed = [p for p in text if files[p][1] == "lfs"]
    assert not routed, f"text files the app reads are routed to LFS: {routed}"


def test_big_files_go_through_lfs(files):
    big = [p for p in files if (ROOT / p).stat().st_size > HUB_MAX_TEXT and files[p][1] != "lfs"]
    assert not big, f"files over 10 MB must be in LFS: {big}"


def test_patterns_for_files_not_yet_in_the_repo():
    _repo_files()  # skips without git
    lfs = [f"x/y{s}" for s in (".pt", ".pth", ".bin", ".onnx", ".npy", ".pkl", ".zip", ".tar.gz", ".gif", ".webp",
                               ".jpeg", ".JPG", ".tiff", ".avif", ".ico", ".bmp", ".pdf", ".ttf", ".woff2")]
    lfs += ["saved_model/variables/variables.index", "runs/events.out.tfevents.1.host", "a.lfs.json"]
    text = ["app.py", "core/new_module.py", "checkpoints/new/config.json", "checkpoints/new/metrics.json",
            "checkpoints/new/seeds/45.json", "assets/about.md", "README.md", "requirements.txt", "assets/logo.svg"]
    attrs = lfs_filter(lfs + text)
    assert [p for p in lfs if attrs[p] != "lfs"] == []
    assert [p for p in text if attrs[p] == "lfs"] == []


def test_hub_default_list_is_in_gitattributes():
    lines = {line.strip() for line in (ROOT / ".gitattributes").read_text().splitlines()}
    missing = [p for p in HUB_DEFAULT if f"{p} {LFS_LINE}" not in lines]
    assert not missing, missing
