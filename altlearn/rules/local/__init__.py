"""Rules that train each layer from signals available at the layer, without a backward pass.

:mod:`~altlearn.rules.local.pepita` (two forward passes, the error added to the input),
:mod:`~altlearn.rules.local.fwdgrad` (forward-mode directional derivatives) and
:mod:`~altlearn.rules.local.localloss` (a loss per hidden block with auxiliary heads,
:mod:`~altlearn.rules.local.heads`); :mod:`~altlearn.rules.local.chain` says which networks they
train. DRTP, a DFA variant, is :mod:`altlearn.rules.feedback.drtp`.
"""
