"""diffbfr web demo (Gradio): a thin UI over the photo path (diffbfr/photo.py).

    python app.py                 # http://127.0.0.1:7860, every method found in weights/
    python app.py --share         # also ask Gradio for a temporary public link
    python app.py --tiny          # random tiny networks: try the UI without weights

Runs unchanged as a Hugging Face Space (ZeroGPU via `spaces.GPU`). This file is the entry point
and its flags; the page is ui/ (ui/__init__.py lists its modules): the layout ui/page.py, the
callbacks ui/handlers.py, the models ui/state.py. One call restores a photo through the API:
api_name="restore".
"""
from __future__ import annotations

import argparse
import logging
import os
import signal
import sys

import diffbfr  # noqa: F401  (first: it sets OMP_WAIT_POLICY before torch loads)
import gradio as gr

from diffbfr.device import DeviceError, resolve_device
from ui.page import CSS, build_demo
from ui.state import ON_ZERO_GPU, ROOT, create_app

__all__ = ["build_demo", "create_app", "main", "parse_args"]


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description="diffbfr face restoration web demo")
    p.add_argument("--host", default=None,
                   help="address to listen on (default 127.0.0.1, or $GRADIO_SERVER_NAME; 0.0.0.0 = all)")
    p.add_argument("--port", type=int, default=None, help="port (default 7860 or $GRADIO_SERVER_PORT)")
    p.add_argument("--share", action="store_true", help="ask Gradio for a temporary public link")
    p.add_argument("--device", default=None, help="cpu, cuda, cuda:1 ... (default: cuda if available)")
    p.add_argument("--weights", default=str(ROOT / "weights"),
                   help="weights root with one folder per method (default: weights/)")
    p.add_argument("--tiny", action="store_true", default=os.environ.get("DIFFBFR_TINY") == "1",
                   help="use random tiny networks (no weights needed; also DIFFBFR_TINY=1)")
    p.add_argument("--no-warm", action="store_true",
                   help="do not restore the examples in the background after start")
    return p.parse_args(argv)


def _stop(_signum, _frame):
    # SIGTERM (process managers, our tests) ends like Ctrl-C: Gradio closes its server and
    # the atexit clean-up of our temporary files runs, which a plain SIGTERM would skip.
    raise KeyboardInterrupt


def main(argv=None) -> None:
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    signal.signal(signal.SIGTERM, _stop)
    args = parse_args(argv)
    try:   # a GPU asked for on a CPU-only PyTorch: one sentence and status 2, not a traceback
        device = str(resolve_device(args.device))
    except DeviceError as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(2)
    # not on ZeroGPU: its GPU is lent per request, and a warm-up has no request to borrow it for
    demo = build_demo(create_app(args.weights, device, args.tiny),
                      warm_examples=not (args.no_warm or ON_ZERO_GPU))
    # one restore at a time: the model is not re-entrant-fast, and CPU Spaces have 2 cores
    demo.queue(default_concurrency_limit=1, max_size=32)
    demo.launch(server_name=args.host, server_port=args.port, share=args.share,
                show_error=True, css=CSS, theme=gr.themes.Soft())


if __name__ == "__main__":
    main()
