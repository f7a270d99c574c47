"""What tests/test_rules_pc.py and tests/test_rules_ep.py share: building rules, the digits spec."""

from __future__ import annotations

import copy
import tempfile
from pathlib import Path

import torch

from altlearn.optim.losses import cross_entropy
from altlearn.rules.base import RuleContext

DIGITS_SPEC = """\
name: digits-mlp64
seed: 0
data: {type: digits, batch_size: 64}
network:
  layers:
    - {type: flatten}
    - {type: linear, out_features: 64}
    - {type: relu}
    - {type: linear, out_features: 10}
rule: {type: bp}
optimizer: {type: adam, lr: 0.003}
train: {epochs: 10, device: cpu}
tracking: {experiment: digits}
"""


def make_rule(cls, network, num_classes=3, seed=0, **options):
    context = RuleContext(network, cross_entropy, num_classes=num_classes, seed=seed)
    return cls(cls.Params(**options), context)


def grads_of(rule, x, y, **kwargs):
    for p in rule.parameters():
        p.grad = None
    metrics = (rule.learn if kwargs else rule.train_step)(x, y, **kwargs)
    return [p.grad.clone() for p in rule.network.parameters()], metrics


def cosine(a, b):
    return torch.nn.functional.cosine_similarity(a.flatten(), b.flatten(), dim=0).item()


def bp_grads(network, loss):
    for p in network.parameters():
        p.grad = None
    loss.backward()
    return [p.grad.clone() for p in network.parameters()]


def assert_state_round_trip_is_exact(rule_factory, x, y, steps=3):
    """Train, save (rule and Adam state), train on; a rule loaded from the save trains on identically."""
    rule = rule_factory()
    optimizer = torch.optim.Adam(rule.parameters(), lr=1e-2)

    def train(r, opt, n):
        for _ in range(n):
            opt.zero_grad(set_to_none=True)
            r.train_step(x, y)
            opt.step()

    train(rule, optimizer, steps)
    saved = copy.deepcopy((rule.state_dict(), optimizer.state_dict(), rule.get_extra_state()))
    train(rule, optimizer, steps)
    resumed = rule_factory()
    resumed_optimizer = torch.optim.Adam(resumed.parameters(), lr=1e-2)
    resumed.load_state_dict(saved[0])
    resumed_optimizer.load_state_dict(saved[1])
    resumed.set_extra_state(saved[2])
    train(resumed, resumed_optimizer, steps)
    ours, theirs = rule.state_dict(), resumed.state_dict()
    assert ours.keys() == theirs.keys()
    for key, value in ours.items():
        assert torch.equal(value, theirs[key]) if torch.is_tensor(value) else value == theirs[key]


def digits_test_accuracy(rule_type: str, *overrides: str) -> float:
    """Train the digits MLP (64 relu units, Adam 3e-3, batch 64, 10 epochs) with ``-s rule.type=``
    and ``overrides`` (``-s`` settings such as ``train.precision=bf16``)."""
    import mlflow

    from altlearn.runs import train_spec
    from altlearn.spec.load import load_spec

    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "digits.yaml"
        path.write_text(DIGITS_SPEC)
        spec = load_spec(path, [f"rule.type={rule_type}", *overrides])
        uri = f"sqlite:///{folder}/mlflow.db"
        outcome = train_spec(spec, uri=uri, quiet=True)
        assert outcome.status == "FINISHED", outcome.message
        run = mlflow.tracking.MlflowClient(uri).get_run(outcome.run_id)
        return run.data.metrics["test_accuracy"]


def spec_problems(rule_type: str, hidden_layers: list[str]) -> str:
    """The message of validating the digits spec with ``hidden_layers`` after its first linear."""
    from altlearn.errors import SpecError
    from altlearn.spec.load import load_spec

    text = DIGITS_SPEC.replace("    - {type: relu}\n", "".join(f"    - {layer}\n" for layer in hidden_layers))
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "spec.yaml"
        path.write_text(text)
        try:
            load_spec(path, [f"rule.type={rule_type}"])
        except SpecError as error:
            return str(error)
    return ""
