"""Prompt and media processing for Gemma 4 unified: chat format, images, audio, video, output parsing."""

from .audio import load_audio, resample
from .errors import (
    ChatFormatError,
    CorruptMediaError,
    MediaError,
    MediaTooLargeError,
    MediaTooLongError,
    ProcessingError,
    UnsupportedMediaError,
)
from .output_parser import OutputParser, ParsedOutput, parse_tool_calls, render_tool_call
from .processor import Processor, ProcessorConfig, order_content
from .tokenizer import SpecialTokens, StreamingDetokenizer, Tokenizer

__all__ = [
    "ChatFormatError",
    "CorruptMediaError",
    "MediaError",
    "MediaTooLargeError",
    "MediaTooLongError",
    "OutputParser",
    "ParsedOutput",
    "ProcessingError",
    "Processor",
    "ProcessorConfig",
    "SpecialTokens",
    "StreamingDetokenizer",
    "Tokenizer",
    "UnsupportedMediaError",
    "load_audio",
    "order_content",
    "parse_tool_calls",
    "render_tool_call",
    "resample",
]
