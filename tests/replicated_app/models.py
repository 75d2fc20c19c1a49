from django.db import models

from apps.core.replicated import ReplicatedModel


class Note(ReplicatedModel):
    title = models.CharField(max_length=200)
    body = models.TextField(default="")
    pinned = models.BooleanField(default=False)
    stars = models.IntegerField(default=0)
    created = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return self.title


class Comment(ReplicatedModel):
    note = models.ForeignKey(
        Note, on_delete=models.CASCADE, db_constraint=False, related_name="comments"
    )
    text = models.TextField()
