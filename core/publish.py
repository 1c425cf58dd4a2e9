"""Publish to the Hugging Face Hub: the app as a Gradio Space, and optionally the checkpoints as a model repo.

    publish_space("OWNER/NAME")            app.py, core/, ui/, assets/, checkpoints/, requirements.txt,
                                           README.md (its YAML front matter is the Space's config),
                                           .gitattributes
    publish_checkpoints("OWNER/NAME")      checkpoints/ as a model repo, with a model card as its README.md
    space_files() / checkpoint_files()     exactly the files each would upload, with their sizes (offline)

The file lists are computed with the Hub client's own filter (`filter_repo_objects`) over the same walk of the
folder and the same patterns that `upload_folder` uses, so a dry run lists exactly what an upload sends.
Repo ids and the token are checked offline before any network call; every failure is a `PublishError` with a
one-line message. The command line is `python -m core publish` (core/cli.py).
"""
from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from huggingface_hub.utils import filter_repo_objects

PROJECT = Path(__file__).resolve().parent.parent
CHECKPOINTS = PROJECT / "checkpoints"

# What the Space needs to run, relative to the project root. fnmatch patterns, as upload_folder applies them:
# `*` also matches `/`, so "core/*" is all of core/. ui/: the app's parts, which app.py imports.
SPACE_ALLOW = ["app.py", "requirements.txt", "README.md", ".gitattributes", "core/*", "ui/*", "assets/*",
               "checkpoints/*"]
# Never uploaded, even inside an allowed folder: caches, the app's runtime folders, temp files of a checkpoint
# write in progress, the type stubs Gradio writes beside ui/widgets.py when it runs, hidden files in sub-folders,
# and the dev-only folders (not allowed anyway).
IGNORE = ["__pycache__", "*/__pycache__/*", "__pycache__/*", "*.pyc", "*.pyo", "*.pyi", "*.tmp", "*/.*",
          ".gradio/*", "*/.gradio/*", "flagged/*", "*/flagged/*", ".ipynb_checkpoints/*", "*/.ipynb_checkpoints/*"]
SPACE_IGNORE = IGNORE + ["tests/*", "bench/*", ".ci/*"]
CARD = "README.md"  # the model card's name in the checkpoints repo


class PublishError(RuntimeError):
    """Publishing failed; the message is one line, ready for `error: ...` on stderr."""


# ----------------------------------------------------------------------------------------- offline checks

def check_repo_id(repo_id: str | None, what: str = "repo id") -> str:
    """`repo_id` if it is OWNER/NAME as the Hub accepts it, else PublishError (no network involved)."""
    from huggingface_hub.errors import HFValidationError
    from huggingface_hub.utils import validate_repo_id

    text = (repo_id or "").strip()
    if text.count("/") != 1 or not all(text.split("/")):
        raise PublishError(f"bad {what} {repo_id!r}: expected OWNER/NAME, e.g. your-name/vanishing-gradient-lab")
    try:
        validate_repo_id(text)
    except HFValidationError as e:
        reason = str(e).splitlines()[0].rstrip(".")
        raise PublishError(f"bad {what} {repo_id!r}: {reason}") from None
    return text


def resolve_token(token: str | None = None) -> str:
    """The token to publish with: `token` (--token), else HF_TOKEN, else the cached `hf auth login` token."""
    from huggingface_hub import get_token

    token = (token or "").strip() or get_token()  # get_token(): HF_TOKEN first, then the token file in HF_HOME
    if not token:
        raise PublishError("no Hugging Face token: pass --token, set HF_TOKEN, or run `hf auth login` "
                           "(a token with write access: https://huggingface.co/settings/tokens)")
    return token


