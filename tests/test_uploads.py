"""Hostile and odd uploads through the launched app, the way a visitor's file travels: gradio_client uploads it
to /gradio_api/upload, then /classify hands the stored file to core.upload and core.preprocess.

The files are the ones test_upload.py and test_preprocess.py feed those directly (tests/imagefiles.py). Each gets a
correct result or one clear message, and the server keeps serving: the last test checks that.
"""
from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import httpx
import numpy as np
import pytest
from gradio_client import handle_file
from gradio_client.exceptions import AppError
from PIL import Image

from bench.load import wait_until_settled
from core.upload import MAX_BYTES, open_image
from tests import imagefiles as F
from tests.helpers import ROOT

EXAMPLES = ROOT / "assets" / "examples"


def ink(name: str) -> np.ndarray:
    """A real FashionMNIST test image (112x112, light item on black) from the committed examples."""
    return np.asarray(Image.open(EXAMPLES / name).convert("L"))


TROUSER, BAG = ink("1_trouser.png"), ink("8_bag.png")  # `relu` tells these two apart with >99% confidence


@pytest.fixture(scope="module")
def client(server):
    return server.client()


@pytest.fixture(scope="module")
def settled(server):
    """After start-up app.py loads the Playground's data (~0.3 GB), then renders comparisons, in a background
    thread: memory figures are about one request only once that is over. A server that has been up for two
    minutes (other test files ran first) is long done: a short check is enough."""
    young = time.perf_counter() - server.started < 120
    wait_until_settled(server.proc.pid, quiet=10.0 if young else 2.0, max_seconds=120)


def classify(client, path: Path):
    return client.predict(handle_file(str(path)), "baseline", "relu", api_name="/classify")


def assert_two_top5(result) -> tuple[dict, dict]:
    left, right = result
    for out in (left, right):
        assert isinstance(out, dict) and len(out["confidences"]) == 5, out
        values = [c["confidence"] for c in out["confidences"]]
        assert values == sorted(values, reverse=True) and all(0 <= v <= 1 for v in values)
        # the headline is the top class, or "No prediction" for a model that answers the same for every image
        assert sum(values) <= 1.0001 and out["label"] in (out["confidences"][0]["label"], "No prediction")
    return left, right


