"""Vanishing Gradient Lab: the Gradio app. build() lays the page out from ui/'s tabs; run as a script (as a
Space runs it), launch() does the start-up work and serves it. Nothing else: the tabs are ui.tabs' and
ui.playground_tab's, what they show ui's other modules', the science core/'s."""
from __future__ import annotations

import os
import threading
from pathlib import Path

from core import interrupts

# Ctrl-C or SIGTERM while the app starts (importing torch and gradio and loading the checkpoints take seconds) is
# one line and exit 130/143, as in the CLI; once serving, Gradio's own handler closes the server.
interrupts.install()
try:
    import gradio as gr
    import torch
    from starlette.middleware import Middleware

    from core.checkpoint import ROOT, clean_orphans
    from core.upload import MAX_BYTES
    from ui import compare, figure_cache, guard, pages, playground_tab, tabs
    from ui import playground as pg
    from ui.lab import Lab
except KeyboardInterrupt as stopped:
    if __name__ == "__main__":
        interrupts.ended_by_signal(stopped, starting=True)
    raise

# One intra-op thread per torch call, process-wide. The app serves several visitors at once on a small CPU, and
# when torch calls together ask for more OpenMP threads than there are free cores, the threads wait on each other
# and every call gets slower (bench/playground_speed.py --threads N measures it on this machine).
torch.set_num_threads(int(os.environ.get("VGL_TORCH_THREADS", "1")))

ASSETS = Path(__file__).resolve().parent / "assets"
WARM_YIELD_S = 2.0  # seconds the Compare warm-up waits, per step, for a Playground run to end
STATE_SESSIONS = 500  # sessions whose state Gradio keeps (launch's state_session_capacity)


def build(lab: Lab, idle: threading.Event) -> gr.Blocks:
    """The page for `lab`'s methods: the method pickers, then the five tabs. `idle` is cleared while a
    Playground run trains."""
    choices = lab.choices()
    # The example images are served from assets/ as they are: copied into Gradio's cache at build (a button's
    # icon), they were deleted with it -- by delete_cache after 15 minutes, by ui.guard's cap, or when another app
    # on the machine restarted -- and every page after that got a 403 for each thumbnail.
    gr.set_static_paths([ASSETS / "examples"])
    # delete_cache: every upload and served file is copied into Gradio's cache; every 5 minutes, drop those older
    # than 15 (a visitor's upload is read within seconds of arriving); ui.guard also caps the cache's size.
    with gr.Blocks(title=pages.TITLE, delete_cache=(300, 900)) as demo:
        row, *pair = tabs.pickers(lab, choices)
        tabs.pair_from_link(demo, lab, pair)
        pair_changes = [demo.load, *(picker.change for picker in pair)]
        with gr.Tabs() as all_tabs:
            opens = tabs.compare_tab(lab, pair, pair_changes)
            tabs.classify_tab(lab, pair)
            on_results = tabs.results_tab(lab, pair, pair_changes)
            playground = playground_tab.tab(lab, choices, idle)
            tabs.about_tab()
        tabs.pickers_follow(all_tabs, row, on_results)
        # Compare's Open in Playground buttons (each with its picker) and a link's Playground settings
        playground_tab.share(demo, lab, playground, all_tabs, row, list(zip(pair, opens)))
    # No single visitor can hold more than a few workers; the rest of the queue keeps moving. The Playground
    # waits in a queue of its own (ui.playground.RunQueue), so its runs never fill this one.
    demo.queue(default_concurrency_limit=2, max_size=64)
    return demo


def launch(demo: gr.Blocks, lab: Lab, idle: threading.Event) -> None:
    # Every method's Compare drawings from the committed file (ui.figure_cache, ~0.03 s), so that any pair is
    # composed in milliseconds from the first request; and the pair every visitor's page opens with, composed
    # before serving. Then, off the serving thread: the Playground's data and torch's warm-up first (pg.warm,
    # ~2 s), so that a run started as soon as the page opens is as quick as the next ones; then whatever the
    # file did not hold (all of it when the file is stale: ~15-30 s of drawing), each step held back while a
    # Playground run trains: drawing beside a run made it three times slower.
    print(figure_cache.load(lab), flush=True)
    compare.warm(lab, pairs=[compare.DEFAULT_PAIR])
    # The wait is bounded (WARM_YIELD_S per step): back-to-back runs must not hold the warm-up back for good.
    threading.Thread(target=lambda: (pg.warm(), compare.warm(lab, pause=lambda: idle.wait(WARM_YIELD_S))),
                     daemon=True).start()
    guard.quiet_logs()
    guard.keep_cache_small(Path(demo.GRADIO_CACHE), keep=lambda: guard.page_files(demo))
    # mcp_server: every public endpoint is also an MCP tool for agents (/gradio_api/mcp/), described by its
    # docstring. state_session_capacity: Gradio keeps each session's state (a copy of the page's config, the
    # Playground's last run) until this many newer sessions exist; 10,000 (its default) grew the server by
    # ~0.6 GB under an API flood, 500 keeps that to ~0.1 GB, and a visitor's session is evicted only after
    # 500 others have come since. The upload budget (ui.guard.UploadBudget) bounds how fast one address fills the
    # disk; max_file_size how large one upload may be.
    demo.launch(server_name=os.environ.get("GRADIO_SERVER_NAME", "127.0.0.1"),
                server_port=int(os.environ.get("GRADIO_SERVER_PORT", "7860")),
                max_file_size=MAX_BYTES, show_error=True, head=f"<style>{(ASSETS / 'page.css').read_text()}</style>",
                mcp_server=True, state_session_capacity=STATE_SESSIONS,
                app_kwargs={"middleware": [Middleware(guard.UploadBudget)]})


try:
    # VGL_CHECKPOINTS points the app at another checkpoint folder (the tests use it for broken checkpoints).
    checkpoints = Path(os.environ.get("VGL_CHECKPOINTS", ROOT))
    for line in clean_orphans(checkpoints):  # a save killed earlier: finish or undo it before anything loads
        print(line)
    lab = Lab(checkpoints)
    idle = threading.Event()  # set while no Playground run trains
    idle.set()
    demo = build(lab, idle)
except KeyboardInterrupt as stopped:
    if __name__ == "__main__":
        interrupts.ended_by_signal(stopped, starting=True)
    raise

if __name__ == "__main__":
    launch(demo, lab, idle)
