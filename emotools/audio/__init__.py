"""Decoding any audio file to float32 mono at a rate, and writing audio back.

:data:`SAMPLE_RATE` (16 kHz) is the package's one working rate.

One home for audio I/O: WAV, FLAC, Ogg Vorbis and Ogg Opus go through
soundfile (libsndfile); AAC in ``.m4a`` / ``.mp4`` (VoxCeleb2's format) goes through PyAV, whose
wheels bundle FFmpeg, so no system ``ffmpeg`` is needed. Multi-channel audio
is averaged to mono; other rates are converted with a polyphase resampler
(``scipy.signal.resample_poly`` with the exact rational ratio, which applies
a Kaiser-windowed anti-aliasing filter).

Bad input raises one exception family, :class:`AudioError`, whose subclasses
name the problem and carry the ``path`` and a human ``reason``::

    AudioMissingError         the file does not exist
    AudioEmptyError           0 bytes, or a valid header with no samples
    AudioFormatError          not audio, corrupt or truncated
    AudioTooShortError        shorter than the caller's ``min_duration``
    AudioInvalidSamplesError  NaN or infinite samples

:class:`AudioError` is an :class:`~emotools.errors.EmotoolsError`. Silent
audio is legal (a pause is data) but announced with a :class:`SilentAudioWarning`.
"""

from .common import (
    AUDIO_SUFFIXES,
    PYAV_SUFFIXES,
    SAMPLE_RATE,
    SILENCE_PEAK,
    SOUNDFILE_SUFFIXES,
    AudioEmptyError,
    AudioError,
    AudioFormatError,
    AudioInfo,
    AudioInvalidSamplesError,
    AudioMissingError,
    AudioTooShortError,
    AudioWriteError,
    SilentAudioWarning,
)
from .read import audio_info, iter_audio, read_audio, resample
from .write import write_audio

__all__ = [
    "SAMPLE_RATE",
    "AudioError",
    "AudioMissingError",
    "AudioEmptyError",
    "AudioFormatError",
    "AudioTooShortError",
    "AudioInvalidSamplesError",
    "AudioWriteError",
    "SilentAudioWarning",
    "AudioInfo",
    "SOUNDFILE_SUFFIXES",
    "PYAV_SUFFIXES",
    "AUDIO_SUFFIXES",
    "SILENCE_PEAK",
    "read_audio",
    "audio_info",
    "write_audio",
    "resample",
    "iter_audio",
]
