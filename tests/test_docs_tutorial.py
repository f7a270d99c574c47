"""docs/writing-plugins.md stays true: the tutorial's package, written out from the page, passes its
own tests, registers its rule, and its spec validates and trains (on digits instead of MNIST)."""

from __future__ import annotations

import importlib
import re
import sys
from pathlib import Path

import pytest
import yaml

from altlearn.registry import registry as plugins
from altlearn.spec.load import validate
from altlearn.training.trainer import Trainer

PAGE = Path(__file__).resolve().parents[1] / "docs" / "writing-plugins.md"
# A file of the tutorial: its path in bold code, then its fenced contents.
FILE = re.compile(r"^\*\*`([^`]+)`\*\*\n\n```[a-z]*\n(.*?)^```", re.M | re.S)


@pytest.fixture
def tutorial(tmp_path, monkeypatch):
    files = dict(FILE.findall(PAGE.read_text()))
    assert {"src/altlearn_readout/rule.py", "src/altlearn_readout/plugin.py", "tests/test_readout.py"} <= set(
        files
    )
    for name, text in files.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text)
    monkeypatch.syspath_prepend(str(tmp_path / "src"))
    monkeypatch.syspath_prepend(str(tmp_path / "tests"))
    yield files
    for module in [m for m in sys.modules if m.startswith(("altlearn_readout", "test_readout"))]:
        del sys.modules[module]


def test_the_tutorials_own_tests_pass(tutorial):
    tests = importlib.import_module("test_readout")
    names = [name for name in dir(tests) if name.startswith("test_")]
    assert len(names) == 3
    for name in names:
        getattr(tests, name)()


def test_the_tutorials_spec_validates_and_trains_with_its_plugin(tutorial):
    plugin = importlib.import_module("altlearn_readout.plugin")
    registry = plugins.build_registry(extra_plugins=[(plugin, "altlearn-readout", "0.1.0")])
    raw = yaml.safe_load(tutorial["specs/mnist_readout.yaml"])
    raw["data"] = {"type": "digits", "batch_size": 64, "train_subset": 256, "test_subset": 128}
    raw["train"]["epochs"] = 1
    spec = validate(raw, registry)
    assert spec.rule.type == "readout" and spec.packages == {"altlearn-readout": "0.1.0"}
    trainer = Trainer(spec)
    first_layer = trainer.rule.network[1].weight.detach().clone()
    metrics = trainer.fit()
    assert 0.0 <= metrics["test_accuracy"] <= 1.0
    assert trainer.rule.network[1].weight.equal(first_layer)  # frozen, as the tutorial says


# The DRTP example of the page: a direct-feedback rule that only chooses its signal.
DRTP = re.compile(r"^<!-- drtp -->\n```python\n(.*?)^```", re.M | re.S)


def drtp_rule_class():
    namespace: dict = {}
    exec(compile(DRTP.search(PAGE.read_text()).group(1), f"{PAGE}#drtp", "exec"), namespace)  # noqa: S102
    return namespace["DirectRandomTargetProjection"]


@pytest.mark.usefixtures("one_thread")  # tiny tensors: see conftest.py
def test_the_drtp_example_sends_the_target_to_hidden_layers_and_learns_digits():
    import torch
    from torch import nn

    from altlearn.data.datasets import Digits
    from altlearn.optim.losses import cross_entropy
    from altlearn.rules.base import RuleContext

    cls = drtp_rule_class()
    torch.manual_seed(0)
    net = nn.Sequential(nn.Flatten(), nn.Linear(64, 64), nn.Tanh(), nn.Linear(64, 10))
    rule = cls(cls.Params(), RuleContext(net, cross_entropy, num_classes=10, seed=0))
    splits = Digits.load(Digits.Params())
    x, y = (splits.train_x - 0.3) / 0.4, splits.train_y
    # one step by hand: the hidden layer's gradient is ((y* B) * tanh'(a))^T x, whatever the error
    rule.train_step(x[:32], y[:32])
    h = torch.tanh(net[1](x[:32].flatten(1)))
    delta = (nn.functional.one_hot(y[:32], 10).float() @ rule.fixed_feedback(1)) * (1 - h * h)
    torch.testing.assert_close(net[1].weight.grad, delta.T @ x[:32].flatten(1), rtol=1e-4, atol=1e-5)
    optimizer = torch.optim.SGD(net.parameters(), lr=0.05)
    for _ in range(2):  # epochs
        for start in range(0, len(x), 32):
            optimizer.zero_grad()
            rule.train_step(x[start : start + 32], y[start : start + 32])
            optimizer.step()
    with torch.no_grad():
        accuracy = (net((splits.test_x - 0.3) / 0.4).argmax(1) == splits.test_y).float().mean()
    assert accuracy > 0.8, accuracy  # chance is 0.1


def test_the_drtp_example_registers_a_name_no_builtin_has(monkeypatch):
    """The page's copy of DRTP is registered under a name of its own: `drtp` is a built-in, which a
    plugin's registration would not replace (it would be reached only as `altlearn-readout:drtp`)."""
    monkeypatch.setenv(plugins.PLUGIN_SELECTION_ENV, "none")
    section = PAGE.read_text().split("## A direct-feedback rule in a few lines")[1].split("\n## ")[0]
    names = set(re.findall(r'register\(\s*"([^"]+)"', section))
    assert names == {"my_drtp"}
    assert "drtp" in plugins.build_registry().names("rule")
    assert not names & set(plugins.build_registry().names("rule"))