def check_space_config(readme: Path) -> dict:
    """README.md's YAML front matter, which the Space reads as its config; PublishError if it cannot serve."""
    from huggingface_hub.repocard import metadata_load

    try:
        meta = metadata_load(readme)
    except OSError as e:
        raise PublishError(f"cannot read {readme}: {e.strerror or e}") from None
    except ValueError as e:  # malformed YAML
        raise PublishError(f"{readme}: bad YAML front matter: {str(e).splitlines()[0]}") from None
    if not meta:
        raise PublishError(f"{readme} has no YAML front matter (---\\nsdk: gradio\\n...): the Space needs it")
    if meta.get("sdk") != "gradio":
        raise PublishError(f"{readme}: front matter says sdk: {meta.get('sdk')!r}, expected gradio")
    app_file = meta.get("app_file", "app.py")
    if not (readme.parent / app_file).is_file():
        raise PublishError(f"{readme}: app_file {app_file!r} does not exist")
    return meta


# ------------------------------------------------------------------------------------------ what is sent

def list_files(folder: Path, allow: list[str] | None = None, ignore: list[str] | None = None) -> list[tuple[str, int]]:
    """(path relative to `folder`, size in bytes) of every file `upload_folder(folder, allow_patterns=allow,
    ignore_patterns=ignore)` would upload, sorted: the same walk and the same filter it uses."""
    from huggingface_hub.utils._paths import DEFAULT_IGNORE_PATTERNS  # .git/ and .cache/huggingface/, always

    folder = Path(folder).resolve()
    if not folder.is_dir():
        raise PublishError(f"{folder} is not a folder")
    files = {p.relative_to(folder).as_posix(): p for p in sorted(folder.glob("**/*")) if p.is_file()}
    ignore = list(ignore or []) + DEFAULT_IGNORE_PATTERNS
    kept = filter_repo_objects(files, allow_patterns=allow, ignore_patterns=ignore)
    out = []
    for rel in kept:
        try:
            out.append((rel, files[rel].stat().st_size))
        except FileNotFoundError:  # removed since the walk (a temp file renamed into place): not uploaded either
            continue
    return out


def space_files(root: Path = PROJECT) -> list[tuple[str, int]]:
    """Every file the Space upload sends, with its size."""
    return list_files(root, SPACE_ALLOW, SPACE_IGNORE)


def checkpoint_files(folder: Path = CHECKPOINTS) -> list[tuple[str, int]]:
    """Every file of the checkpoints folder the model repo upload sends (besides the generated model card)."""
    return list_files(folder, None, IGNORE + [CARD])


def model_card(folder: Path = CHECKPOINTS, repo_id: str = "OWNER/NAME", space: str | None = None) -> str:
    """The checkpoints repo's README.md: what the models are, their accuracy, where the full table is, how to
    load one. Reads only the metrics.json files (no torch)."""
    from huggingface_hub import ModelCard, ModelCardData

    from .methods import METHODS

    folder = Path(folder)
    rows = []
    present = {p.name for p in folder.iterdir() if (p / "metrics.json").is_file()}
    for name in [n for n in METHODS if n in present] + sorted(present - set(METHODS)):  # registry order
        try:
            metrics = json.loads((folder / name / "metrics.json").read_text())
            acc = f"{float(metrics['test_acc']):.4f}"
            epochs = str(metrics.get("epochs", "–"))
        except (OSError, ValueError, KeyError, TypeError):
            acc = epochs = "–"
        seeds = 1 + len(list((folder / name / "seeds").glob("*.json")))
        title = METHODS[name].title if name in METHODS else name
        rows.append(f"| `{name}` | {title} | {acc} | {epochs} | {seeds} |")
    if not rows:
        raise PublishError(f"{folder} holds no checkpoint (no <method>/metrics.json)")
    example = next((r.split("`")[1] for r in rows if "`relu`" in r), rows[0].split("`")[1])
    space_line = (f"The app that shows them layer by layer: [the {space} Space](https://huggingface.co/spaces/{space})."
                  if space else "The app that shows them layer by layer is the Vanishing Gradient Lab Gradio Space.")
    data = ModelCardData(license="mit", library_name="pytorch", pipeline_tag="image-classification",
                         datasets=["zalando-datasets/fashion_mnist"], metrics=["accuracy"],
                         tags=["vanishing-gradient", "mlp", "fashion-mnist", "safetensors", "education"])
    body = f"""
# Vanishing Gradient Lab: checkpoints

A 7-layer sigmoid MLP (7x128) on FashionMNIST barely learns: the gradient that reaches its first layer is about
a million times smaller than the one at its output. These are that network and every classic cure for it,
one folder per method, each trained on the real FashionMNIST (54k/6k train/val split, 10k test set), seed 42.
{space_line}

Each `<method>/` folder holds `config.json` (the model config), `model.safetensors` (the weights),
`metrics.json` (every hyperparameter, the per-epoch per-layer gradient history, test accuracy and the
weights' SHA-256) and `seeds/<seed>.json` (the metrics of the same method trained with other seeds);
`experiments/` holds the results of the README's experiments (`python -m core experiment <name>`).

| method | what | test acc (seed 42) | epochs | runs |
|---|---|---|---|---|
{chr(10).join(rows)}

The full results table (every seed: mean and 95% interval or the outcome's groups, validation-judged learn
counts, backpropagated-error ratio first/last layer, weight change, reference accuracies) is in the
**Results** section of the project's README.md, written from these `metrics.json` files by
`python -m core results`.

## Load a checkpoint

The model class is the project's `core.models.DeepMLP`; load with its checker, `core.checkpoint.load_checkpoint`,
from a checkout of the project (or of the Space):

```python
from pathlib import Path
from huggingface_hub import snapshot_download
from core.checkpoint import load_checkpoint

local = Path(snapshot_download("{repo_id}", allow_patterns=["{example}/*"]))
model, metrics = load_checkpoint(local / "{example}")  # checks config, shapes, NaNs and the weights' hash
print(metrics["test_acc"])
logits = model(images.float() / 255)  # images: uint8 FashionMNIST, shape (N, 28, 28)
```

`load_checkpoint` never unpickles: weights are safetensors, everything else JSON.
Retrain any of them with `python -m core train --method <method>`.
"""
    return str(ModelCard(f"---\n{data.to_yaml()}\n---\n{body}"))


