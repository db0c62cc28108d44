from django.urls import path

from . import views

app_name = "help"

urlpatterns = [
    path("api/<str:widget_key>/suggest", views.suggest, name="suggest"),
    path("<str:widget_key>/", views.help_index, name="index"),
    path("<str:widget_key>/search/", views.help_search, name="search"),
    path("<str:widget_key>/categories/<int:pk>/", views.help_category, name="category"),
    path("<str:widget_key>/articles/<int:pk>/", views.help_article, name="article"),
]
