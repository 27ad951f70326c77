"""Real speech of a known sentence, offline: eSpeak NG from the ``espeakng-loader`` wheel.

The wheel ships ``libespeak-ng`` and its voice data but no Python API, so the library is called
through ctypes (``espeak_Initialize`` in synchronous mode, a synth callback that collects the
16-bit samples). eSpeak NG is GPL-3; the wheel is a dependency, nothing of it is copied here.
The library keeps global state, so calls are serialised with a lock.
"""

from __future__ import annotations

import ctypes
import threading

import numpy as np

_LOCK = threading.Lock()
_STATE: dict = {}
_AUDIO_OUTPUT_SYNCHRONOUS = 2
_ESPEAK_RATE = 1
_CALLBACK = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int, ctypes.c_void_p)


def _lib():
    if "lib" not in _STATE:
        import espeakng_loader

        lib = ctypes.CDLL(espeakng_loader.get_library_path())
        lib.espeak_Initialize.restype = ctypes.c_int
        sr = lib.espeak_Initialize(_AUDIO_OUTPUT_SYNCHRONOUS, 0, espeakng_loader.get_data_path().encode(), 0)
        if sr <= 0:
            raise RuntimeError(f"espeak_Initialize failed ({sr})")
        chunks: list[np.ndarray] = []

        def collect(wav, n, _events):
            if n > 0:
                chunks.append(np.ctypeslib.as_array(wav, shape=(n,)).copy())
            return 0

        cb = _CALLBACK(collect)
        lib.espeak_SetSynthCallback(cb)
        _STATE.update(lib=lib, rate=sr, chunks=chunks, cb=cb)  # keep the callback alive
    return _STATE["lib"]


def speak(text: str, voice: str = "en-us", words_per_minute: int = 150) -> tuple[np.ndarray, int]:
    """``text`` spoken by eSpeak NG: (mono float32 samples in [-1, 1], sample rate)."""
    with _LOCK:
        lib = _lib()
        chunks = _STATE["chunks"]
        chunks.clear()
        if lib.espeak_SetVoiceByName(voice.encode()) != 0:
            raise ValueError(f"eSpeak NG has no voice {voice!r}")
        lib.espeak_SetParameter(_ESPEAK_RATE, int(words_per_minute), 0)
        data = text.encode("utf-8") + b"\0"
        rc = lib.espeak_Synth(ctypes.c_char_p(data), ctypes.c_size_t(len(data)), ctypes.c_uint(0), ctypes.c_int(0),
                              ctypes.c_uint(0), ctypes.c_uint(0), None, None)
        if rc != 0:
            raise RuntimeError(f"espeak_Synth failed ({rc})")
        lib.espeak_Synchronize()
        samples = np.concatenate(chunks).astype(np.float32) / 32768.0 if chunks else np.zeros(0, np.float32)
        return samples, int(_STATE["rate"])


def espeak_version() -> str:
    import importlib.metadata

    return "espeakng-loader " + importlib.metadata.version("espeakng-loader")
