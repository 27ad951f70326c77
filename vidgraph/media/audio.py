"""A clip's sound as 16 kHz mono float32, and the signal features the audio timeline uses.

Decoding streams packets through PyAV and resamples every decoded frame to mono ``flt`` at
16 kHz with ``av.AudioResampler`` *before* any ``to_ndarray``: PyAV crashes (segfault) in
``AudioFrame.to_ndarray`` on planar audio with 8 or more channels, and a mono frame is also
the smallest copy. Memory is the 16 kHz mono result (about 38 MB for a 10-minute take) plus one
decoded frame, whatever the source's rate and channel count.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

SAMPLE_RATE = 16000
FLOOR_DBFS = -120.0  # reported for digital silence instead of -inf


class AudioDecodeError(RuntimeError):
    """The file has an audio stream but it could not be decoded (a per-clip error, not a crash)."""


@dataclass
class ClipAudio:
    samples: np.ndarray  # float32, mono, SAMPLE_RATE Hz, the clip's span only
    sample_rate: int
    has_audio: bool
    source_rate: int = 0
    source_channels: int = 0
    codec: str = ""
    decode_errors: int = 0  # packets that failed to decode (the rest were kept)
    error: str = ""

    @property
    def duration_s(self) -> float:
        return len(self.samples) / self.sample_rate


def load_clip_audio(path: str, start_s: float = 0.0, end_s: float | None = None,
                    sample_rate: int = SAMPLE_RATE) -> ClipAudio:
    """Decode ``[start_s, end_s)`` of the file's first audio stream to mono float32 at ``sample_rate``.

    No audio stream: ``has_audio=False`` and no samples. An audio stream whose packets fail to
    decode: the samples that decoded, ``decode_errors`` and ``error`` set; if nothing decoded,
    :class:`AudioDecodeError`. The result is padded with zeros (or cut) to the span's length, so
    clip times and sample indices agree.
    """
    import av

    with av.open(path) as container:
        streams = [s for s in container.streams if s.type == "audio"]
        if not streams:
            return ClipAudio(np.zeros(0, np.float32), sample_rate, False)
        stream = streams[0]
        cc = stream.codec_context
        info = dict(source_rate=int(cc.sample_rate or 0), source_channels=int(getattr(cc, "channels", 0) or 0),
                    codec=cc.name or "")
        if end_s is None:
            end_s = _stream_duration(container, stream)
        want = max(0, int(round((end_s - start_s) * sample_rate)))
        out = np.zeros(want, np.float32)
        filled = 0  # samples written so far (end of the furthest write)
        resampler = av.AudioResampler(format="flt", layout="mono", rate=sample_rate)
        if start_s > 0:
            container.seek(int(start_s / stream.time_base), stream=stream, backward=True, any_frame=False)
        errors, first_error, decoded_any = 0, "", False
        pos = None  # the file-clock position (in samples) of the next resampled sample
        done = False
        for packet in container.demux(stream):
            if done:
                break
            try:
                frames = packet.decode()
            except (av.error.FFmpegError, ValueError) as e:  # noqa: PERF203 - one bad packet, not the clip
                errors += 1
                first_error = first_error or f"{type(e).__name__}: {e}"
                continue
            for frame in frames:
                if pos is None:  # anchor on the first frame's timestamp (after a seek, mid-file)
                    pos = float(frame.pts * frame.time_base) * sample_rate if frame.pts is not None else 0.0
                for rf in resampler.resample(frame):
                    pos, filled, done = _place(rf, pos, start_s, sample_rate, out, want, filled)
                    decoded_any = True
                if done:
                    break
        if not done:
            for rf in resampler.resample(None):
                pos, filled, done = _place(rf, pos or 0.0, start_s, sample_rate, out, want, filled)
                decoded_any = True
    if not decoded_any and errors:
        raise AudioDecodeError(f"no audio decoded: {errors} packet(s) failed ({first_error})")
    err = f"{errors} audio packet(s) failed to decode ({first_error})" if errors else ""
    return ClipAudio(out, sample_rate, True, decode_errors=errors, error=err, **info)


def _place(rf, pos: float, start_s: float, sr: int, out: np.ndarray, want: int, filled: int):
    """Copy one resampled mono frame into ``out`` at its clip position; returns (pos, filled, done)."""
    data = rf.to_ndarray().reshape(-1)  # mono packed flt: safe to convert
    begin = int(round(pos - start_s * sr))
    pos += len(data)
    a, b = max(0, begin), min(want, begin + len(data))
    if b > a:
        out[a:b] = data[a - begin:b - begin]
        filled = max(filled, b)
    return pos, filled, begin + len(data) >= want


def _stream_duration(container, stream) -> float:
    if stream.duration is not None and stream.time_base is not None:
        return float(stream.duration * stream.time_base)
    if container.duration is not None:
        return container.duration / 1_000_000
    raise AudioDecodeError("the audio stream has no duration; give end_s")


# --------------------------------------------------------------------------------------------
# Signal features on a fixed frame grid
# --------------------------------------------------------------------------------------------


def frame_dbfs(x: np.ndarray, sr: int, hop_s: float) -> np.ndarray:
    """RMS level in dBFS of each ``hop_s`` frame (a full-scale sine is -3 dBFS)."""
    hop = int(round(hop_s * sr))
    n = int(np.ceil(len(x) / hop)) if len(x) else 0
    pad = np.zeros(n * hop, np.float32)
    pad[: len(x)] = x
    rms = np.sqrt(np.mean(pad.reshape(n, hop).astype(np.float64) ** 2, axis=1))
    return np.maximum(20 * np.log10(np.maximum(rms, 1e-12)), FLOOR_DBFS)


def level_dbfs(x: np.ndarray) -> float:
    if not len(x):
        return FLOOR_DBFS
    rms = float(np.sqrt(np.mean(np.asarray(x, np.float64) ** 2)))
    return max(20 * np.log10(max(rms, 1e-12)), FLOOR_DBFS)


def _to_grid(values: np.ndarray, src_hop_s: float, n: int, hop_s: float, reduce=np.median) -> np.ndarray:
    out = np.zeros(n, np.float64)
    per = hop_s / src_hop_s
    for i in range(n):
        a, b = int(i * per), max(int(i * per) + 1, int((i + 1) * per))
        seg = values[a:b]
        out[i] = reduce(seg) if len(seg) else (values[-1] if len(values) else 0.0)
    return out


def music_features_blocked(x: np.ndarray, sr: int, hop_s: float, n: int, context_s: float = 2.5,
                           block_s: float = 60.0) -> dict[str, np.ndarray]:
    """:func:`music_features` computed ``block_s`` at a time with 3 s of context on each side, so a
    long take's spectrogram never exists whole (memory stays at one block's worth)."""
    hop = int(round(hop_s * sr))
    per_block, ctx = max(1, int(round(block_s / hop_s))), int(round(3.0 / hop_s))
    if n <= per_block + 2 * ctx:
        return music_features(x, sr, hop_s, n, context_s)
    out = {k: np.zeros(n) for k in ("tonality", "pulse", "modulation")}
    for i0 in range(0, n, per_block):
        i1 = min(n, i0 + per_block)
        f0, f1 = max(0, i0 - ctx), min(n, i1 + ctx)
        part = music_features(x[f0 * hop: f1 * hop], sr, hop_s, f1 - f0, context_s)
        for k in out:
            out[k][i0:i1] = part[k][i0 - f0: i1 - f0]
    return out


def music_features(x: np.ndarray, sr: int, hop_s: float, n: int, context_s: float = 2.5) -> dict[str, np.ndarray]:
    """Per-frame evidence of music from the signal alone (librosa), on ``n`` frames of ``hop_s``.

    * ``tonality``: 1 - spectral flatness of the *whitened* spectrum (the power spectrum over its
      own moving average across ~0.5 kHz), median over the frame: sharp spectral peaks (a tone, a
      chord, a pitched drum, a voice) give about 1; noise of any colour (white hiss, low rumble)
      is smooth, so its whitened spectrum is flat, about 0.5.
    * ``pulse``: how periodic the onset-strength envelope is in a ``context_s`` window centred
      on the frame: the peak of its autocorrelation (normalised by lag 0) at beat periods of
      0.25-1 s (60-240 BPM, so a kick-snare bar counts). A beat repeats, noise does not; it takes two beats in the window,
      so the evidence does not leak far past the end of a beat.
    * ``modulation``: spread of the level (dB, 10 ms steps) over the 0.5 s before and the 0.5 s
      after the frame, the smaller of the two, /6 dB, capped at 1: drums come and go, steady
      noise does not, and one steady side marks the frame as the edge of a beat. Pulse counts only where the sound
      itself is modulated, so a beat's periodicity does not spill onto the noise next to it.
    """
    import librosa

    stft_hop = int(round(sr * 0.01))
    step = stft_hop / sr
    if len(x) < 2048:
        z = np.zeros(n)
        return {"tonality": z, "pulse": z, "modulation": z}
    S = power_spectrogram(np.asarray(x, np.float32), 1024, stft_hop)
    from scipy.ndimage import uniform_filter1d

    smooth = uniform_filter1d(S, size=31, axis=0, mode="nearest")
    flat = librosa.feature.spectral_flatness(S=S / np.maximum(smooth, 1e-10), power=1.0)[0]
    del smooth
    # Square root: a loud snare must not drown the kicks between its hits.
    onset = np.sqrt(librosa.onset.onset_strength(S=librosa.power_to_db(S), sr=sr, hop_length=stft_hop))
    tonality = 1.0 - _to_grid(flat, step, n, hop_s)
    level = 10 * np.log10(np.maximum(S.mean(axis=0), 1e-10))
    level = np.maximum(level, level.max() - 60)  # digital silence between hits: not -100 dB
    mod_half = int(round(0.5 / step))
    half = int(round(context_s / 2 / step))
    lo, hi = int(round(0.25 / step)), int(round(1.0 / step))
    pulse = np.zeros(n)
    modulation = np.zeros(n)
    for i in range(n):
        c = int(round((i + 0.5) * hop_s / step))
        sides = [level[max(0, c - mod_half): c + 1], level[c: c + mod_half]]
        spread = min(float(v.std()) if len(v) > 1 else 0.0 for v in sides)
        modulation[i] = min(1.0, spread / 6.0)
        seg = onset[max(0, c - half): c + half]
        if len(seg) <= hi + 1:
            continue
        s = seg - seg.mean()
        ac = np.correlate(s, s, mode="full")[len(s) - 1:]
        if ac[0] > 1e-9:
            pulse[i] = float(np.clip(ac[lo:hi + 1].max() / ac[0], 0, 1))
    return {"tonality": tonality, "pulse": pulse, "modulation": modulation}


def power_spectrogram(x: np.ndarray, n_fft: int, hop: int, block: int = 4096) -> np.ndarray:
    """|STFT|^2 (freq x frames, float32), centred Hann frames as librosa.stft, with numpy's FFT in
    blocks of ``block`` frames: librosa's stft pays seconds of numba compilation on its first call
    in every process, and one FFT over a 10-minute take would hold gigabytes of intermediates."""
    pad = np.pad(x, (n_fft // 2, n_fft // 2), mode="reflect" if len(x) > n_fft // 2 else "constant")
    n = 1 + (len(pad) - n_fft) // hop
    frames = np.lib.stride_tricks.as_strided(pad, (n, n_fft), (pad.strides[0] * hop, pad.strides[0]), writeable=False)
    window = np.hanning(n_fft + 1)[:-1].astype(np.float32)
    out = np.empty((n_fft // 2 + 1, n), np.float32)
    for a in range(0, n, block):
        spec = np.fft.rfft(frames[a:a + block] * window, axis=1)
        out[:, a:a + block] = (spec.real ** 2 + spec.imag ** 2).T
    return out


def estimate_tempo(x: np.ndarray, sr: int) -> float | None:
    """Tempo in BPM (librosa's tempogram estimate on the onset envelope), or None when the onset envelope is flat."""
    import librosa

    if len(x) < sr * 2:
        return None
    if len(x) > sr * 60:  # the middle minute is enough to time a beat, and bounds the memory
        mid = len(x) // 2
        x = x[mid - sr * 30: mid + sr * 30]
    hop = int(round(sr * 0.01))
    S = power_spectrogram(np.asarray(x, np.float32), 1024, hop)
    onset = librosa.onset.onset_strength(S=librosa.power_to_db(S), sr=sr, hop_length=hop)
    if onset.std() < 0.5:  # a steady tone or steady noise: no beat to time (librosa would still answer)
        return None
    tempo = float(np.atleast_1d(librosa.feature.tempo(onset_envelope=onset, sr=sr, hop_length=hop))[0])
    return round(tempo, 1) if tempo > 0 else None
