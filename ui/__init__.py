"""The web demo's UI, over the photo path (diffbfr/photo.py); app.py at the root starts it.

    state.py     what every visitor shares: the models, one PhotoRestorer per method, the
                 ZeroGPU runner (AppState, create_app), the examples
    session.py   one visitor's upload and what the page did with it (Upload), every tab's photo (UploadStore)
    handlers.py  the page's events (Handlers, Controls)
    restore_api.py  the one-call API /restore, declared by one signature, and its refusals
                 before the queue (RestoreAPI)
    warm_up.py   the examples restored in the background, giving way to people's requests (InFlight)
    api_errors.py   every failed request in plain words (PlainErrorBlocks)
    outputs.py   the one place the page's outputs are assembled, by component name
    views.py     what is shown, as plain functions of the photo path's results (no Gradio)
    files.py     the files on disk: result PNGs, uploads deleted once used, the bound on both
    page.py      the layout and its wiring (build_demo)

Nothing in diffbfr/ imports this package.
"""
