"""Sub-commands of the streamrec CLI, one module each."""
