"""image2model bot (see its issue)."""
