"""The local inference engine: ONNX models on the device with plain onnxruntime.

Public API: :class:`LocalEngine` (load, render_prompt, encode, count_prompt_tokens, generate,
score_next_token, stats, aclose), :class:`GenerationStream` (what ``generate`` returns),
:class:`GenerationResult`, :class:`EngineStats` and :class:`EngineLimits`.
"""

from handoffd.engine.limits import EngineLimits
from handoffd.engine.local import EngineStats, LocalEngine
from handoffd.engine.request import GenerationResult
from handoffd.engine.stream import GenerationStream

__all__ = ["EngineLimits", "EngineStats", "GenerationResult", "GenerationStream", "LocalEngine"]
