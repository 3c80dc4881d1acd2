"""Training throughput: MaskablePPO env steps/s on WassSched-v0 against a zero-cost env, same run.

For every vectorisation (DummyVecEnv, SubprocVecEnv) and number of envs, the training job's
learner (``conf/train.yaml`` with its agent, torch threads and callbacks; progress bar off)
trains for a few rollouts on the real environment and on a :class:`~wass_env.bench.ReplayEnv`
with the same spaces, recorded observations and masks and no simulation (the ceiling). Real and
ceiling runs alternate, so machine noise hits both alike. Printed per cell: steps/s, the
ceiling, the environment's share of training time (``1 - real / ceiling``), and how the real
run's time splits into rollout collection (env + inference) and updates.

    python scripts/bench_train.py                                  # n_envs 1,4,8,16 x both
    python scripts/bench_train.py --n-envs 8 --vec dummy --vary agent.batch_size=128,256,512
    python scripts/bench_train.py --n-envs 8 --vec dummy agent.n_epochs=5 teacher=rag

Positional arguments are Hydra overrides of ``conf/train.yaml``; ``--vary KEY=V1,V2`` adds a
sweep over a key (repeatable: the cross product). ``--keep-rollout N`` sets ``agent.n_steps``
to ``N // n_envs``, so every cell collects the same ``N`` samples per update.
"""

from __future__ import annotations

import argparse
import itertools
import sys
from pathlib import Path

from hydra import compose, initialize_config_dir

from agents.bench import training_throughput
from agents.config import register_configs

REPO = Path(__file__).resolve().parents[1]


def main(argv: list[str] | None = None) -> int:
    """Run the grid and print the table."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("overrides", nargs="*", help="Hydra overrides of conf/train.yaml")
    ap.add_argument("--n-envs", default="1,4,8,16", help="comma-separated env counts")
    ap.add_argument("--vec", default="dummy,subproc", help="dummy, subproc or both")
    ap.add_argument("--rollouts", type=int, default=2, help="timed rollouts per cell")
    ap.add_argument("--vary", action="append", default=[], metavar="KEY=V1,V2")
    ap.add_argument("--keep-rollout", type=int, default=0, metavar="N")
    ap.add_argument("--no-ceiling", action="store_true", help="skip the zero-cost env runs")
    args = ap.parse_args(argv)
    try:
        n_envs = [int(x) for x in args.n_envs.split(",")]
        vecs = args.vec.split(",")
        if not set(vecs) <= {"dummy", "subproc"} or min(n_envs) < 1:
            raise ValueError(args.vec)
        axes = [(kv.split("=", 1)[0], kv.split("=", 1)[1].split(",")) for kv in args.vary]
    except (ValueError, IndexError):
        print("error: --n-envs wants integers >= 1, --vec dummy/subproc, --vary KEY=V1,V2")
        return 2
    register_configs()
    print(
        f"{'settings':<40} {'vec':<8} {'envs':>4} {'steps/s':>8} {'ceiling':>8} "
        f"{'env share':>9} {'rollout':>8} {'update':>7}"
    )
    combos = list(itertools.product(*[[(k, v) for v in vals] for k, vals in axes])) or [()]
    for combo in combos:
        extra = [f"{k}={v}" for k, v in combo]
        for vec, n in itertools.product(vecs, n_envs):
            over = [*args.overrides, *extra, "train.progress_bar=false"]
            if args.keep_rollout:
                over.append(f"agent.n_steps={max(args.keep_rollout // n, 1)}")
            with initialize_config_dir(config_dir=str(REPO / "conf"), version_base="1.3"):
                cfg = compose(config_name="train", overrides=over)
            kw = {"n_envs": n, "subproc": vec == "subproc", "rollouts": args.rollouts}
            real = training_throughput(cfg, env="real", **kw)
            ceil = None if args.no_ceiling else training_throughput(cfg, env="replay", **kw)
            share = "" if ceil is None else f"{1 - real['steps_per_s'] / ceil['steps_per_s']:.0%}"
            label = " ".join(extra) or "defaults"
            if args.keep_rollout:
                label += f" n_steps={cfg.agent.n_steps}"
            total = real["rollout_s"] + real["update_s"]
            print(
                f"{label:<40} {vec:<8} {n:>4} {real['steps_per_s']:>8.0f} "
                f"{'' if ceil is None else format(ceil['steps_per_s'], '.0f'):>8} {share:>9} "
                f"{real['rollout_s'] / total:>8.0%} {real['update_s'] / total:>7.0%}",
                flush=True,
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
