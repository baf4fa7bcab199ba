"""Every failure of a request is a plain sentence with no server path (issue #30, item 11).

Gradio checks a request before our callbacks run: the number of arguments, that a file was
uploaded rather than named by a URL or a server path, that a data: URL decodes to an image.
Its own wording then reaches the caller: "Cannot move /srv/…/x.png to the gradio cache dir",
"didn't receive enough input values … <ui.page.PhotoInput object at 0x7f…>",
"UnidentifiedImageError … <_io.BytesIO at 0x7f…>". PlainErrorBlocks is gr.Blocks whose
process_api (the one door every queued event and API call goes through) answers those, and
any other unexpected failure, in words; the details go to the server's log.
"""
from __future__ import annotations

import logging
import re

import gradio as gr
from gradio.exceptions import InvalidPathError
from PIL import UnidentifiedImageError
from pydantic import ValidationError

from .views import without_paths

log = logging.getLogger("diffbfr.app")
API_NAME = "restore"
API_ARGUMENTS = ("image", "method", "aligned", "settings_json", "auto", "scale")
OLDEST_CALL = 4   # calls from before `auto` and `scale` existed: image, method, aligned, settings_json
NOT_UPLOADED = ("The photo must be uploaded with the call (gradio_client: handle_file(path)); a URL or a file "
                "path on the server is not accepted.")
NOT_AN_IMAGE = "The photo could not be read as an image: send a PNG, JPEG or WebP file."
NOT_A_FILE = ("The photo must be a file sent with the call (gradio_client: handle_file(path)), not text or "
              "a number.")
_OBJECT_REPR = re.compile(r"<[\w.]+ (?:object )?at 0x[0-9a-fA-F]+>")
MAX_CHARS = 300


def wrong_count(got: int) -> str:
    return (f"The restore call takes {len(API_ARGUMENTS)} arguments ({', '.join(API_ARGUMENTS)}; the last "
            f"two may be left out); got {got}.")


def plain_message(exc: BaseException) -> str:
    """An unexpected failure -> one sentence for the caller: no path, no object address, short."""
    if isinstance(exc, InvalidPathError):
        return NOT_UPLOADED
    if isinstance(exc, ValidationError):   # Gradio's file model refused what came as the photo
        return NOT_A_FILE
    if isinstance(exc, UnidentifiedImageError) or "cannot identify image" in str(exc):
        return NOT_AN_IMAGE
    text = " ".join(_OBJECT_REPR.sub("an object", without_paths(str(exc))).split())
    text = text if len(text) <= MAX_CHARS else text[:MAX_CHARS - 1] + "…"
    return f"The request failed: {text or type(exc).__name__}".rstrip(".") + "."


class PlainErrorBlocks(gr.Blocks):
    """gr.Blocks whose every event fails in plain words (see the module doc)."""

    async def process_api(self, block_fn, inputs, *args, **kwargs):
        fn = self.fns[block_fn] if isinstance(block_fn, int) else block_fn
        if getattr(fn, "is_validator_function", False):
            return await self._validate(block_fn, fn, inputs, *args, **kwargs)
        if getattr(fn, "api_name", None) == API_NAME and isinstance(inputs, list) \
                and len(inputs) != len(fn.inputs):
            if not OLDEST_CALL <= len(inputs) < len(fn.inputs):
                raise gr.Error(wrong_count(len(inputs)))
            # an older call (README: image, method, aligned, settings) gets the page's defaults
            inputs = inputs + [block.value for block in fn.inputs[len(inputs):]]
        try:
            return await super().process_api(block_fn, inputs, *args, **kwargs)
        except gr.Error as exc:   # ours: already words; still no path or long number
            raise gr.Error(without_paths(exc.message), duration=exc.duration, visible=exc.visible,
                           title=exc.title) from None
        except Exception as exc:  # noqa: BLE001 -- Gradio's own checks and anything unforeseen
            log.warning("request failed: %s: %s", type(exc).__name__, exc)
            raise gr.Error(plain_message(exc)) from None

    async def _validate(self, block_fn, fn, inputs, *args, **kwargs):
        """An event's validator (the API's cheap refusals, run before the queue). What it cannot
        judge (a short old call, a photo named by URL, anything unforeseen) it leaves to the
        event itself, which refuses it in words as above: no verdict, the call joins the queue."""
        if isinstance(inputs, list) and OLDEST_CALL <= len(inputs) < len(fn.inputs):
            inputs = inputs + [None] * (len(fn.inputs) - len(inputs))   # RestoreAPI.check: None = the default
        try:
            return await super().process_api(block_fn, inputs, *args, **kwargs)
        except Exception as exc:  # noqa: BLE001 -- a validator must never fail the request itself
            log.info("validator left the call to the queue: %s: %s", type(exc).__name__, exc)
            return {"data": None}
