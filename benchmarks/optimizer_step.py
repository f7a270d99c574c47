"""Time one optimizer step the way altlearn builds it (torch's fused kernel where the device has one)
against torch's default (one operator per term, tensor by tensor, on the CPU), for the parameters of
the networks the paper set-ups train: the 784-2000x4-10 MLP (13.6 M parameters) and the 3x1024
local-loss MLP with its similarity maps and prediction heads (6.0 M).

Both are timed in the same process on the same parameters and gradients, interleaved, and the median
over repeats is reported; the two updates agree to rounding (the largest difference is printed).

    python benchmarks/optimizer_step.py [--threads 1] [--repeats 20] [--device cpu]
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from altlearn.optim.optimizers import Adam, AdamW
from altlearn.training.build import flush_denormals

NETWORKS = {
    "mlp4x2000": [(2000, 784), (2000,)] + [(2000, 2000), (2000,)] * 3 + [(10, 2000), (10,)],
    "localloss3x1024": [(1024, 784), (1024,)]
    + [(1024, 1024), (1024,)] * 2
    + [(10, 1024), (10,)]
    + [(1024, 1024)] * 3  # the similarity maps
    + [(10, 1024)] * 3,  # the prediction heads
}
# SGD is left unfused (optimizers.py says why), so it has no fused step to time
OPTIMIZERS = {"adam": Adam, "adamw": AdamW}


def _parameters(shapes, device) -> list[torch.nn.Parameter]:
    generator = torch.Generator().manual_seed(0)
    parameters = []
    for shape in shapes:
        p = torch.nn.Parameter(torch.randn(shape, generator=generator).to(device))
        p.grad = torch.randn(shape, generator=generator).to(device) * 1e-2
        parameters.append(p)
    return parameters


def _optimizer(name: str, parameters, fused: bool):
    cls = OPTIMIZERS[name]
    built = cls.build(cls.Params(), parameters)
    if not fused:  # torch's default, as altlearn built it before it asked for the fused kernel
        for group in built.param_groups:
            group["fused"] = None
    return built


def _time(optimizer, device) -> float:
    if device.type == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    optimizer.step()
    if device.type == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter() - start


def measure(network: str, name: str, repeats: int, device: torch.device) -> dict[str, float]:
    shapes = NETWORKS[network]
    default_params, fused_params = _parameters(shapes, device), _parameters(shapes, device)
    default, fused = _optimizer(name, default_params, False), _optimizer(name, fused_params, True)
    for optimizer in (default, fused):  # warm up: the moments are created on the first step
        optimizer.step()
    times: dict[str, list[float]] = {"default": [], "fused": []}
    for _ in range(repeats):
        times["default"].append(_time(default, device))
        times["fused"].append(_time(fused, device))
    difference = max((a - b).abs().max().item() for a, b in zip(default_params, fused_params))
    median = {key: statistics.median(values) for key, values in times.items()}
    return {
        "parameters_m": sum(p.numel() for p in default_params) / 1e6,
        "default_ms": 1000 * median["default"],
        "fused_ms": 1000 * median["fused"],
        "speedup": median["default"] / median["fused"],
        "max_difference": difference,
    }


def main(argv: list[str] | None = None) -> list[dict]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--networks", default=",".join(NETWORKS))
    parser.add_argument("--optimizers", default=",".join(OPTIMIZERS))
    args = parser.parse_args(argv)
    flush_denormals()
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    rows = []
    print(f"{'network':<16} {'optimizer':<13} {'params':>7} {'default':>10} {'fused':>9} {'speedup':>8}")
    for network in args.networks.split(","):
        for name in args.optimizers.split(","):
            row = {"network": network, "optimizer": name, **measure(network, name, args.repeats, device)}
            rows.append(row)
            print(
                f"{network:<16} {name:<13} {row['parameters_m']:>6.1f}M {row['default_ms']:>8.1f}ms "
                f"{row['fused_ms']:>7.1f}ms {row['speedup']:>7.1f}x   (largest difference "
                f"{row['max_difference']:.1e})"
            )
    return rows


if __name__ == "__main__":
    main()
