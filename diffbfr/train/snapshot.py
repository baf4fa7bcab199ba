"""python -m diffbfr.train snapshot RUN_DIR --out DIR: the EMA weights of a run that is still
going (or was stopped), from its latest resume state, written as the run would export them
(fp16 NAME.safetensors + NAME.json), so that a long run can be validated mid-way with the
benches (`--weights DIR`) without stopping it. The JSON's meta says it is a snapshot."""
from __future__ import annotations

import argparse
import json
from pathlib import Path

from safetensors.torch import load_file, save_file

from ..checkpoint import config_path
from .run_state import STATE_JSON

NAME = "snapshot"
SKIP = ("state", "history")   # resume bookkeeping; the args stay, as in an export


def snapshot(run_dir, out_dir, module: str = "ema") -> Path:
    run_dir, out_dir = Path(run_dir), Path(out_dir)
    state = json.loads((run_dir / STATE_JSON).read_text())
    prefix = f"module/{module}/"
    tensors = {k[len(prefix):]: (v.half() if v.is_floating_point() else v).contiguous()
               for k, v in load_file(str(run_dir / state["state"]["file"])).items() if k.startswith(prefix)}
    if not tensors:
        raise SystemExit(f"{run_dir}: no module {module!r} in its state "
                         f"(has: {', '.join(state['state']['modules'])})")
    name = state["config"].get("name", state.get("model", run_dir.name))
    path = out_dir / f"{name}.safetensors"
    out_dir.mkdir(parents=True, exist_ok=True)
    save_file(tensors, str(path), metadata={"name": str(name)})
    meta = {k: v for k, v in state.items() if k not in SKIP and k != "config"}
    meta["snapshot"] = {"run_dir": str(run_dir), "step": state["step"], "module": module}
    config_path(path).write_text(json.dumps({"config": state["config"], "meta": meta}, indent=2, default=str) + "\n")
    return path


def main(argv) -> int:
    ap = argparse.ArgumentParser(prog=f"python -m diffbfr.train {NAME}", description=__doc__)
    ap.add_argument("run_dir", help="a run folder (runs/NAME): its state.json and state.*.safetensors")
    ap.add_argument("--out", required=True, help="folder for NAME.safetensors + NAME.json")
    ap.add_argument("--module", default="ema", help="which of the run's modules (default: ema, what ships)")
    args = ap.parse_args(argv[1:])
    path = snapshot(args.run_dir, args.out, args.module)
    print(f"{path} (step {json.loads(config_path(path).read_text())['meta']['snapshot']['step']})")
    return 0
