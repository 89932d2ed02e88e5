"""image2model notebook_ext (see its issue)."""
