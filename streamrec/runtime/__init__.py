"""What runs in production: the worker, its model process, its HTTP endpoint, its settings. Nothing here
imports streamrec.tools."""
