"""Runs the Payment Session document's Django webhook view, as written, behind
a real HTTP server, for the gateway's tests.

    python3 django_webhook_receiver.py VIEW_FILE

VIEW_FILE holds the document's view function (its placeholders replaced by a
test merchant's key and secret). The server listens on 127.0.0.1 at a free
port, prints {"port": N} once ready, then one JSON line per webhook received:
the status the view answered, and the event's type and id.
"""
import json
import sys
from wsgiref.simple_server import WSGIRequestHandler, make_server

import django
from django.conf import settings

settings.configure(
    DEBUG=False,
    ALLOWED_HOSTS=['127.0.0.1', 'localhost'],
    ROOT_URLCONF=__name__,
    MIDDLEWARE=[],
    SECRET_KEY='django-test-harness-only',
)
django.setup()

from django.core.wsgi import get_wsgi_application  # noqa: E402
from django.urls import path  # noqa: E402

with open(sys.argv[1], encoding='utf-8') as source:
    namespace = {}
    exec(compile(source.read(), 'payment_session_document_view.py', 'exec'), namespace)
document_view = namespace['paycrypt_webhook']


def recording_view(request):
    response = document_view(request)
    try:
        event = json.loads(request.body.decode() or '{}')
    except ValueError:
        event = {}
    print(json.dumps({'status': response.status_code, 'type': event.get('type'), 'id': event.get('id')}), flush=True)
    return response


urlpatterns = [path('api/paycrypt/webhook', recording_view)]


class QuietHandler(WSGIRequestHandler):
    def log_message(self, format, *args):
        pass


server = make_server('127.0.0.1', 0, get_wsgi_application(), handler_class=QuietHandler)
print(json.dumps({'port': server.server_port}), flush=True)
server.serve_forever()
