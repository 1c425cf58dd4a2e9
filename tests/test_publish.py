"""`python -m core publish` and core/publish.py, offline: what a dry run lists, that it is exactly what the upload
sends, the model card, and one-line errors (bad repo id, no token, no network, a rejected token), never a traceback.
"""
import http.server
import json
import os
import shutil
import socket
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from core import publish
from core.methods import METHODS
from tests.helpers import ROOT


def _env(tmp_path: Path, **extra: str) -> dict[str, str]:
    """A subprocess environment with no Hugging Face login: an empty HF_HOME, no token variables."""
    env = {k: v for k, v in os.environ.items()
           if k not in ("HF_TOKEN", "HUGGING_FACE_HUB_TOKEN", "HF_TOKEN_PATH", "HF_ENDPOINT", "HF_HUB_OFFLINE")}
    home = tmp_path / "hf_home"
    home.mkdir(exist_ok=True)
    return {**env, "HF_HOME": str(home), "HF_HUB_DISABLE_TELEMETRY": "1", **extra}


def run_cli(tmp_path: Path, *args: str, cwd: Path = ROOT, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "core", "publish", *args], cwd=cwd, env=_env(tmp_path, **env),
                          capture_output=True, text=True, timeout=300)


def one_line_error(r: subprocess.CompletedProcess) -> str:
    assert r.returncode == 2, (r.returncode, r.stdout[-500:], r.stderr[-2000:])
    assert "Traceback" not in r.stderr, r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), r.stderr
    assert r.stdout == ""
    return lines[0]


def parse_dry_run(stdout: str) -> list[tuple[str, dict[str, int], int, int]]:
    """[(header, {path: size}, total files, total bytes)] per repo in a dry run's output."""
    sections = []
    for block in stdout.strip().split("\n\n"):
        header, *rows, total = block.splitlines()
        assert header.startswith("dry run: would upload to ")
        files = {}
        for row in rows:
            size, path = row.split(maxsplit=1)
            files[path] = int(size)
        assert total.startswith("total: "), total
        n, nbytes = total.removeprefix("total: ").split(" files, ")
        sections.append((header, files, int(n), int(nbytes.split(" bytes")[0])))
    return sections


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# ------------------------------------------------------------------------------------------ a project copy

STRAYS = ["core/__pycache__/cli.cpython-311.pyc", "core/stale.pyc", "ui/__pycache__/lab.cpython-311.pyc",
          "tests/test_x.py", "bench/bench_x.py",
          ".ci/run", ".gradio/flagged/log.csv", "flagged/log.csv", "checkpoints/relu/.metrics.json.ab12.tmp",
          "checkpoints/relu/seeds/.DS_Store", "assets/.cache/x.bin", "data/train.gz", "notes.txt", "app.pyi",
          "__pycache__/app.cpython-311.pyc", "assets/examples/__pycache__/x.pyc", ".git/config", "ui/widgets.pyi"]


