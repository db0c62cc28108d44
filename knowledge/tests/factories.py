import factory

from accounts.tests.factories import WorkspaceFactory
from knowledge.models import Article, ArticleStatus, Category


class CategoryFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Category

    workspace = factory.SubFactory(WorkspaceFactory)
    name = factory.Sequence(lambda n: f"Category {n}")


class ArticleFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Article

    workspace = factory.SubFactory(WorkspaceFactory)
    title = factory.Sequence(lambda n: f"Article {n}")
    body = "Some text."
    language = "en"
    status = ArticleStatus.PUBLISHED
