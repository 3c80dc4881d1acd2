"""How much a checkpoint explores at each sampling temperature, before PPO fine-tunes it.

    python scripts/probe_temperature.py runs/train/latest/model.zip --temperatures 1,2,3,5

On ``--episodes`` instances of the checkpoint's own training distribution (episode seeds
``--seed`` onwards, outside the training and evaluation ranges) the policy plays each instance
greedily once and sampling once per temperature (``agent.temperature``, the logits divided by
it). Printed per temperature: the mean entropy of the sampled decisions [nats], the share of
sampled decisions less likely than the greedy node (ties, e.g. identical nodes, do not count),
and the mean makespan / HEFT of the sampled and of the greedy episodes. A temperature whose
sampled episodes are far above the greedy ones explores more than PPO can learn from; one with
an entropy near 0 gives PPO no gradient.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("checkpoint", type=Path, help="a MaskablePPO checkpoint (node_scoring policy)")
    ap.add_argument("--temperatures", default="1,2,3", help="comma-separated, each > 0")
    ap.add_argument("--episodes", type=int, default=12)
    ap.add_argument("--seed", type=int, default=5_000_000, help="first episode seed")
    args = ap.parse_args(argv)
    try:
        temps = [float(t) for t in args.temperatures.split(",")]
    except ValueError:
        print(f"--temperatures: not a list of numbers: {args.temperatures!r}", file=sys.stderr)
        return 2
    if not all(t > 0 for t in temps) or args.episodes < 1:
        print("--temperatures must be > 0 and --episodes >= 1", file=sys.stderr)
        return 2
    if not args.checkpoint.is_file():
        print(f"{args.checkpoint}: no such checkpoint", file=sys.stderr)
        return 2

    import gymnasium as gym
    import torch

    import wass_env  # noqa: F401  (registers WassSched-v0)
    from agents.policies import NodeScoringPolicy
    from agents.ppo import MaskablePPOAgent

    torch.set_num_threads(1)
    agent = MaskablePPOAgent.load(args.checkpoint)
    assert agent.model is not None
    policy = agent.model.policy
    if not isinstance(policy, NodeScoringPolicy):
        print(f"{args.checkpoint}: not a node_scoring policy (no temperature)", file=sys.stderr)
        return 2
    kw = dict(agent.env_kwargs)
    kw["reference"] = "heft"
    env = gym.make("WassSched-v0", **kw)
    core = env.unwrapped

    def episode(seed: int, rng: np.random.Generator | None) -> tuple[float, list[float], int]:
        obs, _ = env.reset(seed=seed)
        entropies: list[float] = []
        off = 0
        while True:
            mask = core.action_masks()
            batch = {k: torch.as_tensor(v).unsqueeze(0) for k, v in obs.items()}
            with torch.no_grad():
                dist = policy.get_distribution(batch, action_masks=mask[None])
                p = dist.distribution.probs[0].numpy().astype(np.float64)
            greedy = int(np.argmax(p))
            action = greedy
            if rng is not None:
                entropies.append(float(dist.entropy()))
                action = int(rng.choice(len(p), p=p / p.sum()))
                off += p[action] < p[greedy]  # a tied node is as likely as the greedy one
            obs, _, terminated, truncated, info = env.step(action)
            if terminated or truncated:
                return float(info["ratio_to_reference"]), entropies, off

    for t in temps:
        policy.temperature = t
        sampled, greedy_r, ents, offs = [], [], [], 0
        for i in range(args.episodes):
            seed = args.seed + i
            greedy_r.append(episode(seed, None)[0])
            ratio, e, off = episode(seed, np.random.default_rng(seed))
            sampled.append(ratio)
            ents += e
            offs += off
        row = {
            "temperature": t,
            "entropy": round(float(np.mean(ents)), 4),
            "off_greedy": round(offs / max(len(ents), 1), 4),
            "sampled_ratio_to_heft": round(float(np.mean(sampled)), 4),
            "greedy_ratio_to_heft": round(float(np.mean(greedy_r)), 4),
        }
        print(json.dumps(row), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
