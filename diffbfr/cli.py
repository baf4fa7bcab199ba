"""Restore the faces in photos from the command line.

    python -m diffbfr.cli -i photo.jpg -o out/                   # Auto on, as on the page
    python -m diffbfr.cli -i folder/ -o out/ --no-auto --tem-t 20 --seed 3
    python -m diffbfr.cli -i folder/ -o out/ --method diffbfr --help   # that method's settings

For every input NAME with a face, writes into the output folder:
    NAME_restored.png          the whole photo with its faces restored (lossless PNG)
    NAME_face<k>_stages.png    per face: the input face and every stage of the method
    NAME.json                  the result record (PhotoResult.to_record: settings, per-face identity
                               distances, Auto, timings, notices) + the input and the files written
A photo without a face gets only NAME.json and is counted as "no face", not as restored.
run.json lists what was restored, what had no face and what was skipped (unreadable files).
The exit status is 1 when nothing could be restored.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from . import methods, paths
from . import settings as S
from .auto import CALIBRATION_FILE, Auto
from .device import DeviceError, resolve_device
from .image_out import save_png
from .imageio import DEFAULT_MAX_PIXELS, IMAGE_SUFFIXES, MAX_DECODE_PIXELS, ImageError, load_image
from .photo import PhotoOptions, PhotoRestorer

DEFAULT_METHOD = "diffbfr"
# --max-pixels is checked like a setting (settings.check_value: a whole number in range, never
# NaN or infinity; refused with exit status 2, not clamped): 64x64 is the least that holds a
# face; more than the loader decodes at all would change nothing.
MAX_PIXELS = S.Knob("max_pixels", int, DEFAULT_MAX_PIXELS, 64 * 64, MAX_DECODE_PIXELS, 1, "--max-pixels",
                    "downscale larger photos to this many pixels", MAX_DECODE_PIXELS, True)


def parse_args(argv=None) -> argparse.Namespace:
    # two passes: the settings flags depend on the method chosen
    pre = argparse.ArgumentParser(add_help=False)
    pre.add_argument("--method", default=DEFAULT_METHOD, choices=sorted(methods.METHODS))
    method = methods.get(pre.parse_known_args(argv)[0].method)
    p = argparse.ArgumentParser(prog="python -m diffbfr.cli", description=__doc__.split("\n\n")[0],
                                parents=[pre])
    p.add_argument("-i", "--input", required=True, help="a photo or a folder of photos")
    p.add_argument("-o", "--output", required=True, help="output folder (created if missing)")
    p.add_argument("--aligned", action="store_true", help="inputs are aligned face crops: skip detection")
    p.add_argument("--weights", default=str(paths.WEIGHTS),
                   help="weights root (one folder per method) or one method's folder (default: the "
                        "checkout's weights/, see diffbfr/paths.py)")
    p.add_argument("--device", default=None, help="cpu, cuda, ... (default: cuda if available)")
    p.add_argument("--tiny", action="store_true", help="random tiny networks (testing only, no weights)")
    p.add_argument("--max-pixels", type=S.cli_value(int), default=None,
                   help=f"downscale larger photos to this many pixels ({MAX_PIXELS.lo}-{MAX_PIXELS.hi}, "
                        f"default {DEFAULT_MAX_PIXELS})")
    p.add_argument("--auto", action=argparse.BooleanOptionalAction, default=None,
                   help=f"choose the {method.auto_words[0]} per face from its estimated degradation "
                        "(weights/<method>/auto_calibration.json). On by default, as on the page, where the "
                        f"method has a calibration; off for a run whose flags name {method.auto_words[1]}, "
                        "unless --auto is given. --no-auto: the settings as given, for every face")
    p.add_argument("--thorough", action="store_true",
                   help="look harder for faces: every detector pass on every photo (small and turned faces "
                        "in group photos; ~1.5 s more per photo on a 2-core CPU)")
    p.add_argument("--upscale", default="1", choices=["1", "2", "4", "auto"],
                   help="output size: 1 (same as the input), 2, 4, or auto (enough that the largest face "
                        "keeps its 128 px restoration, capped at 8 MP); the background is upscaled with "
                        "Lanczos (default 1)")
    S.add_arguments(p, method.settings, f"{method.title} settings (out-of-range values are refused)",
                    defaults=False)
    args = p.parse_args(argv)
    try:   # the one validation of settings (diffbfr/settings.py): a bad value is a message, exit 2
        args.max_pixels = S.check_value(MAX_PIXELS, args.max_pixels, label=lambda _n: "--max-pixels")
        args.settings = S.from_arguments(method.settings, args)
    except S.SettingsError as exc:
        p.error(str(exc))
    return args


def list_inputs(path: Path) -> tuple[list[Path], list[Path]]:
    """(image files to process, other files ignored) for a file or a folder (not recursive)."""
    if path.is_file():
        return [path], []
    files = sorted(p for p in path.iterdir() if p.is_file() and not p.name.startswith("."))
    return ([p for p in files if p.suffix.lower() in IMAGE_SUFFIXES],
            [p for p in files if p.suffix.lower() not in IMAGE_SUFFIXES])


def output_names(files: list[Path]) -> dict[Path, str]:
    """File stem, or the full name when two inputs share a stem (a.jpg, a.png)."""
    stems = [f.stem for f in files]
    return {f: f.stem if stems.count(f.stem) == 1 else f.name.replace(".", "_") for f in files}


def options_from(args: argparse.Namespace) -> PhotoOptions:
    """The photo path's options from the flags."""
    return PhotoOptions(aligned=args.aligned, scale=args.upscale, thorough=args.thorough, auto=args.auto is not False)


