"""Raw calls to the /restore API fail in plain sentences with no server path and no Gradio
internals (issue #30, items 11 and 13): a FileData naming a URL or a server path, data: text,
the wrong number of arguments, a 309-digit number. A live in-process server with tiny networks,
called over HTTP as a script without gradio_client would."""
from __future__ import annotations

import json
import urllib.request

import pytest

from bench.app_process import free_port
from diffbfr import methods
from diffbfr import settings as S
from diffbfr.methods import DiffBFRSettings
from ui.views import short_numbers, without_paths

FILE = {"_type": "gradio.FileData"}
INTERNALS = ("/", "\\", "0x", "Cannot move", "Traceback", "gradio cache", "validation error", "BytesIO")


@pytest.fixture(scope="module")
def api(tmp_path_factory):
    mp = pytest.MonkeyPatch()
    mp.setenv("GRADIO_TEMP_DIR", str(tmp_path_factory.mktemp("gradio")))
    import app as app_module
    from ui.state import AppState
    demo = app_module.build_demo(AppState({"diffbfr": methods.tiny("diffbfr")}, identity=False))
    demo.queue(default_concurrency_limit=1)
    port = free_port()
    demo.launch(server_name="127.0.0.1", server_port=port, prevent_thread_lock=True, show_error=True, quiet=True)
    base = f"http://127.0.0.1:{port}/gradio_api/call/restore"

    def call(data) -> str:
        """The error a raw call gets back (its SSE 'error' event's message)."""
        req = urllib.request.Request(base, json.dumps({"data": data}).encode(), {"Content-Type": "application/json"})
        event_id = json.loads(urllib.request.urlopen(req, timeout=30).read())["event_id"]
        stream = urllib.request.urlopen(f"{base}/{event_id}", timeout=60).read().decode()
        assert "event: error" in stream, stream
        return json.loads(stream.split("event: error\ndata: ", 1)[1].split("\n", 1)[0])["error"]
    try:
        yield call
    finally:
        demo.close()
        mp.undo()


def _plain(message: str) -> None:
    assert message and message[0].isupper() and message.endswith(".") and "\n" not in message, message
    assert not any(w in message.replace("handle_file(path)", "") for w in INTERNALS), message


ARGS = ["diffbfr", True, "{}", True, "auto"]


def test_a_file_named_by_url_or_server_path_is_a_plain_sentence(api):
    for payload in ({"path": "/etc/hostname", "meta": FILE},
                    {"url": "http://example.invalid/x.png", "path": "x.png", "meta": FILE}):
        message = api([payload, *ARGS])
        _plain(message)
        assert "must be uploaded with the call" in message


def test_data_text_is_a_plain_sentence(api):
    message = api(["data:text/plain;base64,aGVsbG8=", *ARGS])
    _plain(message)
    assert "must be a file" in message
    message = api([{"url": "data:text/plain;base64,aGVsbG8=", "meta": FILE}, *ARGS])
    _plain(message)
    assert "could not be read as an image" in message


@pytest.mark.parametrize("n", [2, 8])
def test_the_wrong_number_of_arguments_is_a_plain_sentence(api, n):
    message = api(([{"path": "/etc/hostname", "meta": FILE}] + ARGS + [1, 2])[:n])
    _plain(message)
    assert "takes 6 arguments" in message and f"got {n}" in message


def test_a_309_digit_number_is_shortened():
    with pytest.raises(S.SettingsError) as exc:
        S.from_json(DiffBFRSettings, json.dumps({"seed": 10**308}))
    assert "a 309-digit number" in str(exc.value) and len(str(exc.value)) < 120
    with pytest.raises(S.SettingsError) as exc:
        S.from_json(DiffBFRSettings, '{"tem_t": 1e308}')
    assert "1e+308" in str(exc.value) and "0000000000" not in str(exc.value)


def test_long_numbers_in_any_message_are_shortened():
    text = "got " + "9" * 309 + " at /srv/app/uploads/abc/photo.png"
    assert without_paths(text) == "got 999999…(309 digits) at photo.png"
    assert short_numbers("seed 2147483647 is fine") == "seed 2147483647 is fine"
