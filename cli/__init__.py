"""The `image2model` command: one package above the service and its clients, so that none of them imports
another to start. `main.py` holds the table of subcommands; `serve.py` runs the whole embedded service;
`service.py` the API and worker processes."""
