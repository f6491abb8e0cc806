"""The agent's URLs plus ``/bench/bare.json``: a Django view returning a constant
JSON body, the baseline the token endpoints are compared with."""

from django.http import HttpResponse
from django.urls import path

from tokenagent.urls import urlpatterns as agent_urlpatterns

_BODY = b'{"token": "IGAAbenchConstantBody0000000000000000000000000000"}'


def bare(request):
    return HttpResponse(_BODY, content_type="application/json")


urlpatterns = [path("bench/bare.json", bare), *agent_urlpatterns]
