"""API answers written out by one serializer of each class, made once.

A DRF serializer deep-copies its declared fields every time one is made (``Serializer.fields``):
for a message, with its nested reactions and attachments, that cost more than reading the message
(0.3-0.5 ms). Writing an object out (``to_representation``) keeps nothing in the serializer or its
fields, so the one made once writes every answer: the same fields, so the same output. Only for
output serializers without context (no request, no hyperlinks).
"""

from __future__ import annotations

from collections.abc import Iterable
from functools import cache
from typing import Any

from rest_framework import serializers


@cache
def _writer(output: type[serializers.Serializer]) -> serializers.Serializer:
    return output()


def represent(output: type[serializers.Serializer], instance: Any) -> dict:
    """``output(instance).data``, without making the serializer again."""
    return _writer(output).to_representation(instance)


def represent_many(output: type[serializers.Serializer], instances: Iterable[Any]) -> list[dict]:
    """``output(instances, many=True).data``, without making the serializer again."""
    write = _writer(output).to_representation
    return [write(instance) for instance in instances]
