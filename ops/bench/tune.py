#!/usr/bin/env python
"""Equal-budget tuning: every model gets the same number of trials over its own key settings.

    nice -n 10 .venv/bin/python ops/bench/tune.py --impressions 1000000 --trials 8 \
        --out runs/tune/300k --set train.threads=1 [--models ...] [--write-profiles]

Each trial is one ``run_fit`` of the model with a sampled configuration (Optuna's TPE
sampler, seeded per model; the first trial is always the model's plain defaults, so a
tuned profile can only beat them on validation). Trials are scored on the **validation**
split only: the fit is given the validation file as its "test" file, so the test split is
never read. The score is ``train.objective`` of the kept state (``auc_sum``: CTR AUC + CVR
AUC), the same objective for every model.

Every trial is cached as ``OUT/<model>/trial-<k>.json`` (settings, distributions, validation
metrics); a re-run replays the cached trials into the sampler and only runs what is missing,
so an interrupted tuning resumes. ``--from DIR`` narrows the space: each model's best trial of
an earlier tuning (e.g. on a smaller sample) is enqueued as its second trial. Output:
``OUT/best.json`` and ``OUT/profiles.toml`` (the tuned profiles); ``--write-profiles`` also
writes them into ``lt4rec/config/profiles.toml`` (other models' profiles are kept), which
``lt4rec fit``, the worker and the re-pruning job use by default.
"""

from __future__ import annotations

import argparse
import json
import math
import shlex
import sys
from pathlib import Path
from typing import Any

import offline  # ops/bench/offline.py: data preparation shared with the benchmark
import optuna
import tomli_w

REPO = Path(__file__).resolve().parents[2]
PROFILE_FILE = REPO / "lt4rec" / "config" / "profiles.toml"
MODELS = offline.MODELS

# Settings fixed for every model and trial (part of every profile): up to 3 epochs,
# validated every 100 steps, stopping after 2 validations without improvement.
FIXED: dict[str, Any] = {
    "train.epochs": 3,
    "train.eval_every": 100,
    "train.patience": 2,
}
WIDTHS = {"128": [128], "256-128": [256, 128], "512-256": [512, 256], "256-128-64": [256, 128, 64]}
TOWERS = {"none": [], "32": [32], "64": [64], "128-64": [128, 64]}


def _common(trial: optuna.Trial) -> dict[str, Any]:
    """Settings every model tunes: interaction, optimiser, embeddings, regularisation."""
    return {
        "model.interaction": trial.suggest_categorical("model.interaction", ["none", "dot"]),
        "train.lr": trial.suggest_float("train.lr", 1e-3, 3e-2, log=True),
        "model.embedding_dim": trial.suggest_categorical("model.embedding_dim", [8, 16, 32]),
        "model.dropout": trial.suggest_float("model.dropout", 0.0, 0.3),
        "train.embedding_l2": trial.suggest_float("train.embedding_l2", 1e-6, 1e-2, log=True),
        "train.lr_decay": trial.suggest_categorical("train.lr_decay", ["none", "cosine"]),
        "train.cvr_weight": trial.suggest_float("train.cvr_weight", 0.5, 2.0, log=True),
    }


def _mlp(trial: optuna.Trial, bottom: list[str], tower: list[str]) -> dict[str, Any]:
    b = trial.suggest_categorical("model.bottom", bottom)
    t = trial.suggest_categorical("model.tower", tower)
    return {"model.bottom": WIDTHS[b], "model.tower": TOWERS[t]}


def space(model: str, trial: optuna.Trial) -> dict[str, Any]:
    """The settings of one trial of ``model`` (dotted key -> value)."""
    out = _common(trial)
    if model in ("mmoe", "ple"):
        out["model.experts"] = trial.suggest_categorical("model.experts", [2, 4, 8])
        e = trial.suggest_categorical("model.expert_hidden", ["128", "256-128"])
        t = trial.suggest_categorical("model.tower", ["32", "64", "128-64"])
        out.update({"model.expert_hidden": WIDTHS[e], "model.tower": TOWERS[t]})
    elif model == "sparse_sharing":
        out.update(_mlp(trial, ["256-128", "256-128-64"], ["32", "64"]))
        out.update(_pruning(trial))
    else:
        out.update(_mlp(trial, ["128", "256-128", "256-128-64"], ["none", "32", "64"]))
    if model == "escm2":
        out["model.ips_weight"] = trial.suggest_float("model.ips_weight", 0.1, 2.0, log=True)
        out["model.ctcvr_weight"] = trial.suggest_float("model.ctcvr_weight", 0.1, 2.0, log=True)
    return out


