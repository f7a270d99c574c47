"""Energy-based learning rules: predictive coding (``pc``) and equilibrium propagation (``ep``).

Both relax a set of state tensors (one per layer) by minimising an energy, then give each layer
the local derivative of that energy with respect to its weights. :mod:`.chain` is what they share
(which networks they accept, the layer blocks, the energy metrics).
"""
