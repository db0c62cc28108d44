from django.conf import settings
from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import include, path
from django.views.i18n import set_language

from chat import console_views, views

console_patterns = (
    [
        path("", console_views.console_index, name="index"),
        path("login/", console_views.ConsoleLoginView.as_view(), name="login"),
        path("logout/", auth_views.LogoutView.as_view(), name="logout"),
        path("uploads/", console_views.console_upload, name="upload"),
    ],
    "console",
)

urlpatterns = [
    path("", views.demo_page, name="demo"),
    path("console/", include(console_patterns)),
    path("admin/", admin.site.urls),
    path("help/", include("knowledge.urls")),
    path("widget/uploads/", views.widget_upload, name="widget-upload"),
    path("attachments/<uuid:public_id>/", views.attachment_download, name="attachment"),
    path("i18n/setlang/", set_language, name="set_language"),
    path("healthz", views.healthz, name="healthz"),
    path("readyz", views.readyz, name="readyz"),
]

if settings.DEBUG:
    from django.contrib.staticfiles.urls import staticfiles_urlpatterns

    urlpatterns += staticfiles_urlpatterns()
