"""One module per CLI subcommand (see :mod:`cnnzoo.cli`)."""
