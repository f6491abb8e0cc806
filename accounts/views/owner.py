"""The owner's pages (behind sign-in) and the home page."""

from django.shortcuts import render


def home(request):
    return render(request, "accounts/home.html")