def _pruning(trial: optuna.Trial) -> dict[str, Any]:
    """Sparse sharing's schedule. The per-round rates follow from the rounds and a final
    density, so every trial meets the <= 30 % MLP density target (rates: 1 - d^(1/rounds))."""
    rounds = trial.suggest_int("prune.rounds", 2, 3)
    ctr_d = trial.suggest_float("ctr_density", 0.2, 0.29)
    cvr_d = trial.suggest_float("cvr_density", 0.08, 0.29)
    frac = trial.suggest_float("prune.round_fraction", 0.2, 0.5)
    loss = trial.suggest_categorical("train.cvr_loss", ["clicked", "entire_space"])
    return {
        "prune.rounds": rounds,
        "prune.rate": round(1 - ctr_d ** (1 / rounds), 4),
        "prune.cvr_rate": round(1 - cvr_d ** (1 / rounds), 4),
        "prune.select": "last",
        "prune.round_fraction": frac,
        # clicked-rows CVR rounds are ~1/CTR times cheaper; entire-space ones are not
        "prune.cvr_round_fraction": 1.0 if loss == "clicked" else frac,
        "prune.rewind_fraction": trial.suggest_float("prune.rewind_fraction", 0.0, 0.25),
        "model.output_layer": trial.suggest_categorical(
            "model.output_layer", ["shared", "per_task"]
        ),
        "train.cvr_loss": loss,
    }


def _round(value: Any) -> Any:
    """Floats to 3 significant digits (readable profiles; the trial runs the rounded value)."""
    return float(f"{value:.3g}") if isinstance(value, float) else value


def overrides(settings: dict[str, Any]) -> list[str]:
    """``--set`` strings of ``settings`` (TOML literals)."""
    return [f"{k}={json.dumps(v)}" for k, v in settings.items()]


def run_trial(
    args: argparse.Namespace, data: Path, model: str, settings: dict[str, Any]
) -> dict[str, Any]:
    """One fit scored on validation (the test split is never read: valid is passed as test)."""
    from lt4rec.config import load_app_config
    from lt4rec.train.steps import validation_score

    sets = [*args.sets, "model.profile=none", f"model.name={model}", "train.seed=0"]
    cfg = load_app_config(None, [*sets, *overrides(settings)])
    keep = ("ctr_auc", "cvr_auc", "ctcvr_auc", "ctr_logloss", "cvr_logloss", "density_ctr",
            "density_cvr", "best_epoch", "best_step", "epochs_run", "fit_seconds")  # fmt: skip
    m, valid, seconds = offline.validation_fit(cfg, data, keep)
    return {"score": validation_score(m, cfg.train.objective), "objective": cfg.train.objective,
            "valid": valid, "seconds": seconds}  # fmt: skip


def tune_model(args: argparse.Namespace, data: Path, model: str) -> dict[str, Any]:
    """Run (or resume) ``args.trials`` trials of ``model``; return the best one."""
    folder = args.out / model
    folder.mkdir(parents=True, exist_ok=True)
    sampler = optuna.samplers.TPESampler(seed=args.sampler_seed, n_startup_trials=args.startup)
    study = optuna.create_study(direction="maximize", sampler=sampler)
    done = sorted(folder.glob("trial-*.json"), key=lambda p: int(p.stem.split("-")[1]))
    for p in done:
        rec = json.loads(p.read_text())
        dists = {k: optuna.distributions.json_to_distribution(v) for k, v in rec["dists"].items()}
        study.add_trial(
            optuna.trial.create_trial(params=rec["params"], distributions=dists, value=rec["score"])
        )
    if not done:
        study.enqueue_trial({}, user_attrs={"defaults": True})  # see _defaults_trial
    earlier = _earlier_best(args, model)
    if earlier is not None and len(done) < 2:
        study.enqueue_trial(earlier)
    for k in range(len(done), args.trials):
        trial = study.ask()
        if trial.user_attrs.get("defaults"):
            settings = _defaults_trial(model, trial)
        else:
            settings = {k: _round(v) for k, v in {**FIXED, **space(model, trial)}.items()}
        print(f"[trial] {model} {k}: {shlex.join(overrides(settings))}", flush=True)
        rec = run_trial(args, data, model, settings)
        dists = {
            n: optuna.distributions.distribution_to_json(d) for n, d in trial.distributions.items()
        }
        rec.update(trial=k, params=trial.params, dists=dists, settings=settings)
        (folder / f"trial-{k}.json").write_text(json.dumps(rec, indent=2) + "\n")
        study.tell(trial, rec["score"])
        print(f"[score] {model} {k}: {rec['score']:.4f} {rec['valid']}", flush=True)
    return summarise(args, model)


