"""App configuration for the public website and the PWA files."""

from django.apps import AppConfig


class WebsiteConfig(AppConfig):
    name = "apps.website"
    label = "website"
    verbose_name = "Website"
