"""gRPC transport: thin servicers that convert, delegate to the pipeline and map errors."""
