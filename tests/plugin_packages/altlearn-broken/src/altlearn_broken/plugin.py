"""Would register the rule ``brokenrule``, but fails on import, like a plugin missing a dependency."""

raise ImportError("altlearn-broken needs the package 'not-installed-anywhere'")