def dry_run(space: str, checkpoints_repo: str | None = None, root: Path = PROJECT) -> list[str]:
    """The lines `--dry-run` prints: every file each upload would send (size, path) and the total. Offline."""
    space = check_repo_id(space, "--space")
    if checkpoints_repo:
        checkpoints_repo = check_repo_id(checkpoints_repo, "--checkpoints-repo")
    check_space_config(root / "README.md")
    lines = _listing(f"space {space}", space_files(root))
    if checkpoints_repo:
        card = model_card(root / "checkpoints", checkpoints_repo, space).encode()
        lines.append("")
        lines += _listing(f"model {checkpoints_repo}", [(CARD, len(card))] + checkpoint_files(root / "checkpoints"))
    return lines


def _listing(target: str, files: list[tuple[str, int]]) -> list[str]:
    total = sum(size for _, size in files)
    return ([f"dry run: would upload to {target} (nothing sent):"]
            + [f"{size:>12d}  {path}" for path, size in files]
            + [f"total: {len(files)} files, {total} bytes ({total / 2**20:.1f} MiB)"])


# ------------------------------------------------------------------------------------------------ upload

def publish_space(repo_id: str, token: str | None = None, private: bool = False, root: Path = PROJECT) -> str:
    """Create the Gradio Space if needed and upload the allow-listed files in one commit; returns its URL."""
    from huggingface_hub import create_repo, upload_folder

    repo_id = check_repo_id(repo_id, "--space")
    check_space_config(root / "README.md")
    files = space_files(root)
    token = resolve_token(token)
    with hub_errors(repo_id):
        url = create_repo(repo_id, repo_type="space", space_sdk="gradio", exist_ok=True, private=private or None,
                          token=token)
        upload_folder(repo_id=repo_id, repo_type="space", folder_path=root, allow_patterns=list(SPACE_ALLOW),
                      ignore_patterns=list(SPACE_IGNORE), token=token,
                      commit_message=f"Publish the app ({len(files)} files) with python -m core publish")
    return str(url)


