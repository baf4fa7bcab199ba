"""Raw calls to the /restore API fail in plain sentences with no server path and no Gradio
internals (issue #30, items 11 and 13): a FileData naming a URL or a server path, data: text,
the wrong number of arguments, a 309-digit number. Cheap refusals (not an image, an empty file,
no photo, refused settings) are answered before the queue, while a restore holds the worker,
and so is a bad upload on the page (item 8). A live in-process server with tiny networks,
called over HTTP as a script without gradio_client would, and through gradio_client."""
from __future__ import annotations

import json
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path
from types import SimpleNamespace

import pytest

from bench.app_process import free_port
from diffbfr import methods
from diffbfr import settings as S
from diffbfr.methods import DiffBFRSettings
from ui.views import short_numbers, without_paths

FILE = {"_type": "gradio.FileData"}
FACE = Path(__file__).resolve().parent.parent / "examples" / "astronaut_face_aligned.png"
INTERNALS = ("/", "\\", "0x", "Cannot move", "Traceback", "gradio cache", "validation error", "BytesIO")


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    mp = pytest.MonkeyPatch()
    mp.setenv("GRADIO_TEMP_DIR", str(tmp_path_factory.mktemp("gradio")))
    import app as app_module
    from ui.state import AppState
    state = AppState({"diffbfr": methods.tiny("diffbfr")}, identity=False)
    demo = app_module.build_demo(state)
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
        yield SimpleNamespace(call=call, state=state, url=f"http://127.0.0.1:{port}/")
    finally:
        demo.close()
        mp.undo()


@pytest.fixture(scope="module")
def api(server):
    return server.call


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


# ---------------------------------------------------------------- cheap refusals before the queue
@pytest.fixture(scope="module")
def worker_held(server):
    """A restore through the API that holds the one worker until this module's tests are done."""
    from gradio_client import Client, handle_file
    restorer, release, started = server.state.restorers["diffbfr"], threading.Event(), threading.Event()
    restore = restorer.restore

    def held(*a, **k):
        started.set()
        release.wait(60)
        return restore(*a, **k)
    restorer.restore = held
    client = Client(server.url, verbose=False, download_files=False)
    try:
        busy = client.submit(handle_file(str(FACE)), "diffbfr", True, "{}", api_name="/restore")
        assert started.wait(30)
        yield client, busy
        release.set()
        busy.result(timeout=60)
    finally:
        release.set()
        restorer.restore = restore
        client.close()


def _refusal(fn) -> tuple[str, float]:
    t0 = time.perf_counter()
    with pytest.raises(Exception) as exc:
        fn()
    return str(exc.value), time.perf_counter() - t0


def test_cheap_refusals_are_answered_while_a_restore_holds_the_worker(server, worker_held, tmp_path):
    from gradio_client import handle_file
    from gradio_client.exceptions import ValidationError
    client, busy = worker_held
    text, empty = tmp_path / "notes.png", tmp_path / "empty.png"
    text.write_text("not an image, whatever its name says\n" * 5)
    empty.write_bytes(b"")
    cases = [((handle_file(str(text)), "diffbfr", True, "{}"), "notes.png is not an image"),
             ((handle_file(str(empty)), "diffbfr", True), "empty.png is empty"),   # an old, shorter call too
             ((None, "diffbfr"), "No photo"),
             ((handle_file(str(FACE)), "diffbfr", True, '{"irm64_steps": 0}'), "irm64_steps must be"),
             ((handle_file(str(FACE)), "nope"), "'nope' is not available")]
    for args, expected in cases:
        message, seconds = _refusal(lambda: client.predict(*args, api_name="/restore"))
        assert expected in message and seconds < 10 and not busy.done(), (message, seconds)
    with pytest.raises(ValidationError):
        client.predict(handle_file(str(text)), api_name="/restore")
    # a raw HTTP call: status 422, the sentence in `detail`, no path
    req = urllib.request.Request(server.url + "gradio_api/call/restore",
                                 json.dumps({"data": [None, "diffbfr", True, "{}", True, "auto"]}).encode(),
                                 {"Content-Type": "application/json"})
    with pytest.raises(urllib.error.HTTPError) as exc:
        urllib.request.urlopen(req, timeout=10)
    detail = json.loads(exc.value.read())["detail"]
    assert exc.value.code == 422 and [d["message"] for d in detail if not d["is_valid"]] == \
        ["No photo: send one with the call (gradio_client: handle_file(path))."]
    assert not busy.done()


def test_a_bad_upload_on_the_page_is_answered_while_a_restore_holds_the_worker(server, worker_held, tmp_path):
    from bench.soak import PageSession
    _, busy = worker_held
    text = tmp_path / "letter.jpg"
    text.write_text("a letter, not a photo\n" * 5)
    tab = PageSession(server.url, timeout=20)
    try:
        t0 = time.perf_counter()
        status = " ".join(str(v) for v in tab.call("photo", "on_image", text))
    finally:
        tab.close()
    assert "letter.jpg is not an image" in status and time.perf_counter() - t0 < 10 and not busy.done()
