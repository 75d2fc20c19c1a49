"""API answers written out by one serializer of each class per thread, made once.

A DRF serializer deep-copies its declared fields every time one is made (``Serializer.fields``):
for a message, with its nested reactions and attachments, that cost more than reading the message
(0.3-0.5 ms). Writing an object out (``to_representation``) keeps nothing in the serializer or its
fields, so the one made once writes every answer: the same fields, so the same output. Only for
output serializers without context (no request, no hyperlinks).

A date-time field asks for the current time zone (the reader's, ``apps.core.timezones``) for each
value it writes, an asgiref ``Local`` read of 5-8 us: 50 messages a page made it a quarter of the
page. Each thread has its own serializers, so an answer's zone is looked up once and given to its
date-time fields (the ones not declared with a zone of their own) before they write.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Iterator
from typing import Any

from rest_framework import serializers

_made = threading.local()


class _Writer:
    def __init__(self, output: type[serializers.Serializer]) -> None:
        self.serializer = output()
        # Fields declared without a zone of their own: DRF asks the current zone for them.
        self.zoned = [f for f in _date_times(self.serializer) if "timezone" not in vars(f)]

    def write(self, instances: Iterable[Any]) -> list[dict]:
        if self.zoned:
            zone = self.zoned[0].default_timezone()  # DRF's own look-up, once
            for field in self.zoned:
                field.timezone = zone
        try:
            return [self.serializer.to_representation(instance) for instance in instances]
        finally:
            for field in self.zoned:
                vars(field).pop("timezone", None)  # (an answer written inside one took it)


def _date_times(serializer: serializers.Serializer) -> Iterator[serializers.DateTimeField]:
    for field in serializer.fields.values():
        if isinstance(field, serializers.ListSerializer):
            field = field.child
        if isinstance(field, serializers.Serializer):
            yield from _date_times(field)
        elif isinstance(field, serializers.DateTimeField):
            yield field


def _writer(output: type[serializers.Serializer]) -> _Writer:
    made = getattr(_made, "writers", None)
    if made is None:
        made = _made.writers = {}
    writer = made.get(output)
    if writer is None:
        writer = made[output] = _Writer(output)
    return writer


def represent(output: type[serializers.Serializer], instance: Any) -> dict:
    """``output(instance).data``, without making the serializer again."""
    return _writer(output).write([instance])[0]


def represent_many(output: type[serializers.Serializer], instances: Iterable[Any]) -> list[dict]:
    """``output(instances, many=True).data``, without making the serializer again."""
    return _writer(output).write(instances)
