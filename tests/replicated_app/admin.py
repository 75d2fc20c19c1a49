from apps.core.threads.admin_site import thread_data_site
from tests.replicated_app.models import Comment, Note

thread_data_site.register(Note)
thread_data_site.register(Comment)
