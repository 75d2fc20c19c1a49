"""The p2p side of the node: the ``sereus-p2p`` worker that will run the libp2p host."""
