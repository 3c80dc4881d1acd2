"""``wass export``: a trained checkpoint into an ONNX policy for a decision without torch.

::

    wass export CKPT -o policy.onnx [--opset N] [--verify N] [--seed S]

The logic lives in :func:`agents.deploy.export.export_policy`; this module parses arguments and
reports. It runs behind the command-line boundary (:mod:`wass_env.cli`): a missing or damaged
checkpoint, an output name without ``.onnx`` or an export that does not reproduce the policy is
one line naming the file and the value, exit code 2, and nothing is written. Plan with the
result: ``wass plan WORKFLOW --cluster CLUSTER --scheduler policy:policy.onnx``.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence

from agents.deploy.onnx_policy import is_onnx
from wass_env.cli import ArgumentParser, OutputPathError, check_output_file, cli

__all__ = ["build_parser", "main"]


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``wass export``."""
    p = ArgumentParser(
        prog="wass export",
        description="Export a trained MaskablePPO checkpoint to ONNX (checked against torch).",
    )
    p.add_argument("checkpoint", metavar="CKPT", help="model.zip saved by training")
    p.add_argument(
        "-o", "--output", required=True, metavar="POLICY_ONNX", help="the .onnx file to write"
    )
    p.add_argument("--opset", type=int, default=17, help="ONNX opset, >= 16 (default 17)")
    p.add_argument(
        "--verify",
        type=int,
        default=256,
        metavar="N",
        help="states on which onnxruntime must match torch before the file is written "
        "(default 256)",
    )
    p.add_argument("--seed", type=int, default=0, help="seed of those states (default 0)")
    return p


@cli
def main(argv: Sequence[str] | None = None) -> int:
    """Run ``wass export`` with ``argv``; returns the exit code."""
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as stop:  # --help, or a usage error already reported on one line
        return int(stop.code or 0)
    check_output_file(args.output, "-o")
    if not is_onnx(args.output):  # before importing torch (seconds)
        raise OutputPathError(f"-o: {args.output!r}: the exported policy's name must end in .onnx")
    from agents.deploy.export import export_policy  # torch: only once the arguments are good

    r = export_policy(
        args.checkpoint, args.output, opset=args.opset, verify=args.verify, seed=args.seed
    )
    ties = f" ({r.ties} more were ties under float rounding)" if r.ties else ""
    print(
        f"wass export: {args.checkpoint} -> {r.path} ({r.size / 1024:.0f} KiB, opset {r.opset}; "
        f"inputs {', '.join(r.inputs)}; up to {r.max_nodes} nodes); onnxruntime chose torch's "
        f"node on {r.same_node} of {r.states} states{ties}, probabilities within "
        f"{r.max_prob_diff:.1e}"
    )
    return 0
