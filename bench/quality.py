"""Quality benchmark: python -m bench.quality [--hq-dir DIR] [--lq-dir DIR] [--levels ...]

HQ mode (default; UTKFace test split unless --hq-dir): align each clean face into the
128 px frame (the target), degrade it with diffbfr.train.degrade.fixed_degrade, restore it
and score every stage against the target (PSNR, SSIM, identity, NIQE and the realism scores of
bench/realism.py). LQ mode (--lq-dir): real degraded photos, no ground truth: NIQE and identity
distance to the input. See bench/README.md.
"""
from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only, no display
import matplotlib.pyplot as plt  # noqa: E402

from bench import common as C
from bench import realism as R
from bench.scorer import Scorer
from diffbfr.console import log
from diffbfr.niqe import MODEL_PATH, NiqeModel
from diffbfr import settings as S
from diffbfr.photo import LRUCache, restore_faces
from diffbfr.train.data import default_data_dir
from diffbfr.train.degrade import LEVELS, fixed_degrade

CHUNK = 16  # faces per restore_faces call: batched stages, bounded memory, regular log lines


def stage_labels(method) -> dict[str, str]:
    """Rows of the tables: the target, the LQ input as the models see it, then every stage."""
    return {"hq": "HQ target", "input": "input", "lq": "LQ bicubic",
            **{st.name: st.label + (" (final)" if st.name == method.final else "") for st in method.stages}}


def stage_images(st) -> dict:
    """Every image of one face's FaceStages at 128 px (smaller stages bicubic-upsampled)."""
    return {name: C.up128(img) for name, img in st.images.items()}


def restore_all(model, lqs, s, cache, keys, what: str):
    """restore_faces in chunks (stages cached under `keys`: a sweep reruns only what changed);
    `s` one settings object, or one per face (Auto's)."""
    out = []
    for lo in range(0, len(lqs), CHUNK):
        t0 = time.perf_counter()
        chunk = s[lo:lo + CHUNK] if isinstance(s, list) else s
        out += restore_faces(model, lqs[lo:lo + CHUNK], chunk, cache, keys[lo:lo + CHUNK])
        log(f"[{what}] {min(lo + CHUNK, len(lqs))}/{len(lqs)} faces, {time.perf_counter() - t0:.1f}s")
    return out


def summarize(records: list[dict], keys: list[str], group: tuple[str, ...]) -> list[dict]:
    """Means per group; hf (a ratio) by its geometric mean, see bench/realism.py."""
    out: dict[tuple, list[dict]] = {}
    for r in records:
        out.setdefault(tuple(r[g] for g in group), []).append(r)
    rows = []
    for k, rs in out.items():
        row = dict(zip(group, k), n=len(rs))
        for key in keys:
            row[key] = (R.geometric_mean if key == "hf" else C.mean_or_nan)(r.get(key) for r in rs)
        row["id_na"] = sum(1 for r in rs if r.get("id_dist") is None)
        rows.append(row)
    return rows


REALISM = ("pdist", "hf", "kid", "kid_std")          # columns of the CSV files and run.json
REALISM_HEADER = ["pdist ↓", "KID×1000 ↓", "hf →1"]   # and of the tables


def realism_cells(r: dict, scorer) -> list[str]:
    """The table's pdist, KID (mean ± std over draws) and hf cells of one summary row."""
    if scorer.realism_off:
        return ["off"] * 3
    kid = "—" if C.fmt(r.get("kid")) == "—" else f"{C.fmt(r['kid'], 0)} ± {C.fmt(r['kid_std'], 0)}"
    return [C.fmt(r.get("pdist"), 3), kid, C.fmt(r.get("hf"))]


# ---------------------------------------------------------------- HQ mode


def per_face_settings(auto, model, lqs, settings):
    """`settings`, or with Auto (the app's default) each face's calibrated settings."""
    if auto is None:
        return settings
    return [f.settings for f in auto.faces(lqs, settings, model.knob_limits())]