def restore_file(restorer: PhotoRestorer, path: Path, out_dir: Path, name: str, s, options: PhotoOptions,
                 max_pixels: int) -> dict:
    t0 = time.perf_counter()
    loaded = load_image(path, max_pixels=max_pixels)
    load_s = time.perf_counter() - t0
    res = restorer.restore(loaded.rgb, s, options)
    method = restorer.model.method
    written = [str(save_png(out_dir / f"{name}_restored.png", res.image))] if res.faces else []
    record = {"input": str(path), "size": [int(loaded.rgb.shape[1]), int(loaded.rgb.shape[0])],
              "was_grey": loaded.was_grey, **res.to_record(loaded.notices)}   # the one result record
    for f, entry in zip(res.faces, record["faces"]):
        strip = out_dir / f"{name}_face{f.index + 1}_stages.png"
        written.append(str(save_png(strip, f.stage_strip(method))))
        entry["stages_png"] = strip.name
    record["timings_s"] = {"load": load_s, **res.timings, "file_total": time.perf_counter() - t0}
    record["outputs"] = [Path(w).name for w in written]
    (out_dir / f"{name}.json").write_text(json.dumps(record, indent=2))
    return record


def main(argv=None) -> int:
    args = parse_args(argv)
    src, out_dir = Path(args.input), Path(args.output)
    if not src.exists():
        print(f"error: {src} does not exist", file=sys.stderr)
        return 2
    if out_dir.exists() and not out_dir.is_dir():
        print(f"error: -o {out_dir} is a file; -o names the output folder (created if missing)", file=sys.stderr)
        return 2
    files, ignored = list_inputs(src)
    if not files:
        print(f"error: no image files (.png .jpg .webp ...) in {src}", file=sys.stderr)
        return 2
    try:   # a GPU asked for on a CPU-only PyTorch: one sentence, not a traceback
        device = resolve_device(args.device)
    except DeviceError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    try:
        model = methods.model_for(args.method, args.weights, random_tiny=args.tiny, device=device)
    except (FileNotFoundError, ValueError) as exc:
        print(f"error: {exc} (use --weights DIR, or --tiny to test without weights)", file=sys.stderr)
        return 2
    try:   # the start steps must stay within the timesteps the loaded networks were trained at
        args.settings = S.from_arguments(model.method.settings, args, model.knob_limits())
    except S.SettingsError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    auto = None
    if args.auto is not False:
        try:
            auto = Auto.for_method(args.weights, args.method, random_tiny=args.tiny)
        except (FileNotFoundError, ValueError) as exc:
            if args.auto:   # asked for by name
                print(f"error: --auto needs a calibration for {args.method}: {exc}", file=sys.stderr)
                return 2
            if (methods.resolve_weights(args.weights, args.method) / CALIBRATION_FILE).is_file():
                print(f"note: Auto is off: {exc}", file=sys.stderr)   # it has one, which did not load
    named = [S.flag(f) for f in (auto.calibration.fields if auto else ()) if getattr(args, f) is not None]
    if named and args.auto is None:   # as moving a start-step slider switches Auto off on the page
        print(f"note: Auto is off: {', '.join(named)} named (--auto lets Auto choose them anyway)", file=sys.stderr)
        auto = None
    restorer = PhotoRestorer(model, cache_size=16, auto=auto)
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:   # e.g. a parent of -o is a file, or no permission
        print(f"error: cannot create the output folder {out_dir}: {exc.strerror or exc}", file=sys.stderr)
        return 2

    done, no_face = [], []
    skipped = [{"file": str(p), "reason": "not an image file name"} for p in ignored]
    names = output_names(files)
    for p in ignored:
        print(f"ignored {p.name}: not an image file name", file=sys.stderr)
    for path in files:
        try:
            rec = restore_file(restorer, path, out_dir, names[path], args.settings, options_from(args),
                               args.max_pixels)
        except Exception as exc:  # a bad file is reported, the rest of the folder still runs
            reason = str(exc) if isinstance(exc, ImageError) else f"{type(exc).__name__}: {exc}"
            print(f"skipped {path.name}: {reason}", file=sys.stderr)
            skipped.append({"file": str(path), "reason": reason})
            continue
        entry = {"file": str(path), "json": f"{names[path]}.json", "faces": len(rec["faces"])}
        notes = "".join(f"\n  note: {n}" for n in rec["notices"])
        if rec["faces"]:
            done.append(entry)
            left = sum(f["left_as_it_was"] for f in rec["faces"])
            print(f"{path.name}: restored {len(rec['faces']) - left} face(s)"
                  + (f", left {left} as it was" if left else "")
                  + f" in {rec['timings_s']['file_total']:.2f} s" + notes)
        else:
            no_face.append(entry)
            print(f"{path.name}: no face restored, nothing written but {names[path]}.json" + notes)
    (out_dir / "run.json").write_text(json.dumps(
        {"method": args.method, "settings": S.to_dict(args.settings), "aligned": args.aligned,
         "restored": done, "no_face": no_face, "skipped": skipped}, indent=2))
    print(f"{len(done)} restored, {len(no_face)} with no face, {len(skipped)} skipped -> {out_dir}")
    return 0 if done else 1


if __name__ == "__main__":
    sys.exit(main())
