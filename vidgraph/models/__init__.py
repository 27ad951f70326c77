"""Model backends (local transformers, OpenAI-compatible HTTP), profiles and tiny test models."""

from .backends import (AudioPart, ChatMessage, ChatModel, GenerationParams, GenerationResult, ImagePart,
                       ModelNotAvailableError, OpenAIChatModel, Request, TextPart, TransformersChatModel,
                       system, user)
from .profiles import (ModelSpec, Profile, UnknownProfileError, default_profile_name, load_profile,
                       profile_names, resolve_model)

__all__ = [
    "AudioPart", "ChatMessage", "ChatModel", "ChatModelResource", "GenerationParams", "GenerationResult",
    "ImagePart", "ModelNotAvailableError", "ModelSpec", "OpenAIChatModel", "Profile", "Request", "TextPart",
    "TransformersChatModel", "UnknownProfileError", "default_profile_name", "ensure_tiny_models",
    "load_profile", "profile_names", "resolve_model", "system", "user",
]


def __getattr__(name):  # lazy: keep `import vidgraph.models` free of dagster/transformers imports
    if name == "ChatModelResource":
        from .resources import ChatModelResource

        return ChatModelResource
    if name == "ensure_tiny_models":
        from .tiny import ensure_tiny_models

        return ensure_tiny_models
    raise AttributeError(name)
