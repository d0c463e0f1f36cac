"""Settings for the minimal Django project: no database, no sessions, JSON views only."""

import os

SECRET_KEY = os.environ.get("DJANGO_SECRET_KEY", "rwsgi-example-not-secret")
DEBUG = False
ALLOWED_HOSTS = ["*"]
ROOT_URLCONF = "djangoapp.urls"
INSTALLED_APPS = []
MIDDLEWARE = ["django.middleware.common.CommonMiddleware"]
DATABASES = {}
USE_TZ = True
WSGI_APPLICATION = "djangoapp.wsgi.application"
