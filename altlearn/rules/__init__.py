"""Built-in learning rules, one module each. :mod:`altlearn.rules.base` holds the rule contract."""