def summarise(args: argparse.Namespace, model: str) -> dict[str, Any]:
    """The best of ``model``'s first ``args.trials`` cached trials."""
    folder = args.out / model
    recs = [json.loads(p.read_text()) for p in folder.glob("trial-*.json")]
    recs = [r for r in recs if r["trial"] < args.trials and math.isfinite(r["score"])]
    best = max(recs, key=lambda r: r["score"])
    defaults = next((r["score"] for r in recs if r["trial"] == 0), None)
    return {"model": model, "trials": len(recs), "best": best, "defaults_score": defaults}


def _defaults_trial(model: str, trial: optuna.Trial) -> dict[str, Any]:
    """Trial 0: the plain defaults with the shared regime (its params are not sampled)."""
    del model, trial
    return dict(FIXED)


def _earlier_best(args: argparse.Namespace, model: str) -> dict[str, Any] | None:
    if args.from_dir is None:
        return None
    path = args.from_dir / "best.json"
    if not path.is_file():
        return None
    best = json.loads(path.read_text()).get(model)
    return dict(best["best"]["params"]) if best and best["best"]["params"] else None


def profile_of(settings: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """``{"train.lr": x}`` -> ``{"train": {"lr": x}}`` (machine-specific keys dropped)."""
    out: dict[str, dict[str, Any]] = {}
    for key, value in settings.items():
        section, name = key.split(".", 1)
        if key in ("train.threads", "train.device", "train.seed"):
            continue
        out.setdefault(section, {})[name] = value
    return out


def write_profiles(path: Path, profiles: dict[str, dict[str, Any]], command: str) -> None:
    """Merge ``profiles`` into the TOML profile file at ``path`` (other models kept)."""
    import tomllib

    old = tomllib.loads(path.read_text()) if path.is_file() else {}
    old.update(profiles)
    header = (
        "# Per-model tuned defaults (lt4rec.config.profiles): one table per model name.\n"
        "# Precedence: dataclass defaults < this profile < the TOML file < --set overrides;\n"
        '# model.profile = "none" skips it. Written by ops/bench/tune.py (validation only):\n'
        f"# {command}\n"
    )
    path.write_text(header + tomli_w.dumps(dict(sorted(old.items()))))


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--dataset", choices=["sim", "tencent"], default="sim")
    p.add_argument("--impressions", type=int, default=300_000)
    p.add_argument("--days", type=int, default=None)
    p.add_argument("--data-seed", type=int, default=0)
    p.add_argument("--models", nargs="+", choices=MODELS, default=list(MODELS))
    p.add_argument("--trials", type=int, default=8, help="trials per model (the budget)")
    p.add_argument("--startup", type=int, default=5, help="random trials before TPE")
    p.add_argument("--sampler-seed", type=int, default=0)
    p.add_argument("--out", type=Path, default=Path("runs/tune"))
    p.add_argument("--data-dir", type=Path, default=None, help="data cache (default OUT/data)")
    p.add_argument("--from", dest="from_dir", type=Path, default=None)
    p.add_argument("--set", dest="sets", action="append", default=[], metavar="SECTION.KEY=V")
    p.add_argument("--write-profiles", action="store_true")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    from lt4rec.config import ConfigError, load_app_config

    try:
        cfg = load_app_config(None, args.sets)
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    command = "python ops/bench/tune.py " + shlex.join(sys.argv[1:] if argv is None else argv)
    data = offline.prepare_data(args, args.dataset, cfg)
    args.out.mkdir(parents=True, exist_ok=True)
    for model in args.models:
        tune_model(args, data, model)
    # Every model tuned into OUT so far (several tuning processes may share OUT).
    results = {m: summarise(args, m) for m in MODELS if any((args.out / m).glob("trial-*"))}
    (args.out / "best.json").write_text(json.dumps(results, indent=2) + "\n")
    profiles = {m: profile_of(r["best"]["settings"]) for m, r in results.items()}
    (args.out / "profiles.toml").write_text(tomli_w.dumps(profiles))
    for m, r in results.items():
        b = r["best"]
        print(f"{m}: best trial {b['trial']} of {r['trials']}, valid {b['objective']} "
              f"{b['score']:.4f} (defaults {r['defaults_score']:.4f}) {b['valid']}")  # fmt: skip
    if args.write_profiles:
        write_profiles(PROFILE_FILE, profiles, command)
        print(f"wrote {', '.join(profiles)} into {PROFILE_FILE}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
