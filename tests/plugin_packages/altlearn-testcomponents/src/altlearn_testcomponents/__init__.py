"""Test plugin registering a data set (``blobs``), a layer (``scale``) and an optimizer (``signsgd``)."""
