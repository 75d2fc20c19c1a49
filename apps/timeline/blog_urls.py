"""URLs of the public blog; the pages link to each other relatively, as in the static export."""

from django.urls import path, re_path

from apps.timeline import blog_views

app_name = "blog"

urlpatterns = [
    path("blog/", blog_views.index, name="index"),
    path("blog/atom.xml", blog_views.feed, name="feed"),
    path("blog/style.css", blog_views.stylesheet, name="stylesheet"),
    path("blog/<slug:slug>/", blog_views.post, name="post"),
    re_path(
        r"^blog/(?P<slug>[A-Za-z0-9_-]+)/(?P<name>cover\.(?:png|jpg|gif|webp))$",
        blog_views.cover,
        name="cover",
    ),
]
