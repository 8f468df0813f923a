"""streamrec: a streaming recommender. runtime/ is what a worker runs; tools/ is the command line around it."""
