from django.urls import path

from accounts.views import owner

urlpatterns = [
    path("", owner.home, name="home"),
]
