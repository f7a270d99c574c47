"""The losses a spec can choose (train.loss), against values computed by hand."""

import math

import pytest
import torch

from altlearn.optim.losses import BCE, bce


def test_bce_component_builds_the_bce_function():
    assert BCE.build(BCE.Params()) is bce


def test_bce_sums_over_classes_and_averages_over_the_batch():
    scores = torch.tensor([[0.0, 2.0], [1.0, -1.0]])
    labels = torch.tensor([1, 0])

    def softplus(x):
        return math.log1p(math.exp(x))

    # -log sigmoid(s) = softplus(-s) for the true class, -log(1 - sigmoid(s)) = softplus(s) otherwise
    by_hand = (softplus(0.0) + softplus(-2.0) + softplus(-1.0) + softplus(-1.0)) / 2
    assert bce(scores, labels).item() == pytest.approx(by_hand)


def test_bce_output_error_is_sigmoid_minus_onehot():
    # What DFA and IFA project to the hidden layers: dLoss/dscores.
    scores = torch.randn(4, 3, requires_grad=True)
    labels = torch.tensor([0, 2, 1, 2])
    bce(scores, labels).backward()
    onehot = torch.nn.functional.one_hot(labels, 3).float()
    assert torch.allclose(scores.grad, (torch.sigmoid(scores.detach()) - onehot) / 4, atol=1e-7)


def test_bce_stays_finite_for_large_scores():
    scores = torch.tensor([[200.0, -200.0]])
    assert torch.isfinite(bce(scores, torch.tensor([1])))
