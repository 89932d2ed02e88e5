"""image2model core: settings, domain model, errors, generators, storage and the HTTP client."""
