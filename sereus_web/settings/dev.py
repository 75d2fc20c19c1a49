"""A node on this machine, served over plain HTTP on 127.0.0.1: what `make run` starts.

DEBUG stays off unless SEREUS_DEBUG=on: a node is a long-running personal server, and debug pages
would show its settings to anything that reaches the port.
"""

from .base import *  # noqa: F403
