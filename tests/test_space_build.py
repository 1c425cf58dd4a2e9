"""The Space builds as the Hub builds it (bench/space_build.py): its Python, its pip command, pip check, and the
app it serves answers. Also what the build reads: the front matter and the requirements, checked offline."""
import re
import tomllib

import pytest

from bench import space_build
from tests.helpers import ROOT


def _requirements(name: str) -> list[str]:
    lines = [line.split("#")[0].strip() for line in (ROOT / name).read_text().splitlines()]
    return [line for line in lines if line and not line.startswith("-r ")]


def test_front_matter_names_what_the_hub_needs():
    meta = space_build.front_matter()
    assert meta["sdk"] == "gradio" and meta["app_file"] == "app.py"
    # ZeroGPU runs only the Pythons its docs list (3.10.13, 3.12.12); numpy 2.4 and matplotlib 3.11 need 3.11+
    assert str(meta["python_version"]) == "3.12"
    from huggingface_hub import SpaceHardware
    assert meta["suggested_hardware"] in {h.value for h in SpaceHardware}
    assert meta["datasets"] == ["zalando-datasets/fashion_mnist"] and len(meta["models"]) == 1
    assert {"vanishing-gradient", "fashion-mnist"} <= set(meta["tags"])
    builder = space_build.builder_command(meta)
    assert builder[:3] == ["pip", "install", "-r"] and f"gradio[oauth,mcp]=={meta['sdk_version']}" in builder


def test_requirements_pin_what_the_builder_installs_beside_them():
    pin = re.compile(r"([A-Za-z0-9_.\-\[\]]+)==(\S+)$")  # every runtime requirement is an exact pin
    reqs = dict(pin.match(line).groups() for line in _requirements("requirements.txt"))
    meta = space_build.front_matter()
    assert reqs["gradio[mcp]"] == str(meta["sdk_version"])  # the same gradio as the builder's, no second pin
    # ZeroGPU's supported torch versions (its docs' full list); the checkpoints retrain bit for bit with it
    assert reqs["torch"] in {"2.8.0", "2.9.1", "2.10.0", "2.11.0"}
    from packaging.version import Version
    assert Version(reqs["pydantic"]) <= Version("2.12.5")  # gradio 6.31.0's mcp extra: pydantic<=2.12.5
    assert "spaces" not in reqs and "torchvision" not in reqs  # the builder adds spaces; the Space needs no torchvision


def test_pyproject_mirrors_the_requirements():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert project["dependencies"] == _requirements("requirements.txt")
    assert project["optional-dependencies"]["dev"] == _requirements("requirements-dev.txt")


@pytest.mark.app
@pytest.mark.space
def test_the_space_builds_as_the_hub_builds_it_and_answers(tmp_path, capsys):
    meta = space_build.front_matter()
    python = space_build.build(tmp_path / "venv", meta)  # a fresh venv, the builder's command, pip check
    out = capsys.readouterr().out
    assert "No broken requirements found." in out
    version = space_build.run([str(python), "-c", "import sys, torch, spaces; print(sys.version.split()[0], "
                               "torch.__version__)"], "versions")
    assert version.startswith(str(meta["python_version"]) + ".") and " 2.11.0" in version
    answers = space_build.call_app(python)  # app.py from that environment: /compare, /classify, a Playground run
    assert answers["classify"]["best"] == "Sneaker" and "Batch" in answers["compare"]
