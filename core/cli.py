"""Every command line of the project: `python -m core <command>`. Imported by nothing but core/__main__.py.

    python -m core train --method relu        train a method, write checkpoints/relu/
    python -m core evaluate --all             recorded vs re-measured test accuracy of the checkpoints
    python -m core results --write-readme     the results table (stdout, or into README.md)
    python -m core make-sample                write assets/fashion_mnist_sample.npz from the real test set
    python -m core make-examples              rewrite assets/examples/ by core.examples' rule
    python -m core experiment grad-norm-fate  an experiment behind the README: checkpoints/experiments/<name>.json
    python -m core ood                        fit the "not clothing" detector, write assets/ood/, print its report

Bad arguments get one line on stderr and exit code 2, never a usage dump or a traceback.
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from dataclasses import replace
from pathlib import Path

import torch

from .checkpoint import ROOT, CheckpointError, load_checkpoint, save_checkpoint, write_json
from .data import SAMPLE_PATH, DatasetError, load_fashion_mnist, load_raw, make_sample
from .evaluate import KINDS, accuracy, photo_check, sample_accuracy
from .experiments import EXPERIMENTS, run_experiment
from .experiments import OUT as EXPERIMENTS_OUT
from .interrupts import ended_by_signal, install
from .methods import METHODS, Method, get_method
from .results import markdown_table, results_rows, write_readme
from .train import check_device, train_method


class OneLineParser(argparse.ArgumentParser):
    """Bad arguments get one line on stderr and exit code 2, not a usage dump."""

    def error(self, message: str):
        self.exit(2, f"error: {message}\n")


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be positive, got {value}")
    return value


def _known_methods(parser: argparse.ArgumentParser, names: list[str] | None) -> None:
    unknown = [n for n in names or [] if n not in METHODS]
    if unknown:
        parser.error(f"unknown method {unknown[0]!r}; valid: {', '.join(METHODS)}")


# --------------------------------------------------------------------------------------------------- train

def train_and_save(method: Method, out: Path, data_dir: str | None, limit: int | None, metrics_only: bool,
                   device: str = "cpu", progress: bool = True) -> str:
    """Train one method on `device` and write its checkpoint (or only its metrics); return a one-line summary."""
    data = load_fashion_mnist(data_dir, seed=method.seed, limit=limit)
    model, metrics = train_method(method, data, progress=progress, device=device)
    metrics["limit"] = limit
    metrics["sample_acc"] = sample_accuracy(model)
    if metrics_only:
        path = out / method.name / "seeds" / f"{method.seed}.json"
        write_json(path, metrics, compact=True)
    else:
        path = save_checkpoint(model, metrics, out / method.name)
    status = f" ({metrics['stopped']})" if metrics["stopped"] else ""
    return f"{method.name}: test_acc {metrics['test_acc']:.4f}, {metrics['train_seconds']:.0f} s{status} -> {path}"


def _train_job(job, progress: bool = False) -> str:
    # The thread count is part of what fixes the weights: another count sums the matmuls in another order.
    *args, threads = job
    torch.set_num_threads(threads)
    return train_and_save(*args, progress=progress)


def train(args, parser) -> int:
    if args.list:
        for m in METHODS.values():
            print(f"{m.name:16s} {m.title}")
        return 0
    _known_methods(parser, args.method)
    try:
        check_device(args.device)
    except ValueError as e:
        parser.error(f"--device {args.device}: {e}")
    if args.seed and len(args.seed) > 1 and not args.metrics_only:
        parser.error("several seeds need --metrics-only (one checkpoint folder per method holds one seed)")
    out = Path(args.out)
    try:
        out.mkdir(parents=True, exist_ok=True)
        if not os.access(out, os.W_OK):
            raise PermissionError("not writable")
    except OSError as e:
        parser.error(f"cannot write to --out {out}: {e.strerror or e}")
    try:  # fail fast, before any training, when the data is missing or corrupt
        load_raw(args.data_dir)
    except DatasetError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    chosen = list(METHODS.values()) if args.all else [get_method(n) for n in args.method]
    methods = [replace(m, **{k: v for k, v in (("seed", seed), ("epochs", args.epochs)) if v is not None})
               for seed in (args.seed or [None]) for m in chosen]
    jobs = [(m, out, args.data_dir, args.limit, args.metrics_only, args.device, args.threads) for m in methods]
    start = time.perf_counter()
    if args.jobs == 1:
        for job in jobs:
            print(_train_job(job, progress=True), flush=True)
    else:
        from concurrent.futures import ProcessPoolExecutor
        # longest first, so the last job to finish is a short one
        jobs.sort(key=lambda j: -j[0].epochs * max(1, len(j[0].stages)) * j[0].model.depth)
        with ProcessPoolExecutor(args.jobs) as pool:
            for line in pool.map(_train_job, jobs):
                print(line, flush=True)
    if len(jobs) > 1:
        print(f"trained {len(jobs)} runs in {time.perf_counter() - start:.0f} s with --jobs {args.jobs}")
    return 0


# ------------------------------------------------------------------------------------------------ evaluate

def evaluate(args, parser) -> int:
    _known_methods(parser, args.method)
    names = list(METHODS) if args.all else args.method
    root = Path(args.checkpoints)
    if args.photos:
        return _photos(names, root)
    try:
        test = load_fashion_mnist(args.data_dir).test
    except DatasetError as e:
        print(f"note: {e}\n      measuring on the committed sample only", file=sys.stderr)
        test = None
    print(f"{'method':16s} {'recorded':>9s} {'measured':>9s} {'sample rec':>10s} {'sample now':>10s}")
    failed = 0
    for name in names:
        try:
            model, metrics = load_checkpoint(root / name)
        except CheckpointError as e:
            print(f"{name:16s} error: {e}")
            failed += 1
            continue
        measured = f"{accuracy(model, test):9.4f}" if test is not None else f"{'-':>9s}"
        print(f"{name:16s} {metrics['test_acc']:9.4f} {measured} {metrics.get('sample_acc', float('nan')):10.4f} "
              f"{sample_accuracy(model):10.4f}")
    return 1 if failed else 0


def _photos(names: list[str], root: Path) -> int:
    print(f"{'method':16s} {'n':>4s} {'agree':>6s} {'acc orig':>8s} {'acc photo':>9s} {'relative':>8s}  "
          + " ".join(f"{k[:8]:>8s}" for k in KINDS))
    for name in names:
        try:
            model, _ = load_checkpoint(root / name)
        except CheckpointError as e:
            print(f"{name:16s} error: {e}")
            continue
        r = photo_check(model)
        print(f"{name:16s} {r['n']:4d} {r['agreement']:6.3f} {r['accuracy_original']:8.3f} "
              f"{r['accuracy_photo']:9.3f} {r['relative']:8.3f}  "
              + " ".join(f"{r['per_kind'][k]:8.3f}" for k in KINDS))
    return 0


# ------------------------------------------------------------------------------------------ results, data

def results(args, parser) -> int:
    try:
        rows = results_rows()  # strict: the README is never written from a damaged file
    except CheckpointError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    if args.write_readme:
        print("README.md updated" if write_readme(rows) else "README.md already up to date")
    else:
        print(markdown_table(rows))
    return 0


def experiment(args, parser) -> int:
    out = Path(args.out)
    try:
        load_raw(args.data_dir)  # every experiment reads the real data: fail before any work when it is missing
    except DatasetError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    torch.set_num_threads(args.threads)
    result = run_experiment(args.name, data_dir=args.data_dir)
    write_json(out / f"{args.name}.json", result)
    print(EXPERIMENTS[args.name].table(result))
    print(f"wrote {out / (args.name + '.json')} ({result['seconds']:.0f} s)")
    return 0


def sample(args, parser) -> int:
    try:
        make_sample(data_dir=args.data_dir)
    except DatasetError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(f"wrote {SAMPLE_PATH}")
    return 0


def make_examples(args, parser) -> int:
    from . import examples  # (only this command writes them)
    try:
        written = examples.write()
    except (DatasetError, examples.ood.DetectorError, OSError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(f"wrote {len(written)} examples to {examples.FOLDER}")
    return 0


def ood(args, parser) -> int:
    from . import ood as detector  # (only this command fits or measures the detector)
    torch.set_num_threads(1)  # as `train`: the fitted weights depend on the thread count in the last bits
    out = Path(args.out)
    if not args.report_only:
        try:
            out.mkdir(parents=True, exist_ok=True)
            if not os.access(out, os.W_OK):
                raise PermissionError("not writable")
        except OSError as e:
            parser.error(f"cannot write to --out {out}: {e.strerror or e}")
    try:
        fitted = detector.load(out) if args.report_only else None  # a damaged file fails before the data loads
        data = load_fashion_mnist(args.data_dir)
        if fitted is None:
            print("fitting on the training split (a few minutes)...", file=sys.stderr, flush=True)
            fitted = detector.fit(data)
        print("measuring...", file=sys.stderr, flush=True)
        rates = detector.measure(fitted, data)
    except (DatasetError, detector.DetectorError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    record = {**fitted.record, "rates": rates}
    if not args.report_only:
        detector.save(replace(fitted, record=record), out)
        print(f"wrote {out}", file=sys.stderr)
    elif rates != fitted.record["rates"]:
        print("note: the measured rates differ from the recorded ones (another torch or dataset?)", file=sys.stderr)
    print(detector.report_table(record))
    return 0


def publish(args, parser) -> int:
    from .publish import PublishError, dry_run
    from .publish import publish as push  # (huggingface_hub only for this command)
    try:
        lines = dry_run(args.space, args.checkpoints_repo) if args.dry_run else \
            push(args.space, args.checkpoints_repo, token=args.token, private=args.private)
    except PublishError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print("\n".join(lines))
    return 0


# --------------------------------------------------------------------------------------------------- main

def build_parser() -> OneLineParser:
    parser = OneLineParser(prog="python -m core", description=__doc__,
                           formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True, parser_class=OneLineParser)

    p = commands.add_parser("train", help="train methods and write checkpoints")
    what = p.add_mutually_exclusive_group(required=True)
    what.add_argument("--list", action="store_true", help="list the methods and exit")
    what.add_argument("--method", nargs="+", metavar="NAME", help="the method(s) to train (see --list)")
    what.add_argument("--all", action="store_true", help="train every method")
    p.add_argument("--seed", type=int, nargs="+",
                   help="seed(s) for the split, init and batch order (default: the method's); several seeds "
                        "train each method once per seed (with --metrics-only)")
    p.add_argument("--epochs", type=_positive, help="epochs (per stage for layer-wise); default: the spec's")
    p.add_argument("--limit", type=_positive, help="use only the first N training images")
    p.add_argument("--out", default=str(ROOT), help="folder for <out>/<method>/ (default: %(default)s)")
    p.add_argument("--data-dir", help="folder with the FashionMNIST IDX files")
    p.add_argument("--metrics-only", action="store_true",
                   help="write only <out>/<method>/seeds/<seed>.json (extra seeds for the results table)")
    p.add_argument("--jobs", type=_positive, default=1, help="runs trained in parallel, one process each")
    p.add_argument("--threads", type=_positive, default=1,
                   help="torch threads per run (default: %(default)s, the setting the committed checkpoints were "
                        "trained with: with another count the weights differ in the last bits)")
    p.add_argument("--device", default="cpu",
                   help="cpu (default: what reproduces the committed checkpoints bit for bit) or cuda (faster "
                        "where there is a GPU; its sums run in another order, so the weights differ in the last "
                        "bits)")
    p.set_defaults(run=train)

    p = commands.add_parser("evaluate", help="re-measure committed checkpoints")
    what = p.add_mutually_exclusive_group(required=True)
    what.add_argument("--method", nargs="+", metavar="NAME", help="method(s) (see train --list)")
    what.add_argument("--all", action="store_true", help="every method with a checkpoint")
    p.add_argument("--checkpoints", default=str(ROOT), help="folder of checkpoints (default: %(default)s)")
    p.add_argument("--data-dir", help="folder with the FashionMNIST IDX files")
    p.add_argument("--photos", action="store_true",
                   help="instead: how often photo-like versions of sample images keep their prediction")
    p.set_defaults(run=evaluate)

    p = commands.add_parser("results", help="print the results table")
    p.add_argument("--write-readme", action="store_true", help="update the table in README.md")
    p.set_defaults(run=results)

    p = commands.add_parser("experiment", help="run an experiment behind the README's claims, write its JSON")
    p.add_argument("name", choices=list(EXPERIMENTS), help="the experiment (see core/experiments.py)")
    p.add_argument("--out", default=str(EXPERIMENTS_OUT), help="folder for <name>.json (default: %(default)s)")
    p.add_argument("--data-dir", help="folder with the FashionMNIST IDX files")
    p.add_argument("--threads", type=_positive, default=1, help="torch threads (default: %(default)s)")
    p.set_defaults(run=experiment)

    p = commands.add_parser("make-sample", help=f"write {SAMPLE_PATH.name} from the real test set")
    p.add_argument("--data-dir", help="folder with the FashionMNIST IDX files")
    p.set_defaults(run=sample)

    p = commands.add_parser("make-examples", help="rewrite the Classify tab's examples by core.examples' rule")
    p.set_defaults(run=make_examples)

    p = commands.add_parser("ood", help="fit the 'not clothing' detector and print its measured rates")
    p.add_argument("--report-only", action="store_true",
                   help="fit nothing, write nothing: measure the detector in --out again and print the report")
    p.add_argument("--out", default=str(ROOT.parent / "assets" / "ood"),
                   help="folder of the detector's two files (default: %(default)s)")
    p.add_argument("--data-dir", help="folder with the FashionMNIST IDX files")
    p.set_defaults(run=ood)

    p = commands.add_parser("publish", help="push the app to a Hugging Face Space (and checkpoints/ to a model repo)")
    p.add_argument("--space", required=True, metavar="OWNER/NAME", help="the Space to create or update")
    p.add_argument("--checkpoints-repo", metavar="OWNER/NAME", help="also push checkpoints/ to this model repo")
    p.add_argument("--token", help="Hugging Face token with write access (default: HF_TOKEN, then `hf auth login`'s)")
    p.add_argument("--private", action="store_true", help="create the repos private")
    p.add_argument("--dry-run", action="store_true", help="list every file that would be uploaded, send nothing")
    p.set_defaults(run=publish)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    return args.run(args, parser)


def run() -> None:
    """The process entry point: SIGTERM unwinds like Ctrl-C (core.interrupts.Terminated), so a checkpoint
    write in progress removes its temp file or completes first, and either ends with one line saying what it
    was doing and what is on disk (exit code 130 or 143) instead of a traceback."""
    install()  # (core/__main__.py did already, before importing this module; run() may also be called alone)
    try:
        sys.exit(main())
    except KeyboardInterrupt as e:
        ended_by_signal(e)
