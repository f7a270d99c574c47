"""The feedback-alignment family: the error reaches hidden layers through fixed random matrices.

:mod:`~altlearn.rules.feedback.base` holds what the three rules share (options, feedback draws);
:mod:`~altlearn.rules.feedback.direct` the public base of rules that send one random projection
of a signal to every feedback point (dfa, and DRTP-like plugins);
:mod:`~altlearn.rules.feedback.fa` (layer by layer), :mod:`~altlearn.rules.feedback.dfa` (output
error straight to every hidden block) and :mod:`~altlearn.rules.feedback.ifa` (to the first hidden
block, then upwards through the forward weights) are the rules; :mod:`~altlearn.rules.feedback.drtp`
sends the one-hot target instead of the error (DFA's machinery with another signal).
"""
