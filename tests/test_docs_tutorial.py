"""docs/writing-plugins.md stays true: the tutorial's package, written out from the page, passes its
own tests, registers its rule, and its spec validates and trains (on digits instead of MNIST)."""

from __future__ import annotations

import importlib
import re
import sys
from pathlib import Path

import pytest
import yaml

from altlearn import plugins
from altlearn.spec import validate
from altlearn.train import Trainer

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
