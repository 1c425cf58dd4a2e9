"""Vanishing Gradient Lab: the Gradio app. build() lays the page out from ui/'s tabs; run as a script (as a
Space runs it), launch() does the start-up work and serves it. Nothing else: the tabs are ui.tabs' and
ui.playground_tab's, what they show ui's other modules', the science core/'s."""
from __future__ import annotations

import os
import threading
from pathlib import Path

import gradio as gr
import torch

from core.checkpoint import ROOT
from core.upload import MAX_BYTES
from ui import compare, pages, playground_tab, tabs
from ui import playground as pg
from ui.lab import Lab

# One intra-op thread per torch call, process-wide. The app serves several visitors at once on a small CPU, and
# when torch calls together ask for more OpenMP threads than there are free cores, the threads wait on each other
# and every call gets slower (bench/playground_speed.py --threads N measures it on this machine).
torch.set_num_threads(int(os.environ.get("VGL_TORCH_THREADS", "1")))

ASSETS = Path(__file__).resolve().parent / "assets"


def build(lab: Lab, idle: threading.Event) -> gr.Blocks:
    """The page for `lab`'s methods: the method pickers, then the five tabs. `idle` is cleared while a
    Playground run trains."""
    choices = lab.choices()
    # delete_cache: every upload and streamed figure is copied into Gradio's cache; drop them after a day.
    with gr.Blocks(title=pages.TITLE, delete_cache=(3600, 86400)) as demo:
        pair = list(tabs.pickers(lab, choices))
        pair_changes = [demo.load, *(picker.change for picker in pair)]
        with gr.Tabs():
            tabs.compare_tab(lab, pair, pair_changes)
            tabs.classify_tab(lab, pair)
            tabs.results_tab(lab, pair, pair_changes)
            playground_tab.tab(lab, choices, idle)
            tabs.about_tab()
    # No single visitor can hold more than a few workers; the rest of the queue keeps moving.
    demo.queue(default_concurrency_limit=2, max_size=64)
    return demo


def launch(demo: gr.Blocks, lab: Lab, idle: threading.Event) -> None:
    # The pair every visitor's page opens with, composed before serving (~1-2 s), so that its answer is instant.
    # Then, off the serving thread: the Playground's data and torch's warm-up first (pg.warm, ~2 s), so that a
    # run started as soon as the page opens is as quick as the next ones; then every method's Compare layers
    # (any pair is then instant too, ~15-30 s), held back while a Playground run trains: drawing them beside a
    # run made it three times slower.
    compare.warm(lab, pairs=[compare.DEFAULT_PAIR])
    threading.Thread(target=lambda: (pg.warm(), compare.warm(lab, pause=idle.wait)), daemon=True).start()
    # mcp_server: every public endpoint is also an MCP tool for agents (/gradio_api/mcp/), described by its
    # docstring
    demo.launch(server_name=os.environ.get("GRADIO_SERVER_NAME", "127.0.0.1"),
                server_port=int(os.environ.get("GRADIO_SERVER_PORT", "7860")),
                max_file_size=MAX_BYTES, show_error=True, head=f"<style>{(ASSETS / 'page.css').read_text()}</style>",
                mcp_server=True)


# VGL_CHECKPOINTS points the app at another checkpoint folder (the tests use it for broken checkpoints).
lab = Lab(Path(os.environ.get("VGL_CHECKPOINTS", ROOT)))
idle = threading.Event()  # set while no Playground run trains
idle.set()
demo = build(lab, idle)

if __name__ == "__main__":
    launch(demo, lab, idle)
