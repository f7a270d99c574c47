"""A third-party optimizer: sign SGD (each weight moves by lr in the direction opposite its gradient's
sign), written against altlearn.api only."""

import torch
from pydantic import Field

from altlearn.api import Optimizer, Params


class _SignSGD(torch.optim.Optimizer):
    def __init__(self, params, lr: float) -> None:
        super().__init__(params, {"lr": lr})

    @torch.no_grad()
    def step(self, closure=None):
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is not None:
                    p.add_(p.grad.sign(), alpha=-group["lr"])


class SignSGD(Optimizer):
    class Params(Params):
        lr: float = Field(0.001, gt=0.0, le=1.0, description="the step every weight takes")

    @staticmethod
    def build(params, parameters):
        return _SignSGD(parameters, lr=params.lr)
