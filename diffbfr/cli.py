"""Restore the faces in photos from the command line.

    python -m diffbfr.restore -i photo.jpg -o out/
    python -m diffbfr.restore -i folder/ -o out/ --tem-t 20 --seed 3

For every input NAME writes, into the output folder:
    NAME_restored.png          the whole photo with its faces restored (lossless PNG)
    NAME_face<k>_stages.png    per face: LQ | IRM 64 (upscaled) | IRM 128 | TEM
    NAME.json                  settings, notices, timings and per-face identity distances
and a run.json listing what was done and what was skipped. Files that cannot be read are
reported and skipped; the exit status is 1 only when nothing could be restored.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import asdict
from pathlib import Path

from .imageio import IMAGE_SUFFIXES, ImageError, save_png, stage_strip
from .pipeline import RestoreSettings


def parse_args(argv=None) -> argparse.Namespace:
    d = RestoreSettings()
    p = argparse.ArgumentParser(prog="python -m diffbfr.restore", description=__doc__.split("\n\n")[0])
    p.add_argument("-i", "--input", required=True, help="a photo or a folder of photos")
    p.add_argument("-o", "--output", required=True, help="output folder (created if missing)")
    p.add_argument("--irm-start", type=float, default=d.irm_start,
                   help=f"IRM stage-1 start step, 0-1000: noise on the LQ face (default {d.irm_start:g})")
    p.add_argument("--irm2-start", type=float, default=d.irm2_start,
                   help=f"IRM stage-2 start step, 0-1000 (default {d.irm2_start:g})")
    p.add_argument("--tem-t", type=float, default=d.tem_t,
                   help=f"TEM timestep, fractional, 0 = off (default {d.tem_t:g})")
    p.add_argument("--irm64-steps", type=int, default=d.irm64_steps, help="sampling steps, stage 1")
    p.add_argument("--irm128-steps", type=int, default=d.irm128_steps, help="sampling steps, stage 2")
    p.add_argument("--tem-steps", type=int, default=d.tem_steps, help="sampling steps, TEM")
    p.add_argument("--seed", type=int, default=d.seed)
    p.add_argument("--eta", type=float, default=d.eta, help="0 = deterministic DDIM")
    p.add_argument("--aligned", action="store_true", help="inputs are aligned face crops: skip detection")
    p.add_argument("--weights", default="weights", help="folder with the model weights")
    p.add_argument("--device", default=None, help="cpu, cuda, ... (default: cuda if available)")
    p.add_argument("--tiny", action="store_true", help="random tiny networks (testing only, no weights)")
    p.add_argument("--max-pixels", type=float, default=None, help="downscale larger photos (pixels)")
    return p.parse_args(argv)


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


def restore_file(app, path: Path, out_dir: Path, name: str, s: RestoreSettings, aligned: bool) -> dict:
    t0 = time.perf_counter()
    up = app.load(path)
    load_s = time.perf_counter() - t0
    res = app.restore(up, s, aligned)
    written = [str(save_png(out_dir / f"{name}_restored.png", res.image))]
    faces = []
    for f in res.faces:
        strip = out_dir / f"{name}_face{f.index + 1}_stages.png"
        written.append(str(save_png(strip, stage_strip([f.lq, f.irm64, f.irm128, f.tem], 128))))
        faces.append({"index": f.index + 1, "identity_distance": f.identity, "face_size_px": f.face_size,
                      "timings_s": f.timings, "stages_png": strip.name})
    record = {"input": str(path), "size": [int(up.rgb.shape[1]), int(up.rgb.shape[0])],
              "was_grey": up.was_grey, "aligned": aligned, "settings": asdict(s),
              "notices": res.notices, "faces": faces,
              "timings_s": {"load": load_s, **res.timings, "file_total": time.perf_counter() - t0},
              "outputs": [Path(w).name for w in written]}
    (out_dir / f"{name}.json").write_text(json.dumps(record, indent=2))
    return record


def main(argv=None) -> int:
    args = parse_args(argv)
    src, out_dir = Path(args.input), Path(args.output)
    if not src.exists():
        print(f"error: {src} does not exist", file=sys.stderr)
        return 2
    files, ignored = list_inputs(src)
    if not files:
        print(f"error: no image files (.png .jpg .webp ...) in {src}", file=sys.stderr)
        return 2

    from .app_state import AppState
    from .imageio import DEFAULT_MAX_PIXELS
    from .pipeline import DiffBFR
    try:
        model = DiffBFR.tiny(seed=0, device=args.device or "cpu") if args.tiny \
            else DiffBFR.load(args.weights, device=args.device)
    except FileNotFoundError as exc:
        print(f"error: {exc} (use --weights DIR, or --tiny to test without weights)", file=sys.stderr)
        return 2
    app = AppState(model, cache_size=16, max_pixels=int(args.max_pixels or DEFAULT_MAX_PIXELS))
    s = RestoreSettings(irm_start=args.irm_start, irm2_start=args.irm2_start, tem_t=args.tem_t,
                        irm64_steps=args.irm64_steps, irm128_steps=args.irm128_steps,
                        tem_steps=args.tem_steps, seed=args.seed, eta=args.eta)
    out_dir.mkdir(parents=True, exist_ok=True)

    done, skipped = [], [{"file": str(p), "reason": "not an image file name"} for p in ignored]
    names = output_names(files)
    for p in ignored:
        print(f"ignored {p.name}: not an image file name", file=sys.stderr)
    for path in files:
        try:
            rec = restore_file(app, path, out_dir, names[path], s, args.aligned)
        except Exception as exc:  # a bad file is reported, the rest of the folder still runs
            reason = str(exc) if isinstance(exc, ImageError) else f"{type(exc).__name__}: {exc}"
            print(f"skipped {path.name}: {reason}", file=sys.stderr)
            skipped.append({"file": str(path), "reason": reason})
            continue
        done.append({"file": str(path), "json": f"{names[path]}.json", "faces": len(rec["faces"])})
        print(f"{path.name}: {len(rec['faces'])} face(s), {rec['timings_s']['file_total']:.2f} s"
              + "".join(f"\n  note: {n}" for n in rec["notices"]))
    (out_dir / "run.json").write_text(json.dumps({"settings": asdict(s), "aligned": args.aligned,
                                                  "restored": done, "skipped": skipped}, indent=2))
    print(f"{len(done)} restored, {len(skipped)} skipped -> {out_dir}")
    return 0 if done else 1


if __name__ == "__main__":
    sys.exit(main())
