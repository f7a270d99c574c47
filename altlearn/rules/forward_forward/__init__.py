"""Forward-Forward (``ff``): :mod:`~altlearn.rules.forward_forward.rule` trains,
:mod:`~altlearn.rules.forward_forward.model` holds the blocks and the self-contained classifier that
is logged as the trained model, :mod:`~altlearn.rules.forward_forward.params` the options."""
