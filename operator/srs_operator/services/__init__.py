"""Services: reconcile logic between the handlers (kopf) and the clients (I/O)."""
