"""OpenAI-compatible HTTP transport over the same pipeline as gRPC (starlette + uvicorn)."""