def status_kib(pid: int, field: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise KeyError(field)


# --- refused, with our one-sentence message (the app raises gr.Error(str(ImageError))) ---

DAMAGED = "The image data is damaged or incomplete (it is truncated)"


@pytest.mark.parametrize("write,name,message", [
    (F.text_named_png, "shirt.png", "The file is text, not an image (although its name ends in .png)"),
    (F.zip_named_png, "shirt.png", "The file is a ZIP archive, not an image (although its name ends in .png)"),
    (F.truncated_png, "cut.png", DAMAGED),
    (F.truncated_jpeg, "cut.jpg", DAMAGED),
    (F.empty_file, "empty.png", "The file is empty"),
], ids=["text-as-png", "zip-as-png", "truncated-png", "truncated-jpeg", "zero-bytes"])
@pytest.mark.app
def test_bad_file_gets_our_message(client, tmp_path, write, name, message):
    path = write(tmp_path / name)
    with pytest.raises(AppError) as info:
        classify(client, path)
    assert str(info.value) == message  # exactly ours: no traceback, no generic "Error"


BOMBS = [
    (30000, 30000, "The image has 900 megapixels; the limit is 40 megapixels"),  # PIL's bomb error range
    (10000, 10000, "The image has 100 megapixels; the limit is 40 megapixels"),  # PIL's bomb warning range
    (8000, 6000, "The image is 8000x6000 pixels; the limit is 40 megapixels"),  # under PIL's limits, over ours
]


@pytest.mark.parametrize("width,height,message", BOMBS, ids=["900MP", "100MP", "48MP"])
@pytest.mark.app
def test_decompression_bomb_is_refused_fast_without_memory(client, server, settled, tmp_path, width, height,
                                                           message):
    # Every row is stored (870 KB for 900 megapixels), so decoding would really cost width x height bytes;
    # test_a_bomb_is_real_when_decoded shows it does.
    path = F.bomb_png(tmp_path / "bomb.png", width, height, filled=True)
    assert path.stat().st_size < 1_000_000
    pid = server.proc.pid
    rss, peak = status_kib(pid, "VmRSS"), status_kib(pid, "VmHWM")
    start = time.perf_counter()
    with pytest.raises(AppError) as info:
        classify(client, path)
    seconds = time.perf_counter() - start
    assert str(info.value) == message
    assert seconds < 5.0, seconds  # upload + header check (~0.1 s idle; decoding 900 MP takes seconds)
    # The peak (VmHWM) also catches a decode that was freed again before we looked.
    grew = {"VmRSS": status_kib(pid, "VmRSS") - rss, "VmHWM": status_kib(pid, "VmHWM") - peak}
    assert max(grew.values()) < 50_000, grew  # KiB; decoding would add 48 MB, 100 MB, 900 MB


def test_a_bomb_is_real_when_decoded(tmp_path):
    """The control for the test above: with PIL's limit lifted, decoding the 48-megapixel bomb in a throwaway
    process raises its peak memory by ~48 MB (the 900-megapixel one: ~860 MB and seconds)."""
    path = F.bomb_png(tmp_path / "bomb.png", 8000, 6000, filled=True)
    code = ("import sys; from PIL import Image; Image.MAX_IMAGE_PIXELS = None\n"
            "hwm = lambda: int([l for l in open('/proc/self/status') if l.startswith('VmHWM')][0].split()[1])\n"
            "before = hwm(); im = Image.open(sys.argv[1]); im.load(); print(hwm() - before, im.getextrema())")
    run = subprocess.run([sys.executable, "-c", code, str(path)], capture_output=True, text=True, timeout=60)
    assert run.returncode == 0, run.stderr
    kib, extrema = run.stdout.split(maxsplit=1)
    assert int(kib) > 40_000 and extrema.strip() == "(0, 0)"


@pytest.mark.app
def test_file_over_20_mb_is_refused_before_upload(client, server, tmp_path):
    path = F.sparse_file(tmp_path / "huge.png", MAX_BYTES + 1)
    # gradio_client checks the app's max_file_size (app.launch(max_file_size=MAX_BYTES)) before uploading
    with pytest.raises(ValueError, match=f"exceeds the maximum file size of {MAX_BYTES} bytes"):
        classify(client, path)
    # a client that skips that check (curl, a script) is stopped by the upload route itself
    with open(path, "rb") as f:
        r = httpx.post(server.url + "gradio_api/upload", files={"files": ("huge.png", f, "image/png")},
                       timeout=60)
    assert r.status_code == 413
    assert r.text == f"File size exceeded maximum allowed size of {MAX_BYTES} bytes."


# --- odd but legitimate: a result, and the right one where it can be told ---

@pytest.mark.parametrize("write,name", [
    (F.one_pixel_png, "dot.png"),
    (F.strip_png, "strip.png"),  # 4000x10
    (F.gray16_png, "deep.png"),
    (F.cmyk_jpeg, "print.jpg"),
    (F.rgba_cutout_png, "cutout.png"),
    (F.animated_gif, "anim.gif"),
    (F.exif_rotated_jpeg, "phone.jpg"),
], ids=["1x1", "4000x10", "16-bit", "cmyk-jpeg", "rgba", "animated-gif", "exif-rotated"])
@pytest.mark.app
def test_odd_image_is_classified(client, tmp_path, write, name):
    odd = write(tmp_path / name)
    plain = tmp_path / "plain.png"
    open_image(odd).save(plain)  # the pixels core.upload decodes from it, as an ordinary PNG
    assert assert_two_top5(classify(client, odd)) == assert_two_top5(classify(client, plain))


@pytest.mark.parametrize("write,name", [
    (lambda p: F.gray16_png(p, TROUSER), "deep.png"),  # scaled from 16 bits, not clipped to white
    (lambda p: F.cmyk_jpeg(p, TROUSER), "print.jpg"),  # black ink on white paper, in CMYK
    (lambda p: F.rgba_cutout_png(p, TROUSER), "cutout.png"),  # transparent = background, red hidden in it
    (lambda p: F.animated_gif(p, [TROUSER, BAG]), "anim.gif"),  # the first frame
    (lambda p: F.exif_rotated_jpeg(p, TROUSER), "phone.jpg"),  # stored sideways, EXIF says turn it upright
], ids=["16-bit", "cmyk-jpeg", "rgba", "animated-gif", "exif-rotated"])
@pytest.mark.app
def test_odd_encodings_of_a_trouser_are_still_a_trouser(client, tmp_path, write, name):
    _, right = assert_two_top5(classify(client, write(tmp_path / name)))
    assert right["label"] == "Trouser" and right["confidences"][0]["confidence"] > 0.9, right


@pytest.mark.app
def test_the_trouser_checks_can_fail(client, tmp_path):
    """The controls: the same pixels without the EXIF tag, and the animation with its frames swapped,
    are not trousers, so the test above really checks orientation and frame choice."""
    sideways = tmp_path / "sideways.png"
    Image.fromarray(np.ascontiguousarray(np.rot90(TROUSER))).save(sideways)
    assert assert_two_top5(classify(client, sideways))[1]["label"] != "Trouser"
    swapped = F.animated_gif(tmp_path / "swapped.gif", [BAG, TROUSER])
    assert assert_two_top5(classify(client, swapped))[1]["label"] == "Bag"


@pytest.mark.app
def test_server_still_serves_after_all_of_the_above(client, server):
    """Runs last in this module (pytest keeps file order)."""
    assert server.alive()
    left, right = assert_two_top5(classify(client, EXAMPLES / "1_trouser.png"))
    assert right["label"] == "Trouser"
