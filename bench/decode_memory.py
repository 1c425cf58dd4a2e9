"""Memory and time of decoding one huge upload: what a single visitor's file costs the server.

    python -m bench.decode_memory            # every case below, one fresh process per measurement
    python -m bench.decode_memory --quick    # the 16-bit PNG and the two 8-concurrent cases only

Every file is just under core.upload's 40-megapixel limit and small on disk (the 16-bit grayscale PNG is
~100 KB), so it passes every check made before decoding. Each measurement runs in a fresh Python process:
it imports core.preprocess, warms up on a tiny image, then resets the kernel's peak-RSS counter
(/proc/self/clear_refs) and decodes. "peak extra" is VmHWM minus the VmRSS just before the decode: the
memory the decode itself took at its worst, including anything freed again before it returned. "8 threads"
decodes the same file in 8 threads at once, as 8 visitors uploading together would (the app runs events in
threads). Time is wall clock (and the process's CPU seconds, which other processes on a shared machine do
not inflate).
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from bench.common import ROOT, loadavg

SIDE = 6320  # 6320 x 6320 = 39.9 megapixels
CAMERA = (7296, 5472)  # a 40-megapixel camera's frame: 39.9 megapixels


def _status_kib(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise KeyError(field)


def child(what: str, path: str, threads: int) -> None:
    """One measurement, in this (fresh) process: prints one JSON line."""
    import numpy as np

    from core.preprocess import preprocess
    from core.upload import ImageError, open_image
    run = {"open_image": open_image, "preprocess": preprocess}[what]
    run(np.zeros((8, 8), np.uint8))  # lazy imports and first-call allocations are not the decode's
    Path("/proc/self/clear_refs").write_text("5")  # VmHWM := VmRSS
    before = _status_kib("VmRSS")
    errors, barrier = [], threading.Barrier(threads)

    def one():
        barrier.wait()
        try:
            run(path)
        except ImageError as e:
            errors.append(str(e))
    wall, cpu = time.perf_counter(), time.process_time()
    workers = [threading.Thread(target=one) for _ in range(threads)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    print(json.dumps({"peak_extra_mb": (_status_kib("VmHWM") - before) / 1024, "wall_s": time.perf_counter() - wall,
                      "cpu_s": time.process_time() - cpu, "errors": sorted(set(errors)), "failed": len(errors)}))


def measure(what: str, path: Path, threads: int = 1) -> dict:
    out = subprocess.run([sys.executable, "-m", "bench.decode_memory", "--child", what, str(path), str(threads)],
                         cwd=ROOT, capture_output=True, text=True, timeout=600)
    if out.returncode != 0:
        raise SystemExit(f"measurement failed: {what} {path.name}:\n{out.stderr[-2000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def make_files(folder: Path, quick: bool) -> dict[str, Path]:
    import numpy as np
    from PIL import Image

    from tests.imagefiles import deep_png
    files = {"16-bit grayscale PNG": deep_png(folder / "gray16.png", SIDE, SIDE)}
    w, h = CAMERA
    photo = Image.new("RGB", CAMERA, (235, 232, 228))  # a dark item on a light backdrop, as a product photo
    photo.paste((40, 50, 70), (w // 3, h // 4, 2 * w // 3, 3 * h // 4))
    photo.save(folder / "photo.jpg", quality=90)
    files["8-bit RGB JPEG"] = folder / "photo.jpg"
    if quick:
        return files
    files["16-bit RGB PNG"] = deep_png(folder / "rgb16.png", SIDE, SIDE, channels=3)
    files["16-bit RGBA PNG"] = deep_png(folder / "rgba16.png", SIDE, SIDE, channels=4)
    gray = Image.new("L", (SIDE, SIDE), 0)
    gray.paste(200, (SIDE // 3, SIDE // 3, 2 * SIDE // 3, 2 * SIDE // 3))
    gray.save(folder / "gray8.png")
    files["8-bit grayscale PNG"] = folder / "gray8.png"
    palette = gray.convert("P")
    palette.save(folder / "palette.png")
    files["palette PNG"] = folder / "palette.png"
    cutout = Image.new("LA", (SIDE, SIDE), (0, 0))
    cutout.paste((60, 255), (SIDE // 3, SIDE // 3, 2 * SIDE // 3, 2 * SIDE // 3))
    cutout.save(folder / "cutout.png")
    files["8-bit LA cut-out PNG"] = folder / "cutout.png"
    Image.merge("CMYK", [Image.new("L", CAMERA, 0)] * 3 + [photo.convert("L")]).save(folder / "print.jpg", quality=90)
    files["CMYK JPEG"] = folder / "print.jpg"
    a = np.zeros((SIDE, SIDE), np.float32)
    a[SIDE // 3: 2 * SIDE // 3, SIDE // 3: 2 * SIDE // 3] = 0.6
    Image.fromarray(a).save(folder / "float.tif", compression="tiff_adobe_deflate")
    del a
    files["32-bit float TIFF"] = folder / "float.tif"
    return files


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="the 16-bit PNG and the 8-concurrent cases only")
    parser.add_argument("--child", nargs=3, metavar=("WHAT", "PATH", "THREADS"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        child(args.child[0], args.child[1], int(args.child[2]))
        return 0
    print(f"decode memory, load average {loadavg()}")
    row = "{:<22s} {:>9s} {:<15s} {:>10s} {:>7s} {:>7s}  {}"
    print(row.format("file", "size", "what", "peak extra", "wall", "cpu", "refused"))
    with tempfile.TemporaryDirectory(prefix="decode-memory-") as folder:
        files = make_files(Path(folder), args.quick)
        cases = [(name, path, what, 1) for name, path in files.items() for what in ("open_image", "preprocess")
                 if not args.quick or name.startswith("16-bit")]
        cases += [(name, files[name], "preprocess", 8) for name in ("16-bit grayscale PNG", "8-bit RGB JPEG")]
        for name, path, what, threads in cases:
            r = measure(what, path, threads)
            label = what if threads == 1 else f"{what} x{threads}"
            print(row.format(name, f"{path.stat().st_size / 1e3:,.0f} KB", label, f"{r['peak_extra_mb']:,.0f} MB",
                             f"{r['wall_s']:.2f} s",
                             f"{r['cpu_s']:.2f} s", f"{r['failed']} {r['errors'][:1]}" if r["failed"] else "0"),
                  flush=True)
    print(f"load average at end {loadavg()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