def run_hq(a, model, settings, faces, scorer, out: Path, auto=None):
    labels = stage_labels(model.method)
    records, sheets, lqs, kids = [], {}, {}, {}
    cache = LRUCache(10**9)   # every stage of every face: sweeps rerun only what a setting changes
    hq_niqe = {f.name: scorer.niqe(f.image) for f in faces}
    seeds = [C.face_seed(a.seed, f.name) for f in faces]
    for level in a.levels:
        lqs[level] = [fixed_degrade(f.image, level, seed) for f, seed in zip(faces, seeds)]
        t0 = time.perf_counter()
        stages = restore_all(model, lqs[level], per_face_settings(auto, model, lqs[level], settings), cache,
                             [(level, f.name) for f in faces], level)
        secs = (time.perf_counter() - t0) / max(len(faces), 1)
        every = [stage_images(st) for st in stages]
        real = scorer.realism([f.image for f in faces], {s: [imgs[s] for imgs in every] for s in every[0]})
        if real:
            kids.update({(level, s): v for s, v in real.kid.items()})
            kids[(level, "hq")] = real.kid_clean
            log(f"[{level}] realism scores, {len(every[0])} stages: {scorer.realism_seconds:.1f}s so far")
        for i, (f, seed, imgs) in enumerate(zip(faces, seeds, every)):
            base = {"level": level, "face": f.name, "align": f.method, "degrade_seed": seed}
            records.append({**base, "stage": "hq", "niqe": hq_niqe[f.name], "id_dist": 0.0})
            for stage, img in imgs.items():
                r = {**base, "stage": stage, **scorer.full(f.image, img, f.name),
                     **(real.face(stage, i) if real else {})}
                if stage == model.method.final:
                    r["seconds"] = round(secs, 4)   # per face, batched
                records.append(r)
            if i < a.sheet_faces:
                sheets.setdefault(level, []).append([f.image, *imgs.values()])
    C.write_csv(out / "faces.csv", records, ["level", "face", "stage", "psnr", "ssim", "id_dist", "niqe",
                                             "pdist", "hf", "align", "degrade_seed", "seconds"])
    for level, rows in sheets.items():
        names = [f.name for f in faces[:len(rows)]]
        C.save_rgb(out / f"contact_{level}.png", C.contact_sheet(
            rows, [labels["hq"]] + [labels[n] for n in model.method.labels], names))
    summary = summarize(records, ["psnr", "ssim", "id_dist", "niqe", "pdist", "hf"], ("level", "stage"))
    table_rows = []
    for r in summary:
        hq = r["stage"] == "hq"
        # the HQ row's KID: the clean set against itself, the noise floor (its pdist and hf: none)
        r["kid"], r["kid_std"] = kids.get((r["level"], r["stage"]), (None, None))
        table_rows.append([r["level"], labels[r["stage"]], r["n"],
                           "—" if hq else C.fmt(r["psnr"]), "—" if hq else C.fmt(r["ssim"], 4),
                           "—" if hq else C.fmt(r["id_dist"], 3),
                           "—" if hq else (r["id_na"] if scorer.use_id else "off"),
                           C.fmt(r["niqe"]), *realism_cells(r, scorer)])
    table = C.markdown_table(["level", "stage", "n", "PSNR dB ↑", "SSIM ↑", "ID dist ↓",
                              "ID n/a", "NIQE ↓", *REALISM_HEADER], table_rows)
    return table, summary, (cache, lqs)


SIMPLE = "simple"   # --sweep simple=0,25,...: the method's plain-words slider (DiffBFR: fidelity <-> detail)


def parse_sweep(spec: str, settings) -> tuple[str, list]:
    """FIELD=v1,v2,... for a setting, or simple=positions (0-100) for the plain-words slider."""
    name, _, values = spec.partition("=")
    if name.strip() != SIMPLE:
        return C.parse_sweep(spec, settings)
    try:
        positions = [float(v) for v in values.split(",") if v.strip()]
    except ValueError:
        positions = []
    if not positions or not all(0 <= p <= 100 for p in positions):
        raise argparse.ArgumentTypeError(f"bad --sweep {spec!r}: positions from 0 to 100, e.g. simple=0,25,100")
    return SIMPLE, positions


