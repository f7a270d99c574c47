"""Test plugin registering a data set (``blobs``) and a layer (``scale``)."""
