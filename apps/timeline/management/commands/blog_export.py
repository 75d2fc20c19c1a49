"""``manage.py blog_export <dir>``: write the public blog as static files (the same pages and
feed the node serves at ``/blog/``), for any web host."""

from __future__ import annotations

from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from django.core.management.base import BaseCommand, CommandError, CommandParser

from apps.core.blobs import BlobError
from apps.timeline import blog, blog_covers, selectors
from apps.timeline.blog_views import blog_identity, configured_base_url


class Command(BaseCommand):
    help = "Write the public blog (index.html, one folder per post, atom.xml) into a folder."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("directory", type=Path, help="The folder to write into.")
        parser.add_argument(
            "--base-url",
            help="The blog's address once published, e.g. https://example.org/blog/ "
            "(default: https://SEREUS_DOMAIN/blog/).",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        directory: Path = options["directory"]
        base_url = options["base_url"] or configured_base_url()
        if not base_url:
            raise CommandError(
                "Give the blog's address with --base-url (for example "
                "https://example.org/blog/), or set SEREUS_DOMAIN: the feed needs full links."
            )
        parts = urlsplit(base_url)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise CommandError(
                f"{base_url} is not a web address: give one such as https://example.org/blog/."
            )
        if not base_url.endswith("/"):
            base_url += "/"
        posts = selectors.public_posts()
        covers = {}
        for post in posts:
            found = blog_covers.cover_of(post) if blog.has_page(post) else None
            if found is not None:
                try:
                    covers[post.id] = (found.name, blog_covers.cover_bytes(found))
                except BlobError:
                    self.stderr.write(f"The cover picture of {post.slug} does not open: left out.")
        try:
            written = blog.blog_export(
                directory, posts, base_url=base_url, covers=covers, **blog_identity()
            )
        except OSError as error:
            reason = error.strerror or "it could not be written"
            raise CommandError(
                f"Could not write the blog into {directory}: {reason.lower()}."
            ) from error
        self.stdout.write(f"Wrote {len(written)} files for the blog into {directory}.")
