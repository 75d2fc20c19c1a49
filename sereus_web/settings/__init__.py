"""Settings modules: ``dev`` (the default: a node on this machine over HTTP on 127.0.0.1),
``production`` (a node on its owner's domain behind HTTPS), ``test`` (the test suite)."""
