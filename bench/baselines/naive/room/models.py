import uuid

from django.db import models


class Visitor(models.Model):
    public_id = models.UUIDField(default=uuid.uuid4, unique=True)
    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return str(self.public_id)


class Message(models.Model):
    visitor = models.ForeignKey(Visitor, on_delete=models.CASCADE)
    sender = models.CharField(max_length=10)
    client_id = models.CharField(max_length=64)
    text = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return self.client_id