def swept(model, base, field: str, value):
    """`base` with one setting changed, or with the plain-words slider at a position (it moves
    several settings, inside what the loaded networks were trained for)."""
    if field != SIMPLE:
        return S.with_value(base, field, value)
    limits = model.knob_limits()
    for name, v in model.method.simple.apply(value, limits).items():
        base = S.with_value(base, name, v, limits)
    return base


def run_sweep(a, model, base, faces, cached, scorer, field: str, values: list, out: Path):
    """The final output along one setting; stages upstream of it come from the cache."""
    cache, lqs = cached
    rows = []
    for level in a.levels:
        for v in values:
            s = swept(model, base, field, v)
            stages = restore_all(model, lqs[level], s, cache, [(level, f.name) for f in faces],
                                 f"sweep {field}={v} {level}")
            per = [scorer.full(f.image, st.result, f.name) for f, st in zip(faces, stages)]
            real = scorer.realism([f.image for f in faces], {"final": [st.result for st in stages]})
            row = {"field": field, "value": v, "level": level, "n": len(per),
                   **{k: C.mean_or_nan(p[k] for p in per) for k in ("psnr", "ssim", "id_dist", "niqe")},
                   **(real.means("final") if real else {})}
            rows.append(row)
            log(f"[sweep {field}={v} {level}] PSNR {row['psnr']:.2f} NIQE {row['niqe']:.2f}")
    C.write_csv(out / f"sweep_{field}.csv", rows,
                ["field", "value", "level", "n", "psnr", "ssim", "id_dist", "niqe", *REALISM])
    plot_sweep(out / f"sweep_{field}.png", field, rows, len(faces), scorer.use_id)
    table = C.markdown_table([field, "level", "n", "PSNR dB ↑", "SSIM ↑", "ID dist ↓", "NIQE ↓", *REALISM_HEADER], [
        [r["value"], r["level"], r["n"], C.fmt(r["psnr"]), C.fmt(r["ssim"], 4), C.fmt(r["id_dist"], 3),
         C.fmt(r["niqe"]), *realism_cells(r, scorer)] for r in rows])
    return table, rows


