"""A minimal Django project: `rwsgi --socket 127.0.0.1:3031 --chdir examples --module djangoapp.wsgi:application`."""
