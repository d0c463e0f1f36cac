//! rwsgi: a uwsgi-protocol application server for Python WSGI apps.
pub mod protocol;