@pytest.fixture(scope="module")
def project(tmp_path_factory) -> Path:
    """A small copy of the project (two checkpoints) with stray files no upload may send."""
    root = tmp_path_factory.mktemp("project")
    for name in ("app.py", "README.md", "requirements.txt", ".gitattributes"):
        shutil.copy2(ROOT / name, root / name)
    for folder in ("core", "ui"):
        shutil.copytree(ROOT / folder, root / folder, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copytree(ROOT / "assets", root / "assets")
    for method in ("baseline", "relu"):
        shutil.copytree(ROOT / "checkpoints" / method, root / "checkpoints" / method)
    for stray in STRAYS:
        (root / stray).parent.mkdir(parents=True, exist_ok=True)
        (root / stray).write_bytes(b"stray\0")
    return root


def expected_space_files(root: Path) -> set[str]:
    top = {"app.py", "README.md", "requirements.txt", ".gitattributes"}
    under = {p.relative_to(root).as_posix() for d in ("core", "ui", "assets", "checkpoints")
             for p in (root / d).rglob("*") if p.is_file()}
    return top | {p for p in under if p not in STRAYS}


def test_list_files_excludes_caches_and_dev_folders(project):
    listed = dict(publish.space_files(project))
    assert set(listed) == expected_space_files(project)
    assert listed["app.py"] == (project / "app.py").stat().st_size
    ckpt = {p for p, _ in publish.checkpoint_files(project / "checkpoints")}
    assert ckpt == {p.removeprefix("checkpoints/") for p in expected_space_files(project)
                    if p.startswith("checkpoints/")}
    assert {"relu/model.safetensors", "relu/metrics.json", "relu/config.json", "baseline/seeds/43.json"} <= ckpt


def test_dry_run_in_a_copy_lists_exactly_the_upload(project, tmp_path):
    r = run_cli(tmp_path, "--space", "me/lab", "--checkpoints-repo", "me/lab-checkpoints", "--dry-run", cwd=project)
    assert r.returncode == 0, r.stderr
    (space_header, space, n, total), (model_header, model, m, model_total) = parse_dry_run(r.stdout)
    assert "space me/lab" in space_header and "model me/lab-checkpoints" in model_header
    assert set(space) == expected_space_files(project)
    assert (n, total) == (len(space), sum(space.values()))
    assert space == dict(publish.space_files(project))
    assert set(model) == {"README.md"} | {p for p, _ in publish.checkpoint_files(project / "checkpoints")}
    assert (m, model_total) == (len(model), sum(model.values()))


def test_dry_run_of_the_real_project(tmp_path):
    r = run_cli(tmp_path, "--space", "me/vanishing-gradient-lab", "--dry-run")
    assert r.returncode == 0, r.stderr
    [(header, files, n, total)] = parse_dry_run(r.stdout)
    assert (n, total) == (len(files), sum(files.values()))
    for must in ("app.py", "ui/widgets.py", "requirements.txt", "README.md", "assets/fashion_mnist_sample.npz",
                 "checkpoints/relu/model.safetensors", "checkpoints/relu/metrics.json", "checkpoints/relu/config.json"):
        assert must in files, must
    assert {f"{d}/{p.name}" for d in ("core", "ui") for p in (ROOT / d).glob("*.py")} <= set(files)
    assert {f"assets/{p.relative_to(ROOT / 'assets').as_posix()}" for p in (ROOT / "assets").rglob("*")
            if p.is_file()} <= set(files)
    bad = [p for p in files if p.split("/")[0] in ("tests", "bench", ".ci", ".git", "data", ".benchmarks")
           or "__pycache__" in p or p.endswith((".pyc", ".tmp", ".pyi")) or "/." in p]
    assert not bad, bad


# -------------------------------------------------------------------------- what the upload really sends

class _Stop(Exception):
    pass


def test_upload_folder_sends_what_the_listing_says(project, monkeypatch):
    """The real upload_folder, stopped after it has chosen its files (nothing leaves the machine)."""
    import huggingface_hub
    from huggingface_hub.hf_api import HfApi

    calls, chosen = [], []
    original = HfApi._prepare_upload_folder_additions

    def spy(self, *args, **kwargs):
        chosen.extend(op.path_in_repo for op in original(self, *args, **kwargs))
        raise _Stop

    monkeypatch.setattr(HfApi, "_validate_yaml", lambda self, *a, **k: None)  # (a Hub call)
    monkeypatch.setattr(HfApi, "_prepare_upload_folder_additions", spy)
    monkeypatch.setattr(huggingface_hub, "create_repo", lambda *a, **k: calls.append((a, k)) or "https://x/spaces/a")
    with pytest.raises(_Stop):
        publish.publish_space("me/lab", token="hf_dummy", root=project)
    assert calls == [(("me/lab",), {"repo_type": "space", "space_sdk": "gradio", "exist_ok": True, "private": None,
                                    "token": "hf_dummy"})]
    assert sorted(chosen) == sorted(p for p, _ in publish.space_files(project))


def test_publish_checkpoints_commit(project, monkeypatch):
    import huggingface_hub

    commits, repos = [], []
    monkeypatch.setattr(huggingface_hub, "create_repo", lambda *a, **k: repos.append(k) or "https://x/me/ck")
    monkeypatch.setattr(huggingface_hub, "create_commit", lambda repo_id, ops, **k: commits.append((repo_id, ops, k)))
    url = publish.publish_checkpoints("me/ck", token="hf_dummy", private=True, folder=project / "checkpoints")
    assert url == "https://x/me/ck"
    assert repos == [{"repo_type": "model", "exist_ok": True, "private": True, "token": "hf_dummy"}]
    [(repo_id, ops, kwargs)] = commits
    assert repo_id == "me/ck" and kwargs["repo_type"] == "model"
    paths = {op.path_in_repo: op for op in ops}
    assert set(paths) == {"README.md"} | {p for p, _ in publish.checkpoint_files(project / "checkpoints")}
    assert "relu/model.safetensors" in paths and not any(".tmp" in p or "/." in p for p in paths)
    assert b"load_checkpoint" in paths["README.md"].path_or_fileobj


# ---------------------------------------------------------------------------------------------- the card

def test_model_card_names_every_method(tmp_path):
    from huggingface_hub import ModelCard

    text = publish.model_card(ROOT / "checkpoints", "me/lab-checkpoints", space="me/lab")
    card = ModelCard(text)
    assert card.data.license == "mit" and "fashion-mnist" in card.data.tags
    present = [m for m in METHODS if (ROOT / "checkpoints" / m / "metrics.json").is_file()]
    assert len(present) >= 10
    for name in present:
        assert f"| `{name}` | {METHODS[name].title} |" in text, name
    relu = json.loads((ROOT / "checkpoints" / "relu" / "metrics.json").read_text())
    assert f"{relu['test_acc']:.4f}" in text
    for must in ("core.checkpoint", "load_checkpoint", 'snapshot_download("me/lab-checkpoints"', "Results",
                 "https://huggingface.co/spaces/me/lab"):
        assert must in text, must


def test_model_card_without_checkpoints(tmp_path):
    with pytest.raises(publish.PublishError, match="no checkpoint"):
        publish.model_card(tmp_path)


# ---------------------------------------------------------------------------------------- offline checks

@pytest.mark.parametrize("repo_id", ["", "lab", "me/", "/lab", "a/b/c", "me/x--y", "me/la b", "me/lab.git",
                                     "me/" + "x" * 100, "-me/lab"])
def test_bad_repo_ids(repo_id):
    with pytest.raises(publish.PublishError, match="^bad --space"):
        publish.check_repo_id(repo_id, "--space")


def test_good_repo_ids():
    assert publish.check_repo_id("me/lab") == "me/lab"
    assert publish.check_repo_id(" Me-2/vanishing_gradient.lab ") == "Me-2/vanishing_gradient.lab"


def test_token_order(monkeypatch):
    monkeypatch.setenv("HF_TOKEN", "hf_from_env")
    assert publish.resolve_token("hf_from_flag") == "hf_from_flag"
    assert publish.resolve_token(None) == "hf_from_env"


def test_readme_front_matter_is_checked(tmp_path):
    (tmp_path / "app.py").write_text("")
    (tmp_path / "README.md").write_text("# no front matter\n")
    with pytest.raises(publish.PublishError, match="no YAML front matter"):
        publish.check_space_config(tmp_path / "README.md")
    (tmp_path / "README.md").write_text("---\nsdk: streamlit\n---\n# x\n")
    with pytest.raises(publish.PublishError, match="expected gradio"):
        publish.check_space_config(tmp_path / "README.md")
    assert publish.check_space_config(ROOT / "README.md")["sdk"] == "gradio"


def test_failure_messages():
    import httpx2
    import requests

    assert publish.describe_failure(httpx2.ConnectError("refused"), "me/x").startswith("cannot reach ")
    assert publish.describe_failure(requests.ConnectionError("down"), "me/x").startswith("cannot reach ")
    assert publish.describe_failure(TimeoutError("slow"), "me/x").startswith("cannot reach ")
    assert publish.describe_failure(KeyError("bug"), "me/x") is None  # a bug keeps its traceback


# -------------------------------------------------------------------------------------------- CLI errors

def test_cli_bad_repo_id(tmp_path):
    line = one_line_error(run_cli(tmp_path, "--space", "not-a-repo-id", "--token", "hf_dummy"))
    assert "OWNER/NAME" in line
    line = one_line_error(run_cli(tmp_path, "--space", "me/lab", "--checkpoints-repo", "me/a/b", "--dry-run"))
    assert "--checkpoints-repo" in line


def test_cli_no_token(tmp_path):
    line = one_line_error(run_cli(tmp_path, "--space", "me/lab", HF_TOKEN=""))
    assert "no Hugging Face token" in line and "HF_TOKEN" in line


def test_cli_no_network(tmp_path):
    endpoint = f"http://127.0.0.1:{_closed_port()}"  # huggingface_hub reads HF_ENDPOINT when imported
    line = one_line_error(run_cli(tmp_path, "--space", "me/lab", "--token", "hf_dummy", HF_ENDPOINT=endpoint))
    assert line.startswith(f"error: cannot reach {endpoint}")


class _Refuse(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        body = json.dumps({"error": "Invalid credentials in Authorization header"}).encode()
        self.send_response(401)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_GET = do_PUT = do_POST

    def log_message(self, *args):
        pass


def test_cli_rejected_token(tmp_path):
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Refuse)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        endpoint = f"http://127.0.0.1:{server.server_address[1]}"
        line = one_line_error(run_cli(tmp_path, "--space", "me/lab", "--token", "hf_bad", HF_ENDPOINT=endpoint))
    finally:
        server.shutdown()
        server.server_close()
    assert "rejected the token (HTTP 401)" in line


def test_the_space_gets_every_module_the_app_imports():
    """A module of this project that app.py needs (directly or through another one) that the allow-list misses
    would leave the Space unable to start; one it does not need is sent anyway only if it is core/ or ui/."""
    import ast
    uploaded = {name for name, _ in publish.space_files(ROOT)}
    todo, seen = ["app.py"], set()
    while todo:
        name = todo.pop()
        seen.add(name)
        package = name.rsplit("/", 1)[0] if "/" in name else ""
        for node in ast.walk(ast.parse((ROOT / name).read_text())):
            if isinstance(node, ast.Import):
                modules = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = (package + ("." + node.module if node.module else "")) if node.level else node.module
                modules = [base] + [f"{base}.{a.name}" for a in node.names]
            else:
                continue
            for module in modules:
                local = module.replace(".", "/") + ".py"
                if (ROOT / local).is_file() and local not in seen:
                    todo.append(local)
    assert {"app.py", "ui/tabs.py", "ui/playground_tab.py", "ui/widgets.py", "core/train.py"} <= seen
    assert seen <= uploaded, seen - uploaded
    assert {p.split("/")[0] for p in seen} == {"app.py", "core", "ui"}
