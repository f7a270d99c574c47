"""Built-in learning rules. :mod:`altlearn.rules.base` holds the rule contract every rule implements.

- :mod:`~altlearn.rules.backprop`: ``bp``, the exact gradient every other rule is compared with;
- :mod:`~altlearn.rules.feedback`: the feedback-alignment family ``fa``, ``dfa`` and ``ifa``;
- :mod:`~altlearn.rules.forward_forward`: ``ff``, a local objective per layer;
- :mod:`~altlearn.rules.local`: ``pepita``, ``localloss`` and ``fwdgrad``, layers trained from
  signals available at the layer (``drtp`` is in the feedback family);
- :mod:`~altlearn.rules.goup`: ``goup``, a noisy update around any of the gradient rules above.
"""
