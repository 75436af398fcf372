"""The application layer: orders the steps of a request over the components."""

from handoffd.pipeline.chat import ChatPipeline
from handoffd.pipeline.local import LocalModel

__all__ = ["ChatPipeline", "LocalModel"]