def plot_sweep(path: Path, field: str, rows: list[dict], n_faces: int, identity: bool = True) -> None:
    """Each score against the swept value, one line per level: PSNR (fidelity), then what a
    person sees (pdist, KID, hf; NIQE and identity when the realism scores are off)."""
    realism = any(math.isfinite(r.get("pdist", math.nan)) for r in rows)
    panels = ([("psnr", "PSNR (dB) ↑"), ("pdist", "pdist ↓"), ("kid", "KID×1000 ↓"), ("hf", "hf → 1")] if realism
              else [("psnr", "PSNR (dB) ↑"), ("niqe", "NIQE ↓ (rewards grain)"), ("id_dist", "identity distance ↓")])
    fig, axes = plt.subplots(1, len(panels), figsize=(3.6 * len(panels), 3.6))
    for ax, (key, label) in zip(axes, panels):
        for level in dict.fromkeys(r["level"] for r in rows):
            rs = [r for r in rows if r["level"] == level]
            ax.plot([r["value"] for r in rs], [r[key] for r in rs], "o-", label=level)
        if key == "hf":
            ax.axhline(1.0, color="grey", lw=0.8, ls="--")  # as detailed as the clean face
        if key == "id_dist" and not identity:
            ax.text(0.5, 0.5, "identity off (--no-identity)", ha="center", transform=ax.transAxes)
        ax.set_xlabel(field)
        ax.set_title(label, fontsize=10)
        ax.grid(alpha=0.3)
    axes[0].legend(title="level", fontsize=8)
    fig.suptitle(f"final output along {field} ({n_faces} faces)", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


# ---------------------------------------------------------------- LQ mode

def run_lq(a, model, settings, scorer, out: Path):
    labels = stage_labels(model.method)
    faces, failures = C.folder_faces(a.lq_dir, a.limit, a.align)
    stages = restore_all(model, [f.image for f in faces], settings, None, [f.name for f in faces], "lq")
    records, sheet = [], []
    for i, (f, st) in enumerate(zip(faces, stages)):
        imgs = {"input": f.image, **{k: v for k, v in stage_images(st).items() if k != "lq"}}
        for stage, img in imgs.items():
            records.append({"face": f.name, "stage": stage, "align": f.method, "niqe": scorer.niqe(img),
                            "id_dist": 0.0 if stage == "input" else scorer.identity(f.image, img, "lq:" + f.name)})
        if i < a.sheet_faces:
            sheet.append(list(imgs.values()))
    C.write_csv(out / "lq_faces.csv", records, ["face", "stage", "niqe", "id_dist", "align"])
    C.write_csv(out / "lq_failures.csv", [{"file": n, "reason": r} for n, r in failures], ["file", "reason"])
    if sheet:
        C.save_rgb(out / "contact_lq.png", C.contact_sheet(
            sheet, [labels["input"]] + [labels[n] for n in model.method.stage_names],
            [f.name for f in faces[:len(sheet)]]))
    summary = summarize(records, ["niqe", "id_dist"], ("stage",))
    table = C.markdown_table(["stage", "n", "NIQE ↓", "ID dist to input ↓", "ID n/a"], [
        [labels[r["stage"]], r["n"], C.fmt(r["niqe"]),
         "—" if r["stage"] == "input" else C.fmt(r["id_dist"], 3),
         "—" if r["stage"] == "input" else (r["id_na"] if scorer.use_id else "off")] for r in summary])
    return table, faces, failures


# ---------------------------------------------------------------- main

def describe_faces(faces, failures) -> str:
    methods: dict[str, int] = {}
    for f in faces:
        methods[f.method] = methods.get(f.method, 0) + 1
    s = f"{len(faces)} faces scored (" + ", ".join(f"{k}: {v}" for k, v in sorted(methods.items())) + ")"
    s += f"; {len(failures)} failed to align"
    if failures:
        s += ":\n" + "\n".join(f"  - {n}: {r}" for n, r in failures)
    return s


def parse_args(argv=None):
    ap = argparse.ArgumentParser(prog="python -m bench.quality", description=__doc__.split("\n")[0])
    ap.add_argument("--hq-dir", help="folder of clean face images (default: UTKFace test split)")
    ap.add_argument("--lq-dir", help="folder of real degraded photos (no ground truth)")
    ap.add_argument("--levels", default="medium", help="comma list of diffbfr.train.degrade.LEVELS")
    ap.add_argument("--limit", type=int, default=None, help="first N faces (files sorted by name)")
    ap.add_argument("--sweep", action="append", default=[], metavar="FIELD=v1,v2,...",
                    help="e.g. irm_start=0,100,300 or tem_t=0,2.5,10, or simple=0,25,50,75,100: the "
                         "plain-words slider (DiffBFR: fidelity <-> detail) (repeatable)")
    ap.add_argument("--out", default="bench_out", help="output folder (default bench_out/)")
    ap.add_argument("--align", choices=("detect", "crop"), default="detect",
                    help="folders: detect faces (fallback: aligned crop) or treat every file as a crop")
    ap.add_argument("--min-face", type=float, default=0.0,
                    help="--hq-dir: report detected faces spanning fewer source pixels as failures")
    ap.add_argument("--no-identity", action="store_true", help="skip dlib identity distances")
    ap.add_argument("--no-realism", action="store_true",
                    help="skip the realism scores (pdist, KID, hf: EfficientNet-Lite2 features, bench/realism.py)")
    ap.add_argument("--niqe-model", default=str(MODEL_PATH))
    ap.add_argument("--sheet-faces", type=int, default=8, help="faces per contact sheet")
    ap.add_argument("--device", default=None, help="cpu | cuda (default: cuda if available)")
    ap.add_argument("--auto", action="store_true",
                    help="Auto's start steps per face, as the app's default (not with --sweep)")
    C.add_model_args(ap, argv)
    a = ap.parse_args(argv)
    if a.auto and a.sweep:
        ap.error("--auto chooses the start steps per face: it cannot be swept; drop one of them")
    a.levels = [lv.strip() for lv in a.levels.split(",") if lv.strip()]
    bad = [lv for lv in a.levels if lv not in LEVELS]
    if bad or not a.levels:
        ap.error(f"--levels must be a comma list of {', '.join(LEVELS)}")
    return a


def main(argv=None) -> int:
    a = parse_args(argv)
    settings = C.settings_from_args(a)
    try:
        sweeps = [parse_sweep(s, settings) for s in a.sweep]
    except argparse.ArgumentTypeError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    model = C.load_model(a, a.device)
    scorer = Scorer(NiqeModel.load(a.niqe_model), identity=not a.no_identity, realism=not a.no_realism)
    auto = None
    if a.auto:
        from diffbfr.auto import Auto
        auto = Auto.for_method(a.weights, a.method, random_tiny=a.tiny)
    header = ["# DiffBFR quality benchmark", "",
              f"- model: {a.method}, {'random tiny networks (numbers are meaningless)' if a.tiny else a.weights}"
              f" on {model.device}",
              f"- settings: {settings}" + (" with Auto's start steps per face (--auto)" if a.auto else ""),
              f"- seeds: --seed {a.seed} (restoration seed, and base of the per-face degradation seeds)",
              f"- NIQE model: {a.niqe_model} (patch {scorer.niqe_model.patch})",
              "- realism: " + (f"off ({scorer.realism_off})" if scorer.realism_off else
                               "pdist, KID x1000 (mean ± std over draws), hf: EfficientNet-Lite2 features "
                               "at 128 px, see bench/realism.py; HQ row's KID = the clean set against itself")]
    report, results = [], {}
    if a.hq_dir or not a.lq_dir:
        if a.hq_dir:
            faces, failures = C.folder_faces(a.hq_dir, a.limit, a.align, a.min_face)
            src = f"folder {a.hq_dir} (files sorted by name, --align {a.align})"
        else:
            if not (Path(default_data_dir()) / "utkface" / "manifest.csv").exists():
                print(f"no UTKFace data under {default_data_dir()}: pass --hq-dir", file=sys.stderr)
                return 2
            faces, failures = C.utk_test_faces(a.limit)
            src = "UTKFace test split (sorted by file name, align_crop 'utk')"
        C.write_csv(out / "failures.csv", [{"file": n, "reason": r} for n, r in failures], ["file", "reason"])
        header += [f"- HQ source: {src}; limit {a.limit}",
                   f"- degradation: diffbfr.train.degrade.fixed_degrade, levels {','.join(a.levels)}; seed per face "
                   f"= crc32('{a.seed}:<face name>') & 0x7fffffff (column degrade_seed in faces.csv)",
                   f"- faces: {describe_faces(faces, failures)}"]
        if faces:
            table, results["quality"], cache = run_hq(a, model, settings, faces, scorer, out, auto)
            report += ["", "## Restoration quality (mean over faces)", "", table]
            for field, values in sweeps:
                table, results[f"sweep_{field}"] = run_sweep(a, model, settings, faces, cache, scorer, field,
                                                             values, out)
                report += ["", f"## Sweep {field} (final output)", "", table,
                           "", f"plot: {out / f'sweep_{field}.png'}"]
    if a.lq_dir:
        table, lq_faces, lq_fail = run_lq(a, model, settings, scorer, out)
        header += [f"- LQ source: folder {a.lq_dir}; {describe_faces(lq_faces, lq_fail)}"]
        report += ["", "## Real degraded photos (no ground truth)", "", table]
    if not scorer.realism_off:
        header += [f"- realism scoring took {scorer.realism_seconds:.1f} s of this run"]
    text = "\n".join(header + report) + "\n"
    (out / "summary.md").write_text(text)
    (out / "run.json").write_text(json.dumps({"settings": S.to_dict(settings), "args": {k: v for k, v in vars(a).items()},
                                              "results": C.finite_or_none(results)}, indent=1, default=str))
    print(text)
    print(f"files in {out}/: " + ", ".join(sorted(p.name for p in out.iterdir())))
    return 0


if __name__ == "__main__":
    sys.exit(main())
