"""The bimodal Trifeature R/U/S experiment (placeholder until the experiment lands)."""

from __future__ import annotations

import argparse


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--preset", choices=["cpu", "paper"], default="cpu")
    p.add_argument("--output", default="runs/trifeature")


def run_from_args(args: argparse.Namespace) -> None:
    raise ValueError("the Trifeature experiment is not built yet")