def publish_checkpoints(repo_id: str, token: str | None = None, private: bool = False,
                        folder: Path = CHECKPOINTS, space: str | None = None) -> str:
    """Create the model repo if needed and push every checkpoint plus a model card in one commit; its URL."""
    from huggingface_hub import CommitOperationAdd, create_commit, create_repo

    repo_id = check_repo_id(repo_id, "--checkpoints-repo")
    folder = Path(folder).resolve()
    card = model_card(folder, repo_id, space).encode()
    files = checkpoint_files(folder)
    token = resolve_token(token)
    operations = [CommitOperationAdd(path_in_repo=CARD, path_or_fileobj=card)]
    operations += [CommitOperationAdd(path_in_repo=path, path_or_fileobj=folder / path) for path, _ in files]
    with hub_errors(repo_id):
        url = create_repo(repo_id, repo_type="model", exist_ok=True, private=private or None, token=token)
        create_commit(repo_id, operations, repo_type="model", token=token,
                      commit_message=f"Publish {len(files)} checkpoint files with python -m core publish")
    return str(url)


def publish(space: str, checkpoints_repo: str | None = None, token: str | None = None, private: bool = False,
            root: Path = PROJECT) -> list[str]:
    """The Space, then (optionally) the checkpoints repo; every offline check for both runs before the first
    network call. Returns one line per published repo."""
    space = check_repo_id(space, "--space")
    if checkpoints_repo:
        checkpoints_repo = check_repo_id(checkpoints_repo, "--checkpoints-repo")
        model_card(root / "checkpoints", checkpoints_repo, space)  # fails now, not after the Space is pushed
    check_space_config(root / "README.md")
    token = resolve_token(token)
    lines = [f"published the Space: {publish_space(space, token, private, root)}"]
    if checkpoints_repo:
        url = publish_checkpoints(checkpoints_repo, token, private, root / "checkpoints", space)
        lines.append(f"published the checkpoints: {url}")
    return lines


# ---------------------------------------------------------------------------------------------- failures

@contextmanager
def hub_errors(repo_id: str) -> Iterator[None]:
    """Turn what a Hub call raises into a one-line PublishError; anything else (a bug) propagates."""
    try:
        yield
    except PublishError:
        raise
    except Exception as e:
        message = describe_failure(e, repo_id)
        if message is None:
            raise
        raise PublishError(message) from None


def describe_failure(e: BaseException, repo_id: str) -> str | None:
    """The one-line message for an exception a Hub call raised, or None if it is not a known failure."""
    from huggingface_hub import constants
    from huggingface_hub.errors import HfHubHTTPError, OfflineModeIsEnabled

    first = (str(e).strip().splitlines() or [type(e).__name__])[0]
    if isinstance(e, HfHubHTTPError):  # (before OSError: it is one)
        status = getattr(getattr(e, "response", None), "status_code", None)
        if status == 401:
            return ("the Hub rejected the token (HTTP 401): check --token / HF_TOKEN or run `hf auth login` again")
        if status == 403:
            return f"the token may not write to {repo_id} (HTTP 403): it needs write access to that owner"
        return f"the Hub refused ({f'HTTP {status}' if status else 'error'}): {first}"
    if isinstance(e, OfflineModeIsEnabled):
        return "HF_HUB_OFFLINE is set: unset it to publish"
    if _is_network_error(e):
        return f"cannot reach {constants.ENDPOINT}: {first} (no network? proxy? HF_ENDPOINT?)"
    if isinstance(e, OSError):  # a local file that vanished or cannot be read mid-upload
        where = f"{e.filename}: " if getattr(e, "filename", None) else ""
        return f"cannot read {where}{e.strerror or first}"
    if isinstance(e, ValueError):  # the client's own checks, e.g. README metadata the Hub rejects
        return f"the Hub client refused: {first}"
    return None


def _is_network_error(e: BaseException) -> bool:
    """Connection failures, timeouts and broken transfers from whichever HTTP library the client uses."""
    import importlib

    classes: list[type] = [ConnectionError, TimeoutError]
    for module, names in (("httpx2", ("TransportError",)), ("httpx", ("TransportError",)),
                          ("requests", ("ConnectionError", "Timeout"))):
        try:
            mod = importlib.import_module(module)
        except ImportError:
            continue
        classes += [getattr(mod, n) for n in names if isinstance(getattr(mod, n, None), type)]
    return isinstance(e, tuple(classes))
